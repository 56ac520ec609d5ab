"""uvicorn's websockets-sansio and wsproto protocol classes, accelerated, as uvicorn's own.

Differential: each script runs a websockets client against an ASGI echo
app under uvicorn on loopback, unpatched then accelerated. What the app
receives, what the client receives and how it is closed, and every call the
server makes on its transport (``write`` with its bytes, ``pause_reading``,
``resume_reading``, ``close``), in order, must be the same.
"""

from __future__ import annotations

import asyncio
import logging
import types
from asyncio import selector_events
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.adapters import accelerated, require
from tests.timeouts import TIMEOUT
from wsfast.accelerate import deaccelerate
from wsfast.adapters._patch import original_of

require("uvicorn")
require("websockets")
require("wsproto")
import uvicorn  # noqa: E402
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol  # noqa: E402
from uvicorn.protocols.websockets.wsproto_impl import WSProtocol  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

Script = Callable[[ClientConnection, list[Any]], Awaitable[None]]
IMPLEMENTATIONS = {"websockets-sansio": WebSocketsSansIOProtocol, "wsproto": WSProtocol}
LIBRARY = {"websockets-sansio": "websockets", "wsproto": "wsproto"}


@pytest.fixture(autouse=True)
def restore() -> Iterator[None]:
    yield
    deaccelerate("websockets", "wsproto")


def test_the_protocol_classes_are_patched_and_restored() -> None:
    originals = {
        (WebSocketsSansIOProtocol, "data_received"): vars(WebSocketsSansIOProtocol)["data_received"],
        (WebSocketsSansIOProtocol, "send"): vars(WebSocketsSansIOProtocol)["send"],
        (WSProtocol, "send"): vars(WSProtocol)["send"],
    }
    with accelerated("websockets", "wsproto"):
        for (cls, name), original in originals.items():
            assert original_of(vars(cls)[name]) is original
    for (cls, name), original in originals.items():
        assert vars(cls)[name] is original


async def _echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echoes each message; "close" closes with 4001, "fail" raises."""
    seen = scope["state"]["seen"]
    while True:
        message = await receive()
        seen.append(message)
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] != "websocket.receive":
            return
        elif message.get("text") == "close":
            await send({"type": "websocket.close", "code": 4001, "reason": "asked"})
        elif message.get("text") == "fail":
            raise RuntimeError("the app fails")
        else:
            reply = {key: value for key, value in message.items() if key in ("bytes", "text") and value is not None}
            await send({"type": "websocket.send", **reply})


def _record(monkeypatch: pytest.MonkeyPatch, log: list[Any]) -> None:
    """Log every write, pause_reading, resume_reading and close a uvicorn protocol makes on its transport."""
    transport = selector_events._SelectorSocketTransport
    classes = tuple(IMPLEMENTATIONS.values())
    for name in ("write", "pause_reading", "resume_reading", "close"):
        method = getattr(transport, name)

        def spy(self: Any, *args: Any, _method: Any = method, _name: str = name) -> Any:
            if isinstance(self._protocol, classes):
                log.append((_name, *(_normalized(bytes(arg)) for arg in args)))
            return _method(self, *args)

        monkeypatch.setattr(transport, name, spy)


def _normalized(data: bytes) -> bytes:
    """A handshake response without its lines that differ from run to run (the accept key, the date)."""
    if data.startswith(b"HTTP/"):
        return b"\r\n".join(line for line in data.split(b"\r\n") if not line.lower().startswith((b"date:", b"sec-")))
    return data


async def _run(ws: str, script: Script) -> tuple[list[Any], list[Any]]:
    seen: list[Any] = []
    client_seen: list[Any] = []
    config = uvicorn.Config(
        _echo_app, host="127.0.0.1", port=0, ws=ws, lifespan="off", log_level="critical", ws_ping_interval=None
    )
    config.load()
    server = uvicorn.Server(config)
    state = {"seen": seen}
    config.loaded_app = _with_state(config.loaded_app, state)
    serving = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", compression=None, ping_interval=None) as client:
            try:
                await asyncio.wait_for(script(client, client_seen), TIMEOUT)
            except ConnectionClosed as exc:
                client_seen.append(("closed", exc.rcvd and (exc.rcvd.code, exc.rcvd.reason)))
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, TIMEOUT)
    return seen, client_seen


def _with_state(app: Any, state: dict[str, Any]) -> Any:
    async def with_state(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["state"] = state
        await app(scope, receive, send)

    return with_state


async def _round_trips(ws: ClientConnection, seen: list[Any]) -> None:
    for message in [b"", b"x", bytes(range(256)) * 5, "", "h\u00e9llo \u20ac", "x" * 70000, b"y" * 126]:
        await ws.send(message)
        seen.append(await ws.recv())
    await ws.close(4000, "done")


async def _pings_and_fragments(ws: ClientConnection, seen: list[Any]) -> None:
    pong = await ws.ping(b"ping")
    seen.append(isinstance(await pong, float))
    await ws.send([b"frag", b"ment"])
    seen.append(await ws.recv())
    await ws.send(["t", "ext"])
    seen.append(await ws.recv())
    await ws.send(b"after")
    seen.append(await ws.recv())
    await ws.close()


async def _invalid_utf8(ws: ClientConnection, seen: list[Any]) -> None:
    await ws.send(b"ok", text=True)
    seen.append(await ws.recv())
    await ws.send(b"\xff\xfe", text=True)
    seen.append(await ws.recv())


async def _server_closes(ws: ClientConnection, seen: list[Any]) -> None:
    await ws.send("one")
    seen.append(await ws.recv())
    await ws.send("close")
    seen.append(await ws.recv())


async def _app_fails(ws: ClientConnection, seen: list[Any]) -> None:
    await ws.send("fail")
    seen.append(await ws.recv())


@pytest.mark.parametrize("script", [_round_trips, _pings_and_fragments, _invalid_utf8, _server_closes, _app_fails])
@pytest.mark.parametrize("ws", list(IMPLEMENTATIONS))
def test_messages_flow_control_and_closes_are_uvicorns_own(
    ws: str, script: Script, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL)
    log: list[Any] = []
    _record(monkeypatch, log)
    expected = asyncio.run(_run(ws, script)), log[:]
    log.clear()
    with accelerated(LIBRARY[ws]):
        assert (asyncio.run(_run(ws, script)), log) == expected


async def _burst(ws: ClientConnection, seen: list[Any]) -> None:
    # Messages arrive faster than the app reads them: uvicorn pauses reading, then resumes it.
    for index in range(40):
        await ws.send(f"burst {index}")
    for _ in range(40):
        seen.append(await ws.recv())
    await ws.close()


@pytest.mark.parametrize("ws", list(IMPLEMENTATIONS))
def test_a_burst_is_received_in_order(ws: str) -> None:
    # How TCP cuts the burst varies from run to run: only the messages are compared.
    expected = asyncio.run(_run(ws, _burst))
    assert expected[1] == [f"burst {index}" for index in range(40)]
    with accelerated(LIBRARY[ws]):
        assert asyncio.run(_run(ws, _burst)) == expected


@pytest.mark.parametrize("ws", list(IMPLEMENTATIONS))
def test_the_steady_state_takes_the_direct_paths(ws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every message sent by the app goes straight from its ASGI send to the transport.
    calls = {"send": 0}
    cls = IMPLEMENTATIONS[ws]
    original = vars(cls)["send"]

    async def counted(self: Any, message: Any) -> None:
        calls["send"] += 1
        await original(self, message)

    monkeypatch.setattr(cls, "send", counted)
    with accelerated(LIBRARY[ws]):
        assert original_of(vars(cls)["send"]) is counted
        asyncio.run(_run(ws, _round_trips))
    # Only websocket.accept took uvicorn's own send.
    assert calls["send"] == 1


class _Transport:
    """Records what a protocol writes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))


def _ready_protocol(ws: str) -> Any:
    """A stand-in for an accepted uvicorn protocol of ``ws`` that can write a message at once."""
    from websockets.protocol import OPEN
    from websockets.server import ServerProtocol
    from wsproto import ConnectionType, WSConnection
    from wsproto.connection import Connection

    if ws == "websockets-sansio":
        conn: Any = ServerProtocol()
        conn.state = OPEN
    else:
        conn = WSConnection(ConnectionType.SERVER)
        conn.connection = Connection(ConnectionType.SERVER)
    writable = asyncio.Event()
    writable.set()
    return types.SimpleNamespace(
        writable=writable,
        disconnected=False,
        handshake_complete=True,
        close_sent=False,
        initial_response=None,
        response_started=False,
        conn=conn,
        transport=_Transport(),
    )


class _SetFlag:
    """Looks like a set Event, but is not the asyncio.Event uvicorn waits on."""

    def is_set(self) -> bool:
        return True


MESSAGE = {"type": "websocket.send", "bytes": b"x"}
NOT_AT_ONCE: dict[str, Callable[[Any], tuple[Any, dict[str, Any]]]] = {
    "not a dict": lambda p: ([("type", "websocket.send"), ("bytes", b"x")], {}),
    "not websocket.send": lambda p: ({"type": "websocket.close", "code": 1000}, {}),
    "writing paused": lambda p: (MESSAGE, {"writable": asyncio.Event()}),
    "not an asyncio.Event": lambda p: (MESSAGE, {"writable": _SetFlag()}),
    "disconnected": lambda p: (MESSAGE, {"disconnected": True}),
    "not accepted": lambda p: (MESSAGE, {"handshake_complete": False}),
    "close sent": lambda p: (MESSAGE, {"close_sent": True}),
}


def _send_through(ws: str, protocol: Any, message: Any) -> list[Any]:
    """Run the accelerated ``send`` of ``ws`` on ``protocol``; the messages it left to uvicorn's own."""
    from wsfast.adapters import _uvicorn

    taken: list[Any] = []

    async def own_send(self: Any, message: Any) -> None:
        taken.append(message)

    make = _uvicorn.make_sansio_send if ws == "websockets-sansio" else _uvicorn.make_wsproto_send
    asyncio.run(make(own_send)(protocol, message))
    return taken


@pytest.mark.parametrize("ws", list(IMPLEMENTATIONS))
def test_a_message_that_can_be_written_at_once_is_written_as_one_frame(ws: str) -> None:
    protocol = _ready_protocol(ws)
    assert _send_through(ws, protocol, MESSAGE) == []
    assert protocol.transport.written == [b"\x82\x01x"]


@pytest.mark.parametrize("ws", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("case", list(NOT_AT_ONCE))
def test_a_message_uvicorn_would_not_write_at_once_goes_to_its_own_send(ws: str, case: str) -> None:
    # The checks both send replacements start with: each one alone sends the message uvicorn's way.
    protocol = _ready_protocol(ws)
    message, changes = NOT_AT_ONCE[case](protocol)
    vars(protocol).update(changes)
    assert _send_through(ws, protocol, message) == [message]
    assert protocol.transport.written == []
