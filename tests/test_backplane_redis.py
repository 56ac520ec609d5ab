"""The Redis backplane with a real redis-server: servers in threads of this process.

Separate processes, nginx and node failures are in test_scaling_out.py.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wsfast
from tests.components import Redis, redis_server
from tests.servers import Recorder, in_loop, running_server, url, wait_until
from tests.timeouts import TIMEOUT
from wsfast.backplane import Position, Recovery, RedisBackplane
from wsfast.backplane import redis as backplane_redis
from wsfast.server import Server, ServerConnection


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    with redis_server(tmp_path / "redis") as server:
        yield server


class Node:
    """A server on the backplane, with a recorder to reach its connections."""

    def __init__(self, server: Server, recorder: Recorder) -> None:
        self.server = server
        self.recorder = recorder

    def client(self, topic: str, **subscribe: Any) -> tuple[Any, ServerConnection]:
        client = wsfast.connect(url(self.server))
        ws = self.recorder.next_open()
        in_loop(self.server, lambda: ws.subscribe(topic, **subscribe))
        return client, ws

    def publish(self, topic: str, data: Any) -> None:
        in_loop(self.server, self.server.publish, topic, data)


@contextlib.contextmanager
def nodes(redis_url: str, count: int, history: dict[str, int] | None = None) -> Iterator[list[Node]]:
    with contextlib.ExitStack() as stack:
        started = []
        for _ in range(count):
            recorder = Recorder(echo=False)
            server = stack.enter_context(running_server(recorder, backplane=redis_url))
            for topic, size in (history or {}).items():
                in_loop(server, lambda s=server, t=topic, n=size: s.enable_history(t, n, stamp=offset_first))
            started.append(Node(server, recorder))
        yield started


def offset_first(position: Position, data: Any) -> bytes:
    return struct.pack(">Q", position.offset) + data


def numsub(redis: Redis, topic: str) -> int:
    return int(dict(redis.client().pubsub_numsub(f"wsfast:{topic}"))[f"wsfast:{topic}".encode()])  # type: ignore[attr-defined]


def offsets(client: Any, count: int) -> list[int]:
    return [struct.unpack_from(">Q", client.recv(timeout=TIMEOUT))[0] for _ in range(count)]


def test_a_publish_on_one_node_reaches_the_subscribers_of_every_node(redis: Redis) -> None:
    with nodes(redis.url, 3) as (a, b, c):
        clients = [node.client("news")[0] for node in (a, b, c) for _ in range(2)]
        assert wait_until(lambda: numsub(redis, "news") == 3)
        a.publish("news", "hello")
        c.publish("news", b"\x00binary")
        for client in clients:
            # Order is kept per publisher only: these two come from two nodes.
            assert {client.recv(timeout=TIMEOUT), client.recv(timeout=TIMEOUT)} == {"hello", b"\x00binary"}
            client.close()


def test_a_node_is_subscribed_on_redis_only_while_it_has_local_subscribers(redis: Redis) -> None:
    with nodes(redis.url, 2) as (a, b):
        assert numsub(redis, "news") == 0
        first, ws1 = a.client("news")
        second, ws2 = a.client("news")
        assert wait_until(lambda: numsub(redis, "news") == 1)
        in_loop(a.server, ws1.unsubscribe, "news")
        first.close()
        b.publish("news", "still one")
        assert second.recv(timeout=TIMEOUT) == "still one"
        assert numsub(redis, "news") == 1
        second.close()  # the last local subscriber goes: so does the subscription
        assert wait_until(lambda: numsub(redis, "news") == 0)


def test_order_is_kept_per_publisher(redis: Redis) -> None:
    with nodes(redis.url, 2) as (a, b):
        client, _ = b.client("ticks")
        assert wait_until(lambda: numsub(redis, "ticks") == 1)

        def burst() -> None:
            for index in range(500):
                a.server.publish("ticks", struct.pack(">Q", index))  # from another thread: thread-safe

        burst()
        assert offsets(client, 500) == list(range(500))
        client.close()


def test_a_client_recovers_on_another_node_while_a_third_publishes(redis: Redis) -> None:
    with nodes(redis.url, 3, history={"feed": 10_000}) as (a, b, c):
        watcher, _ = a.client("feed")
        assert wait_until(lambda: numsub(redis, "feed") == 1)
        for index in range(50):
            c.publish("feed", b"m%d" % index)
        assert offsets(watcher, 50) == list(range(1, 51))
        epoch = redis.client().get("wsfast:{feed}:epoch").decode()  # type: ignore[attr-defined]
        stop = threading.Event()

        def publish_meanwhile() -> None:
            while not stop.is_set():
                c.server.publish("feed", b"more")

        publisher = threading.Thread(target=publish_meanwhile)
        publisher.start()
        try:
            recoveries: list[Recovery] = []
            since = Position(epoch, 20)
            client, _ = b.client("feed", since=since, on_recovery=recoveries.append)
            received = offsets(client, 400)
        finally:
            stop.set()
            publisher.join(TIMEOUT)
        assert received == list(range(21, 421))  # no duplicate, no gap, missed then live
        assert wait_until(lambda: bool(recoveries)) and recoveries[0].recovered and recoveries[0].count >= 30
        for each in (watcher, client):
            each.close()


def test_recovery_on_redis_refuses_another_epoch_and_an_offset_out_of_the_window(redis: Redis) -> None:
    with nodes(redis.url, 2, history={"feed": 5}) as (a, b):
        for index in range(10):
            a.publish("feed", b"m%d" % index)
        # Published means queued: wait until Redis has run the tenth.
        assert wait_until(lambda: redis.client().get("wsfast:{feed}:offset") == b"10")  # type: ignore[attr-defined]
        epoch = redis.client().get("wsfast:{feed}:epoch").decode()  # type: ignore[attr-defined]
        recoveries: list[Recovery] = []
        clients = [
            b.client("feed", since=since, on_recovery=recoveries.append)[0]
            for since in (Position(epoch, 2), Position("1", 9), Position(epoch, 10))
        ]
        assert wait_until(lambda: len(recoveries) == 3)
        for client in clients:
            client.close()
        reasons = {r.since: r.reason for r in recoveries}
        assert "fell out of the history window (6..10 kept)" in reasons[Position(epoch, 2)]
        assert "the epoch changed" in reasons[Position("1", 9)]
        assert reasons[Position(epoch, 10)] == ""  # nothing missed


def test_while_redis_is_down_local_delivery_goes_on_and_the_outbox_is_bounded(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "wsfast.backplane")
    with nodes(f"{redis.url}?outbox_limit=2000", 2) as (a, b):
        local, _ = a.client("news")
        remote, _ = b.client("news")
        assert wait_until(lambda: numsub(redis, "news") == 2)
        redis.stop()
        backplane = a.server.backplane
        assert isinstance(backplane, RedisBackplane)
        assert wait_until(lambda: not backplane._commands_ready)
        for index in range(100):
            a.publish("news", b"%03d" % index + bytes(97))
        assert [local.recv(timeout=TIMEOUT)[:3] for _ in range(100)] == [b"%03d" % i for i in range(100)]
        assert backplane._outbox_bytes <= 2000
        assert backplane.dropped > 80
        assert "outbox full" in caplog.text and "connection to" in caplog.text and "lost" in caplog.text

        redis.start()  # a new, empty redis-server on the same port: the nodes come back by themselves
        assert wait_until(lambda: numsub(redis, "news") == 2)
        a.publish("news", "after")
        received = remote.recv(timeout=TIMEOUT)
        # What the outbox kept goes first, in order, then the new message.
        while received != "after":
            assert received[:3] >= b"080"
            received = remote.recv(timeout=TIMEOUT)
        assert "resubscribed to 1 topics" in caplog.text and "back after" in caplog.text
        for client in (local, remote):
            client.close()


def test_after_its_subscriber_connection_drops_a_node_fills_the_gap_from_history(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backplane_redis, "_FIRST_DELAY", 1.0)  # a gap of 0.5 to 1 s
    with nodes(redis.url, 2, history={"feed": 10_000}) as (a, b):
        client, _ = a.client("feed")
        assert wait_until(lambda: numsub(redis, "feed") == 1)
        b.publish("feed", b"first")
        assert offsets(client, 1) == [1]
        redis.client().client_kill_filter(_type="pubsub")  # type: ignore[attr-defined]
        assert wait_until(lambda: not a.server.backplane._pubsub_ready)  # type: ignore[union-attr]
        for _ in range(300):
            b.publish("feed", b"during")  # node A is not subscribed meanwhile
        assert numsub(redis, "feed") == 0
        assert offsets(client, 300) == list(range(2, 302))
        client.close()


def test_a_bad_url_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="'http://x'"):
        RedisBackplane("http://x")
    with pytest.raises(ValueError, match="unknown option 'outbox'"):
        RedisBackplane("redis://127.0.0.1:1/0?outbox=3")
    with pytest.raises(ValueError, match="'redis://127.0.0.1:1/zero'"):
        RedisBackplane("redis://127.0.0.1:1/zero")
    with pytest.raises(ValueError, match="unsupported backplane URL 'nats://x'"):
        wsfast.Server(port=0, backplane="nats://x")


def test_wsfast_serve_refuses_a_bad_backplane_url_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    from wsfast.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--backplane", "http://x"])
    assert "argument --backplane: a Redis backplane URL starts with redis://, not 'http://x'" in capsys.readouterr().err


def test_wsfast_serve_history_needs_a_backplane(capsys: pytest.CaptureFixture[str]) -> None:
    from wsfast.cli import main

    with pytest.raises(SystemExit):
        main(["serve", "--history", "10"])
    assert "--history needs --backplane" in capsys.readouterr().err


def test_publishes_in_flight_when_the_connection_drops_count_as_unconfirmed_not_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backplane = RedisBackplane("redis://127.0.0.1:1/0")
    backplane._replies.extend([backplane._published, backplane._published])  # two awaiting their reply
    backplane._fail_replies()  # what losing the commands connection does
    assert (backplane.unconfirmed, backplane.errors) == (2, 0)
    assert "a publish failed" not in caplog.text
