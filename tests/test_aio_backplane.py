"""``wsfast.aio.serve(..., backplane=...)`` with a real redis-server, beside a thread ``wsfast.Server`` node.

Each coroutine runs on the standard loop and on uvloop, in debug mode, and
fails if it leaves a task behind; warnings are errors, so does an unclosed socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import wsfast
import wsfast.aio
from tests.aio_helpers import LOOPS, Runner, make_runner
from tests.components import Redis, redis_server
from tests.servers import running_server
from tests.timeouts import TIMEOUT
from wsfast.aio import ServerConnection
from wsfast.backplane import MemoryBackplane, Position, Recovery, RedisBackplane

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Runner:
    return make_runner(request.param)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    with redis_server(tmp_path / "redis") as server:
        yield server


def offset_first(position: Position, data: Any) -> bytes:
    return struct.pack(">Q", position.offset) + data


class Subscriber:
    """The aio node's handler: ``/topic[?since=epoch:offset]`` subscribes; "leave" unsubscribes."""

    def __init__(self) -> None:
        self.recoveries: list[Recovery] = []

    async def __call__(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        topic = ws.request.path.strip("/")
        since = ws.request.query.get("since")
        ws.subscribe(topic, since=Position.parse(since[0]) if since else None, on_recovery=self.recoveries.append)
        async for message in ws:
            if message == "leave":
                ws.unsubscribe(topic)
                await ws.send("left")


class ThreadSubscriber(wsfast.Handler):
    """The thread node's handler: ``/topic`` subscribes."""

    def on_open(self, ws: Any) -> None:
        ws.subscribe(ws.request.path.strip("/"))


@contextlib.asynccontextmanager
async def aio_node(
    backplane: str | RedisBackplane, **options: Any
) -> AsyncIterator[tuple[wsfast.aio.Server, Subscriber]]:
    handler = Subscriber()
    async with wsfast.aio.serve(handler, "127.0.0.1", 0, backplane=backplane, **options) as server:
        yield server, handler


def url(server: Any, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def numsub(redis: Redis, topic: str) -> int:
    channel = f"wsfast:{topic}".encode()
    return int(dict(redis.client().pubsub_numsub(channel))[channel])  # type: ignore[attr-defined]


async def eventually(predicate: Callable[[], bool]) -> bool:
    """Poll ``predicate`` without blocking the loop until it is true or TIMEOUT passes."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def offsets(ws: Any, count: int) -> list[int]:
    return [struct.unpack_from(">Q", await ws.recv(timeout=TIMEOUT))[0] for _ in range(count)]


def test_an_aio_node_and_a_thread_node_reach_each_others_subscribers(run: Runner, redis: Redis) -> None:
    async def main() -> None:
        with running_server(ThreadSubscriber(), backplane=redis.url) as thread_node:
            async with aio_node(redis.url) as (aio_server, _):
                async with (
                    wsfast.aio.connect(url(aio_server, "/news")) as on_aio,
                    wsfast.aio.connect(url(thread_node, "/news")) as on_thread,
                ):
                    assert await eventually(lambda: numsub(redis, "news") == 2)
                    assert aio_server.publish("news", "from aio") == 1  # its local subscriber
                    thread_node.publish("news", b"from threads")  # thread-safe: queued to its loop
                    for ws in (on_aio, on_thread):
                        # Order is kept per publisher only: these two come from two nodes.
                        assert {await ws.recv(timeout=TIMEOUT), await ws.recv(timeout=TIMEOUT)} == {
                            "from aio",
                            b"from threads",
                        }

    run(main)


def test_an_aio_node_is_subscribed_on_redis_only_while_it_has_local_subscribers(run: Runner, redis: Redis) -> None:
    async def main() -> None:
        with running_server(ThreadSubscriber(), backplane=redis.url) as thread_node:
            async with aio_node(redis.url) as (aio_server, _):
                assert numsub(redis, "news") == 0
                first = await wsfast.aio.connect(url(aio_server, "/news"))
                async with wsfast.aio.connect(url(aio_server, "/news")) as second:
                    assert await eventually(lambda: numsub(redis, "news") == 1)
                    await first.send("leave")
                    assert await first.recv(timeout=TIMEOUT) == "left"
                    await first.close()
                    thread_node.publish("news", "still one")
                    assert await second.recv(timeout=TIMEOUT) == "still one"
                    assert numsub(redis, "news") == 1
                # The last local subscriber went (its connection closed): so did the subscription.
                assert await eventually(lambda: numsub(redis, "news") == 0)

    run(main)


def test_order_is_kept_per_publisher_from_a_thread_node_to_an_aio_node(run: Runner, redis: Redis) -> None:
    async def main() -> None:
        with running_server(ThreadSubscriber(), backplane=redis.url) as thread_node:
            async with aio_node(redis.url) as (aio_server, _):
                async with wsfast.aio.connect(url(aio_server, "/ticks")) as ws:
                    assert await eventually(lambda: numsub(redis, "ticks") == 1)
                    for index in range(500):
                        thread_node.publish("ticks", struct.pack(">Q", index))
                    assert await offsets(ws, 500) == list(range(500))

    run(main)


def test_a_client_recovers_exactly_what_it_missed_from_an_aio_node(run: Runner, redis: Redis) -> None:
    async def main() -> None:
        with running_server(ThreadSubscriber(), backplane=redis.url) as thread_node:
            thread_node.loop.call_soon_threadsafe(thread_node.enable_history, "feed", 10_000)
            async with aio_node(redis.url) as (aio_server, handler):
                aio_server.enable_history("feed", 10_000, stamp=offset_first)
                async with wsfast.aio.connect(url(aio_server, "/feed")) as watcher:
                    assert await eventually(lambda: numsub(redis, "feed") == 1)
                    for index in range(50):
                        aio_server.publish("feed", b"m%d" % index)
                    assert await offsets(watcher, 50) == list(range(1, 51))
                epoch = redis.client().get("wsfast:{feed}:epoch").decode()  # type: ignore[attr-defined]
                stop = threading.Event()

                def publish_meanwhile() -> None:  # another node goes on publishing
                    while not stop.is_set():
                        thread_node.publish("feed", b"more")

                publisher = threading.Thread(target=publish_meanwhile)
                publisher.start()
                try:
                    async with wsfast.aio.connect(url(aio_server, f"/feed?since={epoch}:20")) as client:
                        received = await offsets(client, 400)
                finally:
                    stop.set()
                    await asyncio.to_thread(publisher.join, TIMEOUT)
                assert received == list(range(21, 421))  # no duplicate, no gap: missed, then live
                assert await eventually(lambda: bool(handler.recoveries))
                recovery = handler.recoveries[0]
                assert recovery.recovered and recovery.since == Position(epoch, 20) and recovery.count >= 30

    run(main)


def test_an_aio_node_says_when_recovery_is_impossible(run: Runner, redis: Redis) -> None:
    async def main() -> None:
        async with aio_node(redis.url) as (server, handler):
            server.enable_history("feed", 5, stamp=offset_first)
            for index in range(10):
                server.publish("feed", b"m%d" % index)
            assert await eventually(lambda: redis.client().get("wsfast:{feed}:offset") == b"10")  # type: ignore[attr-defined]
            epoch = redis.client().get("wsfast:{feed}:epoch").decode()  # type: ignore[attr-defined]
            cases = [
                (f"{epoch}:2", "offset 2 fell out of the history window (6..10 kept)"),
                ("1:9", f"the epoch changed (1 -> {epoch}): the history was reset"),
                (f"{epoch}:12", ""),  # nothing missed: after the two live messages below
            ]
            for live, (since, reason) in enumerate(cases, start=11):
                async with wsfast.aio.connect(url(server, f"/feed?since={since}")) as ws:
                    assert await eventually(lambda: len(handler.recoveries) == 1)
                    (recovery,) = handler.recoveries
                    handler.recoveries.clear()
                    assert (recovery.recovered, recovery.count, recovery.reason) == (not reason, 0, reason)
                    # Recovered or not, the client is subscribed to what comes next.
                    assert await eventually(lambda: numsub(redis, "feed") == 1)
                    server.publish("feed", b"live")
                    assert await ws.recv(timeout=TIMEOUT) == struct.pack(">Q", live) + b"live"

    run(main)


def test_redis_stopped_and_restarted_under_an_aio_node(
    run: Runner, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "wsfast.backplane")

    async def main() -> None:
        backplane = RedisBackplane(redis.url, outbox_limit=2000)
        with running_server(ThreadSubscriber(), backplane=redis.url) as thread_node:
            async with aio_node(backplane) as (aio_server, _):
                assert aio_server.backplane is backplane
                async with (
                    wsfast.aio.connect(url(aio_server, "/news")) as local,
                    wsfast.aio.connect(url(thread_node, "/news")) as remote,
                ):
                    assert await eventually(lambda: numsub(redis, "news") == 2)
                    await asyncio.to_thread(redis.stop)
                    assert await eventually(lambda: not backplane._commands_ready)
                    for index in range(100):
                        aio_server.publish("news", b"%03d" % index + bytes(97))
                    # Local delivery goes on; the outbox keeps the last 2000 bytes, counts the rest.
                    assert [(await local.recv(timeout=TIMEOUT))[:3] for _ in range(100)] == [
                        b"%03d" % i for i in range(100)
                    ]
                    assert backplane._outbox_bytes <= 2000 and backplane.dropped > 80
                    assert "outbox full" in caplog.text and "lost" in caplog.text

                    await asyncio.to_thread(redis.start)  # a new, empty redis-server on the same port
                    assert await eventually(lambda: numsub(redis, "news") == 2)
                    assert "resubscribed to 1 topics" in caplog.text and "back after" in caplog.text
                    aio_server.publish("news", "after")
                    received = await remote.recv(timeout=TIMEOUT)
                    while received != "after":  # what the outbox kept goes first, in order
                        assert received[:3] >= b"080"
                        received = await remote.recv(timeout=TIMEOUT)

    run(main)


@pytest.mark.parametrize("redis_up", [True, False], ids=["redis-up", "redis-down"])
def test_closing_an_aio_node_closes_its_backplane_and_leaks_nothing(run: Runner, redis: Redis, redis_up: bool) -> None:
    async def main() -> None:
        threads = set(threading.enumerate())
        async with aio_node(redis.url) as (server, _):
            async with wsfast.aio.connect(url(server, "/news")):
                assert await eventually(lambda: numsub(redis, "news") == 1)
            backplane = server.backplane
            assert isinstance(backplane, RedisBackplane)
            if not redis_up:
                redis.stop()
                assert await eventually(lambda: not backplane._commands_ready and not backplane._pubsub_ready)
                await asyncio.sleep(0.2)  # a reconnection attempt or two, and one pending
        assert set(threading.enumerate()) == threads  # no helper thread
        assert backplane._commands is not None and backplane._commands.stream is None
        assert backplane._pubsub is not None and backplane._pubsub.stream is None
        bridge = server._bridge
        assert bridge is not None and not bridge._timers and not len(bridge.selector)  # no timer, no socket watched
        if not redis_up:
            redis.start()
        await asyncio.sleep(0.3)  # a reconnection timer left behind would fire now
        assert backplane._commands.stream is None and backplane._pubsub.stream is None
        # (Sockets left open would fail the test: the runner collects them, warnings are errors.)

    run(main)


def test_an_aio_node_refuses_a_bad_backplane_url_naming_it() -> None:
    with pytest.raises(ValueError, match="'http://x'"):
        wsfast.aio.serve(Subscriber(), "127.0.0.1", 0, backplane="http://x")
    with pytest.raises(ValueError, match="unknown option 'outbox'"):
        wsfast.aio.serve(Subscriber(), "127.0.0.1", 0, backplane="redis://127.0.0.1:1/0?outbox=3")


def test_a_redis_command_sent_from_a_coroutine_is_answered(run: Runner, redis: Redis) -> None:
    async def main() -> None:
        async with aio_node(redis.url) as (server, _):
            backplane = server.backplane
            assert isinstance(backplane, RedisBackplane)
            assert await eventually(lambda: backplane._commands_ready)
            answered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            assert backplane.command("SET", "greeting", "hello", callback=lambda reply: None)
            assert backplane.command("GET", "greeting", callback=answered.set_result)
            # Nothing else happens on the backplane: the commands are written all the same.
            assert await asyncio.wait_for(answered, TIMEOUT) == b"hello"

    run(main)


def test_without_a_backplane_history_and_recovery_work_from_memory(run: Runner) -> None:
    async def main() -> None:
        handler = Subscriber()
        async with wsfast.aio.serve(handler, "127.0.0.1", 0) as server:
            assert server.backplane is None
            server.enable_history("feed", 5, stamp=lambda position, text: f"{position} {text}")
            async with wsfast.aio.connect(url(server, "/feed")) as watcher:
                for index in range(10):
                    assert server.publish("feed", f"m{index}") == 0  # delivered once its history keeps it
                seen = [await watcher.recv(timeout=TIMEOUT) for _ in range(10)]
            epoch = seen[0].split(":")[0]
            assert seen == [f"{epoch}:{index + 1} m{index}" for index in range(10)]
            async with wsfast.aio.connect(url(server, f"/feed?since={epoch}:7")) as client:
                assert [await client.recv(timeout=TIMEOUT) for _ in range(3)] == seen[7:]
                server.publish("feed", "live")
                assert await client.recv(timeout=TIMEOUT) == f"{epoch}:11 live"
            async with wsfast.aio.connect(url(server, f"/feed?since={epoch}:3")):
                assert await eventually(lambda: len(handler.recoveries) == 2)
            assert handler.recoveries[0].recovered and handler.recoveries[0].count == 3
            assert "offset 3 fell out of the history window (7..11 kept)" in handler.recoveries[1].reason

    run(main)


def test_publishing_through_a_backplane_or_a_history_before_the_server_starts_is_refused() -> None:
    with_history = wsfast.aio.serve(Subscriber(), "127.0.0.1", 0)
    with_history.enable_history("feed", 10)
    with_backplane = wsfast.aio.serve(Subscriber(), "127.0.0.1", 0, backplane=MemoryBackplane())
    for server, topic in ((with_history, "feed"), (with_backplane, "news")):
        with pytest.raises(RuntimeError, match="the server is not started"):
            server.publish(topic, "it would be lost")
    assert with_history.publish("news", "no subscriber anywhere") == 0
