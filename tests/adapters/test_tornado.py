"""wsfast.adapters.tornado: tornado's ``_websocket_mask`` runs on the kernel."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings

from tests.adapters import (
    EDGE_SIZES,
    TIMEOUT,
    Spy,
    accelerated,
    keys,
    outcome,
    payloads,
    random_bytes,
    require,
    unpatched,
)
from wsfast.accelerate import accelerate, deaccelerate
from wsfast.adapters import tornado as adapter
from wsfast.adapters._patch import original_of

require("tornado")
import tornado.httpserver  # noqa: E402
import tornado.netutil  # noqa: E402
import tornado.util  # noqa: E402
import tornado.web  # noqa: E402
import tornado.websocket  # noqa: E402

ORIGINAL = unpatched(tornado.websocket._websocket_mask)


@pytest.fixture(autouse=True)
def restore() -> Iterator[None]:
    yield
    deaccelerate("tornado")


def test_the_patch_took() -> None:
    assert accelerate("tornado") == ["tornado"]
    assert tornado.websocket._websocket_mask is tornado.util._websocket_mask
    assert tornado.websocket._websocket_mask.__module__ == "wsfast.adapters.tornado"
    assert original_of(tornado.websocket._websocket_mask) is ORIGINAL


@settings(deadline=None)
@given(data=payloads(), key=keys())
def test_same_results_as_tornado(data: bytes, key: bytes) -> None:
    with accelerated("tornado"):
        ours = tornado.websocket._websocket_mask(key, data)
    assert type(ours) is bytes
    assert ours == ORIGINAL(key, data)
    assert ours == tornado.util._websocket_mask_python(key, data)


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_edge_lengths(size: int) -> None:
    data = random_bytes(size, size)
    with accelerated("tornado"):
        assert tornado.websocket._websocket_mask(b"\x01\x02\x03\x04", data) == ORIGINAL(b"\x01\x02\x03\x04", data)


@pytest.mark.parametrize(
    ("mask", "data"),
    [
        (b"abc", b"data"),
        (b"abcde", b"data"),
        (b"abcd", "text"),
        ("abcd", b"data"),
        (bytearray(b"abcd"), b"data"),
        (b"abcd", bytearray(b"data")),
        (b"abcd", memoryview(b"data")),
        (None, b"data"),
        (b"abcd", None),
    ],
    ids=repr,
)
def test_same_errors_as_tornado(mask: Any, data: Any) -> None:
    with accelerated("tornado"):
        assert outcome(tornado.websocket._websocket_mask, mask, data) == outcome(ORIGINAL, mask, data)


class _Echo(tornado.websocket.WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        self.write_message(message, binary=isinstance(message, bytes))


async def _echo_round_trip(messages: list[str | bytes]) -> list[str | bytes]:
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    server = tornado.httpserver.HTTPServer(tornado.web.Application([("/", _Echo)]))
    server.add_sockets(sockets)
    received: list[str | bytes] = []
    try:
        connection = await asyncio.wait_for(
            tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/", max_message_size=1 << 24), TIMEOUT
        )
        for message in messages:
            await connection.write_message(message, binary=isinstance(message, bytes))
            reply = await asyncio.wait_for(connection.read_message(), TIMEOUT)
            assert reply is not None
            received.append(reply)
        connection.close()
    finally:
        server.stop()
        await server.close_all_connections()
    return received


def test_round_trip_through_tornado(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(adapter._mask)
    monkeypatch.setattr(adapter, "_mask", spy)
    accelerate("tornado")
    messages: list[str | bytes] = [b"x", random_bytes(125, 1), random_bytes(126, 2), random_bytes(65536, 3)]
    messages += ["h\u00e9llo \u20ac \U0001f600", "x" * 70000]
    assert asyncio.run(asyncio.wait_for(_echo_round_trip(messages), 6 * TIMEOUT)) == messages
    assert spy.calls >= 2 * len(messages)  # masked by the client, unmasked by the server


def test_deaccelerate_restores_the_originals() -> None:
    accelerate("tornado")
    assert deaccelerate("tornado") == ["tornado"]
    assert tornado.websocket._websocket_mask is ORIGINAL
    assert tornado.util._websocket_mask is ORIGINAL


def test_idempotent() -> None:
    accelerate("tornado")
    first = tornado.websocket._websocket_mask
    accelerate("tornado")
    assert tornado.websocket._websocket_mask is first
    deaccelerate("tornado")
    assert tornado.websocket._websocket_mask is ORIGINAL
