"""wsfast.asgi:UvicornProtocol under uvicorn: every ASGI WebSocket message, and uvicorn's options.

Raw ASGI apps run in an in-process uvicorn, on the standard loop and on
uvloop; the FastAPI app of ``tests/fastapi_app.py`` runs in a uvicorn
subprocess (``--ws wsfast.asgi:UvicornProtocol``), driven by wsfast's and
websockets' clients, Node's ``ws`` and Chromium (``test_asgi_chromium.py``).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

import wsfast
import wsfast.aio
from tests.adapters import require
from tests.aio_helpers import LOOPS, Runner, close_of, make_runner, run_node_client
from tests.asgi_servers import uvicorn_subprocess
from tests.timeouts import TIMEOUT

uvicorn = require("uvicorn")
websockets_client = require("websockets.asyncio.client", "websockets")

from wsfast.asgi import UvicornProtocol  # noqa: E402 - needs uvicorn, required above

pytestmark = pytest.mark.filterwarnings("error")

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Runner:
    return make_runner(request.param)


@asynccontextmanager
async def serving(app: Any, **options: Any) -> AsyncIterator[uvicorn.Server]:
    """``app`` under an in-process uvicorn with ``--ws wsfast.asgi:UvicornProtocol`` on a free port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, ws=UvicornProtocol, lifespan="off", log_level="warning", **options)
        server = uvicorn.Server(config)
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        try:
            while not server.started:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.01)
            yield server
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, TIMEOUT)


def port_of(server: uvicorn.Server) -> int:
    return int(server.servers[0].sockets[0].getsockname()[1])


async def echo_app(scope: Message, receive: Receive, send: Send) -> None:
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})


# --- the messages ---------------------------------------------------------------------------


def test_receive_and_send_text_and_bytes(run: Runner) -> None:
    async def main() -> None:
        async with serving(echo_app) as server, wsfast.aio.connect(f"ws://127.0.0.1:{port_of(server)}/") as ws:
            await ws.send("héllo")
            assert await ws.recv(timeout=TIMEOUT) == "héllo"
            await ws.send(b"\x00" * 70000)
            assert await ws.recv(timeout=TIMEOUT) == b"\x00" * 70000

    run(main)


def test_the_scope_and_accept_with_a_subprotocol_and_headers(run: Runner) -> None:
    scopes: list[Message] = []

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await receive()
        await send({"type": "websocket.accept", "subprotocol": "chat.v1", "headers": [(b"x-room", b"7")]})
        await send({"type": "websocket.close"})

    async def main() -> None:
        async with serving(app, root_path="/api") as server:
            url = f"ws://127.0.0.1:{port_of(server)}/a%2Fb?x=1"
            async with wsfast.aio.connect(url, subprotocols=["chat.v2", "chat.v1"]) as ws:
                assert ws.subprotocol == "chat.v1"
                assert ws.response is not None and ws.response.headers.get("x-room") == "7"
                await ws.wait_closed()
                assert ws.close_code == 1000

    run(main)
    (scope,) = scopes
    assert scope["path"] == "/api/a/b" and scope["raw_path"] == b"/api/a%2Fb"
    assert scope["query_string"] == b"x=1" and scope["scheme"] == "ws"
    assert scope["subprotocols"] == ["chat.v2", "chat.v1"]
    assert dict(scope["headers"])[b"sec-websocket-protocol"] == b"chat.v2, chat.v1"
    assert "websocket.http.response" in scope["extensions"]


def test_close_before_accept_is_403_and_the_denial_response_is_sent_as_given(run: Runner) -> None:
    async def app(scope: Message, receive: Receive, send: Send) -> None:
        await receive()
        if scope["path"] == "/close":
            await send({"type": "websocket.close"})
            return
        await send({"type": "websocket.http.response.start", "status": 401, "headers": [(b"x-why", b"token")]})
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"token"})

    async def main() -> None:
        async with serving(app) as server:
            base = f"ws://127.0.0.1:{port_of(server)}"
            with pytest.raises(wsfast.InvalidHandshake) as denied:
                await wsfast.aio.connect(f"{base}/close")
            assert denied.value.status == 403
            with pytest.raises(websockets_client.InvalidStatus) as denied_with_body:
                await websockets_client.connect(f"{base}/deny")
            response = denied_with_body.value.response
            assert (response.status_code, response.body) == (401, b"no token")
            assert response.headers["x-why"] == "token"

    run(main)


def test_close_codes_both_ways_and_the_disconnect_message(run: Runner) -> None:
    disconnects: list[Message] = []

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        if message.get("text") == "close me":
            await send({"type": "websocket.close", "code": 4001, "reason": "as asked"})
        disconnects.append(await receive())

    async def main() -> list[int | None]:
        codes = []
        async with serving(app) as server:
            url = f"ws://127.0.0.1:{port_of(server)}/"
            async with wsfast.aio.connect(url) as ws:
                await ws.send("close me")
                await ws.wait_closed()
                codes.append(ws.close_code)
            async with wsfast.aio.connect(url) as ws:
                await ws.send("stay")
                await ws.close(4002, "leaving")
        return codes

    assert run(main) == [4001]
    assert disconnects == [
        {"type": "websocket.disconnect", "code": 4001, "reason": "as asked"},
        {"type": "websocket.disconnect", "code": 4002, "reason": "leaving"},
    ]


def test_an_app_that_fails_before_accept_gets_a_500(run: Runner) -> None:
    async def app(scope: Message, receive: Receive, send: Send) -> None:
        await receive()
        raise RuntimeError("boom")

    async def main() -> None:
        async with serving(app) as server:
            with pytest.raises(wsfast.InvalidHandshake) as failed:
                await wsfast.aio.connect(f"ws://127.0.0.1:{port_of(server)}/")
            assert failed.value.status == 500

    run(main)


def test_a_bad_upgrade_is_answered_without_the_app(run: Runner) -> None:
    calls: list[Message] = []

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        calls.append(scope)  # pragma: no cover - the request never reaches the app

    async def main() -> bytes:
        async with serving(app) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            writer.write(
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
            )
            response = await asyncio.wait_for(reader.read(), TIMEOUT)
            writer.close()
            await writer.wait_closed()
            return response

    assert run(main).startswith(b"HTTP/1.1 426 ")
    assert calls == []


# --- uvicorn's options --------------------------------------------------------------------------


def test_ws_max_size_closes_with_1009(run: Runner) -> None:
    async def main() -> None:
        async with serving(echo_app, ws_max_size=1000) as server:
            async with wsfast.aio.connect(f"ws://127.0.0.1:{port_of(server)}/") as ws:
                await ws.send(b"x" * 1000)
                assert await ws.recv(timeout=TIMEOUT) == b"x" * 1000
                await ws.send(b"x" * 1001)
                assert (await close_of(ws))[0] == 1009

    run(main)


@pytest.mark.parametrize("enabled", [True, False])
def test_ws_per_message_deflate(run: Runner, enabled: bool) -> None:
    async def main() -> tuple[str, ...]:
        async with serving(echo_app, ws_per_message_deflate=enabled) as server:
            async with wsfast.aio.connect(f"ws://127.0.0.1:{port_of(server)}/", compression=True) as ws:
                await ws.send("z" * 50_000)
                assert await ws.recv(timeout=TIMEOUT) == "z" * 50_000
                return ws.protocol.extensions

    assert run(main) == (("permessage-deflate",) if enabled else ())


def test_ws_max_queue_pauses_reading_until_the_app_catches_up(run: Runner) -> None:
    protocols: list[UvicornProtocol] = []
    release = asyncio.Event()

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await release.wait()
        for _ in range(50):
            message = await receive()
            await send({"type": "websocket.send", "text": message["text"]})
        await send({"type": "websocket.close"})

    async def main() -> None:
        async with serving(app, ws_max_queue=4) as server:
            async with wsfast.aio.connect(f"ws://127.0.0.1:{port_of(server)}/", max_queue=64) as ws:
                messages = [f"{index:04}" * 12_500 for index in range(50)]  # 50 kB: a few per read
                for message in messages:
                    await ws.send(message)
                (protocol,) = server.server_state.connections
                protocols.append(protocol)
                while protocol.transport.is_reading():
                    await asyncio.sleep(0.01)
                assert 4 <= protocol.queue.qsize() <= 4 + 256 * 1024 // 50_000
                release.set()
                assert [await ws.recv(timeout=TIMEOUT) for _ in messages] == messages

    release = asyncio.Event()
    run(main)


def test_keepalive_pings_and_a_ping_timeout_closes_with_1011(run: Runner) -> None:
    async def main() -> None:
        async with serving(echo_app, ws_ping_interval=0.05, ws_ping_timeout=0.2) as server:
            async with wsfast.aio.connect(f"ws://127.0.0.1:{port_of(server)}/") as ws:
                await asyncio.sleep(0.3)  # pings answered: still open
                (protocol,) = server.server_state.connections
                assert protocol.ping_sent_at > 0 and ws.ready_state == 1
                ws.transport.pause_reading()
                while not protocol.close_sent:
                    await asyncio.sleep(0.01)
                ws.transport.resume_reading()
                assert (await close_of(ws))[0] == 1011

    run(main)


def test_shutdown_closes_open_connections_with_1012(run: Runner) -> None:
    async def main() -> None:
        async with serving(echo_app) as server:
            ws = await wsfast.aio.connect(f"ws://127.0.0.1:{port_of(server)}/")
            await ws.send("hi")
            assert await ws.recv(timeout=TIMEOUT) == "hi"
        assert (await close_of(ws))[0] == 1012
        await ws.wait_closed()

    run(main)


def test_send_waits_while_the_transport_is_paused(run: Runner) -> None:
    sent = 0

    async def flood(scope: Message, receive: Receive, send: Send) -> None:
        nonlocal sent
        await receive()
        await send({"type": "websocket.accept"})
        for _ in range(64):
            await send({"type": "websocket.send", "bytes": b"x" * (1 << 20)})
            sent += 1
        await receive()

    async def main() -> None:
        async with serving(flood) as server:
            async with wsfast.aio.connect(f"ws://127.0.0.1:{port_of(server)}/", max_queue=1) as ws:
                previous = -1
                while sent != previous:  # until the app stalls
                    previous = sent
                    await asyncio.sleep(0.3)
                assert sent < 64
                for _ in range(64):
                    assert len(await ws.recv(timeout=TIMEOUT)) == 1 << 20

    run(main)


# --- a FastAPI app in a uvicorn subprocess ---------------------------------------------------------


@pytest.fixture(scope="module")
def fastapi_port() -> Any:
    require("fastapi")
    with uvicorn_subprocess("tests.fastapi_app:app", "--ws", "wsfast.asgi:UvicornProtocol") as port:
        yield port


def test_fastapi_echo_with_wsfast_and_websockets_clients(run: Runner, fastapi_port: int) -> None:
    url = f"ws://127.0.0.1:{fastapi_port}/echo"

    async def main() -> None:
        async with wsfast.aio.connect(url, subprotocols=["echo.v1"]) as ws:
            assert ws.subprotocol == "echo.v1"
            await ws.send("ping")
            assert await ws.recv(timeout=TIMEOUT) == "ping"
        async with websockets_client.connect(url) as peer:
            await peer.send(b"\x01\x02")
            assert await asyncio.wait_for(peer.recv(), TIMEOUT) == b"\x01\x02"

    run(main)


def test_fastapi_chat_room_broadcasts_to_every_member(run: Runner, fastapi_port: int) -> None:
    base = f"ws://127.0.0.1:{fastapi_port}/chat"

    async def main() -> None:
        members = [await wsfast.aio.connect(f"{base}/lobby?name={name}") for name in ("ann", "bob", "cy")]
        elsewhere = await wsfast.aio.connect(f"{base}/attic?name=dan")
        await members[1].send("hello all")
        assert [await member.recv(timeout=TIMEOUT) for member in members] == ["bob: hello all"] * 3
        with pytest.raises(TimeoutError):
            await elsewhere.recv(timeout=0.2)
        for ws in (*members, elsewhere):
            await ws.close()

    run(main)


def test_fastapi_echo_and_chat_with_node_ws(fastapi_port: int) -> None:
    report = run_node_client(
        {
            "url": f"ws://127.0.0.1:{fastapi_port}/echo",
            "protocols": ["echo.v1"],
            "steps": [
                {"op": "send_text", "text": "héllo"},
                {"op": "recv"},
                {"op": "send_binary", "size": 65536},
                {"op": "recv"},
                {"op": "close", "code": 1000, "reason": "done"},
            ],
        }
    )
    assert report["open"]["protocol"] == "echo.v1"
    assert [(r["type"], r["length"]) for r in report["results"][:2]] == [("text", 6), ("binary", 65536)]
    assert report["results"][0]["text"] == "héllo"
    chat = run_node_client(
        {
            "url": f"ws://127.0.0.1:{fastapi_port}/chat/node?name=eve",
            "steps": [{"op": "send_text", "text": "hi"}, {"op": "recv"}, {"op": "close", "code": 1000}],
        }
    )
    assert chat["results"][0]["text"] == "eve: hi"
