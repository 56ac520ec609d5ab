"""wsfast.adapters.aiohttp: aiohttp's pure-Python ``websocket_mask`` runs on the kernel; its Cython one is left alone.

Most tests put aiohttp's pure-Python mask in the writer first, as aiohttp
without its C extensions has it: that is where wsfast patches.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.adapters import (
    BUFFER_KINDS,
    EDGE_SIZES,
    TIMEOUT,
    Spy,
    accelerated,
    as_kind,
    keys,
    payloads,
    random_bytes,
    require,
    run_python,
    unpatched,
)
from wsfast.accelerate import accelerate, deaccelerate
from wsfast.adapters import aiohttp as adapter
from wsfast.adapters._patch import original_of

require("aiohttp")
import aiohttp  # noqa: E402
import aiohttp._websocket.helpers as helpers  # noqa: E402
import aiohttp._websocket.writer as writer  # noqa: E402
from aiohttp import web  # noqa: E402

ORIGINAL = helpers._websocket_mask_python
DEFAULT = unpatched(writer.websocket_mask)  # the Cython mask in aiohttp's default build


@pytest.fixture(autouse=True)
def python_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "websocket_mask", ORIGINAL)


@pytest.fixture(autouse=True)
def restore(python_mask: None) -> Iterator[None]:
    yield
    deaccelerate("aiohttp")


def test_the_cython_mask_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    if helpers.websocket_mask is ORIGINAL:
        pytest.skip("aiohttp runs without its C extensions here")
    monkeypatch.setattr(writer, "websocket_mask", DEFAULT)
    assert accelerate("aiohttp") == []
    assert writer.websocket_mask is DEFAULT
    assert adapter.PATCHER.native == {
        "aiohttp._websocket.writer.websocket_mask": "aiohttp._websocket.mask._websocket_mask_cython (compiled)"
    }


def in_place(function: Any, mask: Any, data: Any) -> tuple[Any, ...]:
    """What ``function(mask, data)`` returned or raised, and ``data`` afterwards."""
    try:
        result = function(mask, data)
    except Exception as exc:
        message = re.sub(r" at 0x[0-9a-f]+", "", str(exc))  # the pure-Python mask's errors name the object
        return ("raised", type(exc), message, bytes(data) if data is not None else None)
    return ("returned", result, bytes(data))


def test_the_patch_took() -> None:
    assert accelerate("aiohttp") == ["aiohttp"]
    assert writer.websocket_mask is not ORIGINAL
    assert writer.websocket_mask.__module__ == "wsfast.adapters.aiohttp"
    assert original_of(writer.websocket_mask) is ORIGINAL
    # The defining module is left alone.
    assert not original_of(helpers.websocket_mask)


def test_the_writer_reaches_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(adapter._mask_into)
    monkeypatch.setattr(adapter, "_mask_into", spy)
    accelerate("aiohttp")
    sent: list[bytes] = []

    class Transport:
        def is_closing(self) -> bool:
            return False

        def write(self, data: bytes) -> None:
            sent.append(bytes(data))

    class Protocol:
        _paused = False

    ws_writer = writer.WebSocketWriter(Protocol(), Transport(), use_mask=True)  # type: ignore[arg-type]
    asyncio.run(ws_writer.send_frame(b"hello, aiohttp", 0x2))
    assert spy.calls == 1
    frame = b"".join(sent)
    key, payload = frame[2:6], frame[6:]
    assert bytes(b ^ key[i % 4] for i, b in enumerate(payload)) == b"hello, aiohttp"


@settings(deadline=None)
@given(
    data=payloads(), key=keys(), kind=st.sampled_from(BUFFER_KINDS), key_kind=st.sampled_from(["bytes", "bytearray"])
)
def test_same_results_as_aiohttp(data: bytes, key: bytes, kind: str, key_kind: str) -> None:
    mask = key if key_kind == "bytes" else bytearray(key)
    with accelerated("aiohttp"):
        ours, theirs = as_kind(data, kind), as_kind(data, kind)
        assert in_place(writer.websocket_mask, mask, ours) == in_place(ORIGINAL, mask, theirs)
        if kind == "bytearray" and key_kind == "bytes":
            reference = bytearray(data)
            helpers._websocket_mask_python(key, reference)
            assert ours == reference


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_edge_lengths(size: int) -> None:
    data = random_bytes(size, size)
    ours, theirs = bytearray(data), bytearray(data)
    with accelerated("aiohttp"):
        assert writer.websocket_mask(b"\x01\x02\x03\x04", ours) is None
    ORIGINAL(b"\x01\x02\x03\x04", theirs)
    assert ours == theirs


@pytest.mark.parametrize(
    ("mask", "data"),
    [(b"abc", bytearray(b"data")), (b"abcde", bytearray(b"data")), (None, bytearray(b"x")), (b"abcd", None)],
    ids=repr,
)
def test_same_errors_as_aiohttp(mask: Any, data: Any) -> None:
    with accelerated("aiohttp"):
        ours = in_place(writer.websocket_mask, mask, None if data is None else bytearray(data))
    assert ours == in_place(ORIGINAL, mask, None if data is None else bytearray(data))


async def _echo_round_trip(messages: list[str | bytes]) -> list[str | bytes]:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    received: list[str | bytes] = []
    try:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://{host}:{port}/", max_msg_size=0, autoclose=True) as ws:
                for message in messages:
                    if isinstance(message, str):
                        await ws.send_str(message)
                    else:
                        await ws.send_bytes(message)
                    reply = await asyncio.wait_for(ws.receive(), TIMEOUT)
                    received.append(reply.data)
    finally:
        await runner.cleanup()
    return received


MESSAGES: list[str | bytes] = [b"x", random_bytes(125, 1), random_bytes(126, 2), random_bytes(65536, 3)]
MESSAGES += ["h\u00e9llo \u20ac \U0001f600", "x" * 70000]


def test_round_trip_through_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(adapter._mask_into)
    monkeypatch.setattr(adapter, "_mask_into", spy)
    accelerate("aiohttp")
    assert asyncio.run(asyncio.wait_for(_echo_round_trip(MESSAGES), 6 * TIMEOUT)) == MESSAGES
    assert spy.calls >= len(MESSAGES)  # the client's writer masked every message


PURE_READER = """
import asyncio, json, sys
import aiohttp._websocket.reader as reader
import aiohttp._websocket.reader_py as reader_py
from wsfast.accelerate import accelerate
from wsfast.adapters import aiohttp as adapter
from tests.adapters import Spy
from tests.adapters.test_aiohttp import MESSAGES, _echo_round_trip
assert reader.WebSocketReader is reader_py.WebSocketReader, "the pure-Python reader is not in use"
spy = Spy(adapter._mask_into)
adapter._mask_into = spy
accelerate("aiohttp")
received = asyncio.run(asyncio.wait_for(_echo_round_trip(MESSAGES), 60))
print(json.dumps([received == MESSAGES, reader_py.websocket_mask.__module__, spy.calls]))
"""


def test_round_trip_through_the_pure_python_reader() -> None:
    # AIOHTTP_NO_EXTENSIONS makes aiohttp import reader_py: the server then
    # unmasks through the patched name, in a fresh interpreter.
    run = run_python(PURE_READER, env={"AIOHTTP_NO_EXTENSIONS": "1"})
    assert run.returncode == 0, run.stderr
    same, module, calls = json.loads(run.stdout)
    assert same
    assert module == "wsfast.adapters.aiohttp"
    assert calls >= 2 * len(MESSAGES)  # masked by the client, unmasked by the server


def test_deaccelerate_restores_the_original() -> None:
    accelerate("aiohttp")
    assert deaccelerate("aiohttp") == ["aiohttp"]
    assert writer.websocket_mask is ORIGINAL


def test_idempotent() -> None:
    accelerate("aiohttp")
    first = writer.websocket_mask
    assert accelerate("aiohttp") == ["aiohttp"]
    assert writer.websocket_mask is first
    deaccelerate("aiohttp")
    assert writer.websocket_mask is ORIGINAL
