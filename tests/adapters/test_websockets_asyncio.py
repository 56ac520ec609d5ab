"""wsfast.adapters.websockets: asyncio ``Connection.send``, ``recv`` and ``data_received`` inline, as websockets' own.

Differential: each script runs a websockets asyncio client against a
websockets asyncio server on loopback, unpatched then accelerated; every
message, exception, close code and reason either side sees must be the same.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.adapters import Spy, accelerated, require
from tests.timeouts import TIMEOUT
from wsfast.accelerate import accelerate, deaccelerate
from wsfast.adapters import _websockets_protocol
from wsfast.adapters._patch import original_of

require("websockets")
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.asyncio.connection import Connection  # noqa: E402
from websockets.asyncio.server import ServerConnection, serve  # noqa: E402
from websockets.exceptions import ConcurrencyError, ConnectionClosed  # noqa: E402
from websockets.protocol import Protocol  # noqa: E402

SEND = vars(Connection)["send"]
RECV = vars(Connection)["recv"]
DATA_RECEIVED = vars(Connection)["data_received"]

Script = Callable[[ClientConnection, list[Any]], Awaitable[None]]
Handler = Callable[[ServerConnection, list[Any]], Awaitable[None]]


@pytest.fixture(autouse=True)
def restore() -> Iterator[None]:
    yield
    deaccelerate("websockets")


def test_send_recv_and_data_received_are_replaced_and_restored() -> None:
    accelerate("websockets")
    assert original_of(vars(Connection)["send"]) is SEND
    assert original_of(vars(Connection)["recv"]) is RECV
    assert original_of(vars(Connection)["data_received"]) is DATA_RECEIVED
    deaccelerate("websockets")
    assert vars(Connection)["send"] is SEND
    assert vars(Connection)["recv"] is RECV
    assert vars(Connection)["data_received"] is DATA_RECEIVED


def _closed(exc: ConnectionClosed) -> tuple[Any, ...]:
    def close(frame: Any) -> Any:
        return None if frame is None else (frame.code, frame.reason)

    cause = exc.__cause__
    return (type(exc).__name__, close(exc.rcvd), close(exc.sent), exc.rcvd_then_sent, cause.__class__.__name__)


async def _echo(ws: ServerConnection, seen: list[Any]) -> None:
    try:
        while True:
            message = await ws.recv()
            seen.append(message)
            await ws.send(message)
    except ConnectionClosed as exc:
        seen.append(_closed(exc))


async def _run(script: Script, handler: Handler = _echo) -> tuple[list[Any], list[Any]]:
    server_seen: list[Any] = []
    client_seen: list[Any] = []
    done = asyncio.Event()

    async def serve_one(ws: ServerConnection) -> None:
        try:
            await handler(ws, server_seen)
        finally:
            done.set()

    async with serve(serve_one, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", compression=None, ping_interval=None) as client:
            try:
                await asyncio.wait_for(script(client, client_seen), TIMEOUT)
            except ConnectionClosed as exc:
                client_seen.append(_closed(exc))
        await asyncio.wait_for(done.wait(), TIMEOUT)
    return server_seen, client_seen


async def _round_trips(ws: ClientConnection, seen: list[Any]) -> None:
    for message in [b"", b"x", bytes(range(256)) * 5, "", "h\u00e9llo \u20ac", "x" * 70000, bytearray(b"ba")]:
        await ws.send(message)
        seen.append(await ws.recv())


async def _send_options(ws: ClientConnection, seen: list[Any]) -> None:
    for message, text in [(b"bin as text", True), ("text as binary", False), (memoryview(b"view"), None)]:
        await ws.send(message, text=text)
        seen.append(await ws.recv())
    for decode in (True, False, None):
        await ws.send(b"caf\xc3\xa9")
        seen.append(await ws.recv(decode=decode))
        await ws.send("caf\u00e9")
        seen.append(await ws.recv(decode=decode))


async def _fragments(ws: ClientConnection, seen: list[Any]) -> None:
    await ws.send([b"frag", b"ment", b"ed"])
    seen.append(await ws.recv())
    await ws.send(["t", "e", "xt"])
    seen.append(await ws.recv())
    await ws.send(b"after")
    seen.append(await ws.recv())


async def _invalid_utf8(ws: ClientConnection, seen: list[Any]) -> None:
    await ws.send(b"ok", text=True)
    seen.append(await ws.recv())
    await ws.send(b"\xff\xfe", text=True)
    seen.append(await ws.recv())


async def _close_then_send(ws: ClientConnection, seen: list[Any]) -> None:
    await ws.send("bye")
    seen.append(await ws.recv())
    await ws.close(4000, "done")
    await ws.send("too late")


async def _unencodable(ws: ClientConnection, seen: list[Any]) -> None:
    await ws.send("\ud800")


async def _pings(ws: ClientConnection, seen: list[Any]) -> None:
    for data in (b"one", b"two"):
        pong = await ws.ping(data)
        await ws.send(data)
        seen.append(await ws.recv())
        seen.append(isinstance(await pong, float))


async def _burst(ws: ClientConnection, seen: list[Any]) -> None:
    # More echoes than the client's max_queue (16) arrive before it reads: its reading pauses, then resumes.
    for index in range(40):
        await ws.send(f"burst {index}")
    await asyncio.sleep(0.1)
    seen.append(ws.recv_messages.paused)
    for _ in range(40):
        seen.append(await ws.recv())
    seen.append(ws.recv_messages.paused)


@pytest.mark.parametrize(
    "script",
    [_round_trips, _send_options, _fragments, _invalid_utf8, _close_then_send, _unencodable, _pings, _burst],
)
def test_messages_and_closes_are_websockets_own(script: Script, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "websockets")
    expected = asyncio.run(_run(script)), _logged(caplog)
    with accelerated("websockets"):
        assert (asyncio.run(_run(script)), _logged(caplog)) == expected


def _logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, str, Any]]:
    records = [(r.name, r.levelno, r.getMessage(), r.exc_info and r.exc_info[0]) for r in caplog.records]
    caplog.clear()
    return records


async def _cancelled_then_concurrent(ws: ServerConnection, seen: list[Any]) -> None:
    try:
        await asyncio.wait_for(ws.recv(), 0.01)
    except TimeoutError:
        seen.append("timed out")
    first = asyncio.ensure_future(ws.recv())
    await asyncio.sleep(0)
    try:
        await ws.recv()
    except ConcurrencyError as exc:
        seen.append(str(exc))
    seen.append(await first)
    await ws.send("next")
    await _echo(ws, seen)


async def _slow_sender(ws: ClientConnection, seen: list[Any]) -> None:
    await asyncio.sleep(0.2)
    await ws.send("first")
    seen.append(await ws.recv())
    await ws.send(b"second")
    seen.append(await ws.recv())


def test_cancelled_and_concurrent_recv_are_websockets_own() -> None:
    expected = asyncio.run(_run(_slow_sender, _cancelled_then_concurrent))
    assert expected[0][:2] == [
        "timed out",
        "cannot call recv while another coroutine is already running recv or recv_streaming",
    ]
    with accelerated("websockets"):
        assert asyncio.run(_run(_slow_sender, _cancelled_then_concurrent)) == expected


def test_the_steady_state_runs_on_the_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    header, frame_header = Spy(_websockets_protocol._parse_header), Spy(_websockets_protocol._frame_header)
    monkeypatch.setattr(_websockets_protocol, "_parse_header", header)
    monkeypatch.setattr(_websockets_protocol, "_frame_header", frame_header)
    accelerate("websockets")
    server_seen, client_seen = asyncio.run(_run(_round_trips))
    assert client_seen == [b"", b"x", bytes(range(256)) * 5, "", "h\u00e9llo \u20ac", "x" * 70000, b"ba"]
    # Seven messages each way: received by both sides and sent by both sides on the kernels.
    assert header.calls >= 14 and frame_header.calls >= 14


def _events_received_calls(script: Script) -> int:
    """How many times websockets' ``Protocol.events_received`` runs on either side during ``script``."""
    code = Protocol.events_received.__code__
    calls = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "call" and frame.f_code is code:
            calls += 1

    sys.setprofile(profile)
    try:
        asyncio.run(_run(script))
    finally:
        sys.setprofile(None)
    return calls


def test_data_frames_are_queued_without_the_empty_steps() -> None:
    unpatched = _events_received_calls(_round_trips)
    with accelerated("websockets"):
        # Left: the handshakes and the closing handshake; the 14 data frames skip it.
        assert _events_received_calls(_round_trips) <= unpatched - 14
