"""wsfast.aio: serve() and connect() on asyncio and uvloop, with both handler styles."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

import wsfast
import wsfast.aio
from tests.adapters import require
from tests.aio_helpers import LOOPS, Runner, close_of, make_runner, run_node_client
from tests.servers import make_tls
from tests.timeouts import TIMEOUT
from wsfast.aio import ServerConnection

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Runner:
    """Runs a test's coroutine on the standard loop, then on uvloop (debug mode, no leaked task)."""
    return make_runner(request.param)


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


class Echo(wsfast.Handler):
    def on_message(self, ws: Any, message: str | bytes) -> None:
        ws.send(message)


HANDLERS = {"async": echo, "callbacks": Echo()}


def url(server: wsfast.aio.Server, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


# --- messages ----------------------------------------------------------------------------


@pytest.mark.parametrize("style", HANDLERS)
def test_echo_text_and_binary(run: Runner, style: str) -> None:
    async def main() -> None:
        async with wsfast.aio.serve(HANDLERS[style], "127.0.0.1", 0) as server:
            assert server.port > 0 and server.host == "127.0.0.1"
            async with wsfast.aio.connect(url(server)) as ws:
                await ws.send("héllo")
                assert await ws.recv(timeout=TIMEOUT) == "héllo"
                await ws.send(b"\x00\xff" * 40000)
                assert await ws.recv(timeout=TIMEOUT) == b"\x00\xff" * 40000
                await ws.send(memoryview(bytearray(b"view")))
                assert await ws.recv(timeout=TIMEOUT) == b"view"

    run(main)


def test_the_connection_reports_its_handshake(run: Runner) -> None:
    seen: dict[str, Any] = {}

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        seen.update(path=ws.request.path, query=ws.request.query, subprotocol=ws.subprotocol, state=ws.ready_state)
        seen["remote"] = ws.remote_address
        await ws.send("ready")
        await ws.wait_closed()

    async def main() -> None:
        async with wsfast.aio.serve(handler, "127.0.0.1", 0, subprotocols=["chat.v2", "chat.v1"]) as server:
            async with wsfast.aio.connect(url(server, "/room?id=7"), subprotocols=["chat.v1"]) as ws:
                assert await ws.recv(timeout=TIMEOUT) == "ready"
                assert ws.subprotocol == "chat.v1" and ws.ready_state == 1
                assert ws.response is not None and ws.response.status == 101
                local = ws.transport.get_extra_info("sockname")
        assert ws.ready_state == 3
        assert seen == {
            "path": "/room",
            "query": {"id": ["7"]},
            "subprotocol": "chat.v1",
            "state": 1,
            "remote": local,
        }

    run(main)


def test_a_message_over_the_limit_closes_with_1009(run: Runner) -> None:
    async def main() -> None:
        async with wsfast.aio.serve(echo, "127.0.0.1", 0, max_message_size=1000) as server:
            async with wsfast.aio.connect(url(server)) as ws:
                await ws.send(b"x" * 1000)
                assert await ws.recv(timeout=TIMEOUT) == b"x" * 1000
                await ws.send(b"x" * 1001)
                assert (await close_of(ws))[0] == 1009

    run(main)


def test_close_codes_reach_the_other_side(run: Runner) -> None:
    closes: list[tuple[int, str]] = []

    async def handler(ws: ServerConnection) -> None:
        try:
            await ws.recv()
        except wsfast.ConnectionClosed as exc:
            closes.append((exc.code, exc.reason))

    async def main() -> None:
        async with wsfast.aio.serve(handler, "127.0.0.1", 0) as server:
            ws = await wsfast.aio.connect(url(server))
            await ws.close(4000, "bye")
            assert (ws.close_code, ws.close_reason) == (4000, "bye")

    run(main)
    assert closes == [(4000, "bye")]


def test_iteration_ends_on_a_normal_close_and_raises_otherwise(run: Runner) -> None:
    async def handler(ws: ServerConnection) -> None:
        code = int(await ws.recv())
        await ws.send("last")
        await ws.close(code)

    async def main() -> list[list[str | bytes]]:
        received = []
        async with wsfast.aio.serve(handler, "127.0.0.1", 0) as server:
            for code in (1000, 4001):
                async with wsfast.aio.connect(url(server)) as ws:
                    await ws.send(str(code))
                    messages = []
                    try:
                        async for message in ws:
                            messages.append(message)
                    except wsfast.ConnectionClosed as exc:
                        messages.append(f"raised {exc.code}")
                    received.append(messages)
        return received

    assert run(main) == [["last"], ["last", "raised 4001"]]


def test_a_handler_that_raises_closes_with_1011(run: Runner) -> None:
    class Failing(wsfast.Handler):
        def on_message(self, ws: Any, message: str | bytes) -> None:
            raise RuntimeError("boom")

        def on_error(self, ws: Any, error: BaseException) -> None:
            errors.append(error)

    async def failing(ws: ServerConnection) -> None:
        await ws.recv()
        raise RuntimeError("boom")

    errors: list[BaseException] = []

    async def main() -> list[int | None]:
        codes = []
        for handler in (Failing(), failing):
            async with wsfast.aio.serve(handler, "127.0.0.1", 0) as server:
                async with wsfast.aio.connect(url(server)) as ws:
                    await ws.send("go")
                    await ws.wait_closed()
                    codes.append(ws.close_code)
        return codes

    assert run(main) == [1011, 1011]
    assert [str(error) for error in errors] == ["boom"]


# --- waiting, timeouts and cancellation --------------------------------------------------


def test_recv_times_out_and_a_cancelled_recv_loses_nothing(run: Runner) -> None:
    async def main() -> None:
        async with wsfast.aio.serve(echo, "127.0.0.1", 0) as server:
            async with wsfast.aio.connect(url(server)) as ws:
                with pytest.raises(TimeoutError):
                    await ws.recv(timeout=0.05)
                waiting = asyncio.ensure_future(ws.recv())
                await asyncio.sleep(0.05)
                waiting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiting
                await ws.send("after the cancel")
                assert await ws.recv(timeout=TIMEOUT) == "after the cancel"
                assert ws.ready_state == 1

    run(main)


def test_two_tasks_cannot_wait_for_the_same_message(run: Runner) -> None:
    async def main() -> None:
        async with wsfast.aio.serve(echo, "127.0.0.1", 0) as server:
            async with wsfast.aio.connect(url(server)) as ws:
                first = asyncio.ensure_future(ws.recv())
                await asyncio.sleep(0.01)
                with pytest.raises(RuntimeError, match="already waiting"):
                    await ws.recv()
                await ws.send("one")
                assert await first == "one"

    run(main)


def test_ping_resolves_with_the_round_trip_time(run: Runner) -> None:
    async def main() -> None:
        async with wsfast.aio.serve(echo, "127.0.0.1", 0) as server:
            async with wsfast.aio.connect(url(server)) as ws:
                rtt = await ws.ping()
                assert isinstance(rtt, float) and 0 <= rtt < TIMEOUT  # uvloop's clock ticks in ms
                assert 0 <= await ws.ping(b"probe") < TIMEOUT

    run(main)


def test_a_ping_waiting_when_the_connection_closes_raises(run: Runner) -> None:
    async def main() -> None:
        async with wsfast.aio.serve(echo, "127.0.0.1", 0) as server:
            ws = await wsfast.aio.connect(url(server))
            # Paused reading: the pong cannot arrive before the close.
            ws.transport.pause_reading()
            ping = asyncio.ensure_future(ws.ping())
            await asyncio.sleep(0.01)
            ws.abort()
            with pytest.raises(wsfast.ConnectionClosed):
                await ping

    run(main)


# --- backpressure -----------------------------------------------------------------------------


def test_send_waits_while_the_peer_does_not_read(run: Runner) -> None:
    """With a peer that stops reading, ``await ws.send()`` stops returning; it resumes as the peer reads."""
    size, total = 1 << 20, 64
    sent = 0

    async def flood(ws: ServerConnection) -> None:
        nonlocal sent
        for _ in range(total):
            await ws.send(b"x" * size)
            sent += 1
        await ws.wait_closed()

    async def main() -> None:
        async with wsfast.aio.serve(flood, "127.0.0.1", 0, write_limit=256 * 1024) as server:
            async with wsfast.aio.connect(url(server), max_queue=1) as ws:
                previous = -1
                while sent != previous:  # until the server stalls
                    previous = sent
                    await asyncio.sleep(0.3)
                assert sent < total  # held back by the client's full queue and the socket buffers
                for _ in range(total):
                    assert len(await ws.recv(timeout=TIMEOUT)) == size
                assert sent == total

    run(main)


def test_reading_pauses_when_the_queue_is_full(run: Runner) -> None:
    connections: list[ServerConnection] = []

    async def slow(ws: ServerConnection) -> None:
        connections.append(ws)
        await ws.wait_closed()

    async def main() -> None:
        async with wsfast.aio.serve(slow, "127.0.0.1", 0, max_queue=4) as server:
            async with wsfast.aio.connect(url(server)) as ws:
                messages = [f"{index:05}" * 10_000 for index in range(100)]  # 50 kB: a few per read
                for message in messages:
                    await ws.send(message)
                for _ in range(int(TIMEOUT * 100)):
                    if connections and not connections[0].transport.is_reading():
                        break
                    await asyncio.sleep(0.01)
                (served,) = connections
                assert not served.transport.is_reading()
                await asyncio.sleep(0.1)  # nothing more is read while paused
                assert 4 <= len(served._messages) <= 4 + 256 * 1024 // 50_000  # the queue plus one read
                assert [await served.recv(timeout=TIMEOUT) for _ in messages] == messages
                assert served.transport.is_reading()

    run(main)


# --- the server: topics, limits, policies -------------------------------------------------------


def test_publish_and_broadcast_reach_subscribers_and_clients(run: Runner) -> None:
    class Topics(wsfast.Handler):
        def on_message(self, ws: Any, message: str | bytes) -> None:
            ws.subscribe(str(message))
            ws.send("subscribed")

    async def main() -> None:
        async with wsfast.aio.serve(Topics(), "127.0.0.1", 0) as server:
            clients = [await wsfast.aio.connect(url(server)) for _ in range(3)]
            for client, topic in zip(clients, ("prices", "prices", "news"), strict=True):
                await client.send(topic)
                assert await client.recv(timeout=TIMEOUT) == "subscribed"
            assert len(server.clients) == 3
            assert server.publish("prices", b"\x01\x02") == 2
            assert server.publish("weather", "none") == 0
            assert server.broadcast("all") == 3
            assert [await client.recv(timeout=TIMEOUT) for client in clients[:2]] == [b"\x01\x02"] * 2
            assert [await client.recv(timeout=TIMEOUT) for client in clients] == ["all"] * 3
            for client in clients:
                await client.close()

    run(main)


def test_a_slow_consumer_is_closed_with_1008(run: Runner) -> None:
    async def main() -> None:
        async with wsfast.aio.serve(Echo(), "127.0.0.1", 0, write_limit=64 * 1024, close_timeout=0.5) as server:
            async with wsfast.aio.connect(url(server), max_queue=1) as ws:
                await ws.send("hello")
                assert await ws.recv(timeout=TIMEOUT) == "hello"
                (served,) = server.clients
                payload = b"x" * 65536
                for _ in range(int(TIMEOUT * 100)):
                    if server.broadcast(payload) == 0:  # 0: closed as a slow consumer
                        break
                    await asyncio.sleep(0)
                assert served.ready_state >= 2
                await served.wait_closed()
                assert served.close_code in (1008, 1006)  # 1006: aborted after close_timeout

    run(main)


def test_origins_and_max_connections_refuse_with_403_and_503(run: Runner) -> None:
    async def main() -> None:
        async with wsfast.aio.serve(echo, "127.0.0.1", 0, origins=["https://good.example"]) as server:
            with pytest.raises(wsfast.InvalidHandshake) as refused:
                await wsfast.aio.connect(url(server), origin="https://evil.example")
            assert refused.value.status == 403
            async with wsfast.aio.connect(url(server), origin="https://good.example") as ws:
                await ws.send("ok")
                assert await ws.recv(timeout=TIMEOUT) == "ok"
        async with wsfast.aio.serve(echo, "127.0.0.1", 0, max_connections=1) as server:
            async with wsfast.aio.connect(url(server)) as ws:
                with pytest.raises(wsfast.InvalidHandshake) as refused:
                    await wsfast.aio.connect(url(server))
                assert refused.value.status == 503

    run(main)


def test_plain_http_requests_go_to_the_http_handler(run: Runner) -> None:
    async def get(port: int, path: str) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        response = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
        await writer.wait_closed()
        return response

    async def main() -> None:
        async with wsfast.aio.serve(echo, "127.0.0.1", 0) as server:
            assert (await get(server.port, "/healthz")).startswith(b"HTTP/1.1 200 OK\r\n")
            assert (await get(server.port, "/other")).startswith(b"HTTP/1.1 404 Not Found\r\n")

    run(main)


def test_bad_options_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="slow_consumer"):
        wsfast.aio.serve(echo, slow_consumer="ignore")
    with pytest.raises(ValueError, match="max_queue"):
        wsfast.aio.serve(echo, max_queue=0)
    with pytest.raises(TypeError, match="handler"):
        wsfast.aio.serve("echo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a WebSocket URL"):
        wsfast.aio.connect("http://127.0.0.1/")


def test_an_unanswered_heartbeat_closes_with_1011(run: Runner) -> None:
    async def main() -> None:
        options = {"ping_interval": 0.05, "ping_timeout": 0.2}
        async with wsfast.aio.serve(echo, "127.0.0.1", 0, **options) as server:
            async with wsfast.aio.connect(url(server)) as ws:
                await ws.send("alive")
                assert await ws.recv(timeout=TIMEOUT) == "alive"
                await asyncio.sleep(0.3)  # answered pings keep it open
                assert ws.ready_state == 1
                ws.transport.pause_reading()  # now nothing is answered
                (served,) = server.connections
                while served.ready_state == 1:
                    await asyncio.sleep(0.01)
                ws.transport.resume_reading()  # in time to read the server's close
                assert await close_of(ws) == (1011, "keepalive ping timeout")

    run(main)


# --- shutdown ------------------------------------------------------------------------------------


def test_leaving_serve_closes_clients_with_1001_after_their_queued_data(run: Runner) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        ws.send(b"y" * 1_000_000)
        await ws.send("last")
        await ws.wait_closed()

    async def main() -> None:
        async with wsfast.aio.serve(handler, "127.0.0.1", 0) as server:
            ws = await wsfast.aio.connect(url(server))
            await ws.send("go")
            await asyncio.sleep(0.1)
        assert await ws.recv(timeout=TIMEOUT) == b"y" * 1_000_000
        assert await ws.recv(timeout=TIMEOUT) == "last"
        assert (await close_of(ws))[0] == 1001
        await ws.wait_closed()

    run(main)


def test_close_then_wait_closed_stops_a_server_whose_handlers_never_end(run: Runner) -> None:
    async def stubborn(ws: ServerConnection) -> None:
        while True:
            try:
                await ws.recv()
            except wsfast.ConnectionClosed:
                await asyncio.sleep(3600)  # ignores the close: cancelled after close_timeout

    async def main() -> None:
        server = wsfast.aio.serve(stubborn, "127.0.0.1", 0, close_timeout=0.2)
        await server.start()
        ws = await wsfast.aio.connect(url(server))
        server.close()
        await server.wait_closed()
        assert not server.connections
        await ws.wait_closed()
        assert ws.close_code == 1001
        with pytest.raises(OSError):
            await wsfast.aio.connect(f"ws://127.0.0.1:{ws.transport.get_extra_info('peername')[1]}/")

    run(main)


# --- the client: reconnection, TLS --------------------------------------------------------------


def test_async_for_reconnects_after_each_close(run: Runner) -> None:
    async def once(ws: ServerConnection) -> None:
        await ws.send("hello")

    async def main() -> int:
        connections = 0
        async with wsfast.aio.serve(once, "127.0.0.1", 0) as server:
            policy = wsfast.Reconnect(initial=0.01, maximum=0.05)
            async for ws in wsfast.aio.connect(url(server), reconnect=policy):
                assert await ws.recv(timeout=TIMEOUT) == "hello"
                connections += 1
                if connections == 3:
                    break
        return connections

    assert run(main) == 3


def test_reconnection_gives_up_after_max_attempts(run: Runner) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connections are refused

        async def main() -> None:
            policy = wsfast.Reconnect(initial=0.01, maximum=0.02, max_attempts=3)
            with pytest.raises(OSError):
                async for _ in wsfast.aio.connect(f"ws://127.0.0.1:{port}/", reconnect=policy):
                    pytest.fail("nothing listens there")

        run(main)


def test_wss_with_a_trusted_certificate(run: Runner, tmp_path: Path) -> None:
    tls = make_tls(tmp_path)

    async def main() -> None:
        async with wsfast.aio.serve(echo, "127.0.0.1", 0, ssl=tls.server_context) as server:
            address = f"wss://127.0.0.1:{server.port}/"
            async with wsfast.aio.connect(address, ssl=tls.client_context) as ws:
                await ws.send("secret")
                assert await ws.recv(timeout=TIMEOUT) == "secret"
            with pytest.raises(OSError):  # ssl.SSLCertVerificationError: the system CAs do not know ours
                await wsfast.aio.connect(address)

    run(main)


def test_compression_is_negotiated_and_used(run: Runner) -> None:
    async def main() -> None:
        async with wsfast.aio.serve(echo, "127.0.0.1", 0, compression=True) as server:
            async with wsfast.aio.connect(url(server), compression=True) as ws:
                assert ws.protocol.extensions == ("permessage-deflate",)
                await ws.send("z" * 100_000)
                assert await ws.recv(timeout=TIMEOUT) == "z" * 100_000
                assert server.broadcast("to all") == 1
                assert await ws.recv(timeout=TIMEOUT) == "to all"

    run(main)


# --- peers -------------------------------------------------------------------------------------


def test_websockets_client_and_server_as_peers(run: Runner) -> None:
    client = require("websockets.asyncio.client", "websockets")
    server_module = require("websockets.asyncio.server", "websockets")

    async def peer_echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with wsfast.aio.serve(echo, "127.0.0.1", 0, subprotocols=["v1"]) as server:
            async with client.connect(url(server), subprotocols=["v1"]) as peer:
                assert peer.subprotocol == "v1"
                await peer.send("from websockets")
                assert await asyncio.wait_for(peer.recv(), TIMEOUT) == "from websockets"
                await peer.send(b"\x00" * 100_000)
                assert await asyncio.wait_for(peer.recv(), TIMEOUT) == b"\x00" * 100_000
        async with server_module.serve(peer_echo, "127.0.0.1", 0) as peer_server:
            port = peer_server.sockets[0].getsockname()[1]
            async with wsfast.aio.connect(f"ws://127.0.0.1:{port}/", compression=True) as ws:
                assert ws.protocol.extensions == ("permessage-deflate",)
                await ws.send("to websockets")
                assert await ws.recv(timeout=TIMEOUT) == "to websockets"
                assert await ws.ping() >= 0

    run(main)


def test_node_ws_client(run: Runner) -> None:
    async def main() -> dict[str, Any]:
        async with wsfast.aio.serve(echo, "127.0.0.1", 0, subprotocols=["v1"], compression=True) as server:
            scenario = {
                "url": url(server, "/node"),
                "protocols": ["v1"],
                "compression": True,
                "steps": [
                    {"op": "send_text", "text": "héllo"},
                    {"op": "recv"},
                    {"op": "send_binary", "size": 300_000},
                    {"op": "recv"},
                    {"op": "ping", "data": "probe"},
                    {"op": "close", "code": 4001, "reason": "done"},
                ],
            }
            return await asyncio.get_running_loop().run_in_executor(None, run_node_client, scenario)

    report = run(main)
    assert report["open"] == {"protocol": "v1", "extensions": "permessage-deflate"}
    received = [(result["op"], result.get("type"), result.get("length")) for result in report["results"]]
    assert received == [("recv", "text", 6), ("recv", "binary", 300_000), ("pong", None, None), ("close", None, None)]
    assert report["close"]["code"] == 4001
