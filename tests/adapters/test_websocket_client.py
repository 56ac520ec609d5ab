"""wsfast.adapters.websocket_client: websocket-client's masking and UTF-8 checks run on the kernels."""

from __future__ import annotations

import array
import threading
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
    utf8_chunks,
)
from wsfast.accelerate import accelerate, deaccelerate
from wsfast.adapters import websocket_client as adapter
from wsfast.adapters._patch import original_of

websocket = require("websocket", "websocket-client")
import websocket._abnf as abnf  # noqa: E402
import websocket._utils as utils  # noqa: E402

require("websockets")  # the server of the round trip
import websockets.sync.server  # noqa: E402

ORIGINAL_MASK = unpatched(abnf._mask)
ORIGINAL_ABNF_MASK = unpatched(vars(abnf.ABNF)["mask"])
ORIGINAL_VALIDATE = unpatched(utils._validate_utf8)


@pytest.fixture(autouse=True)
def restore() -> Iterator[None]:
    yield
    deaccelerate("websocket_client")


def test_the_patch_took() -> None:
    assert accelerate("websocket-client") == ["websocket_client"]
    assert abnf._mask.__module__ == "wsfast.adapters.websocket_client"
    assert original_of(abnf._mask) is ORIGINAL_MASK
    assert original_of(vars(abnf.ABNF)["mask"]) is ORIGINAL_ABNF_MASK
    assert isinstance(vars(abnf.ABNF)["mask"], staticmethod)
    assert original_of(utils._validate_utf8) is ORIGINAL_VALIDATE


def test_the_hot_path_reaches_the_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    mask, validate = Spy(adapter._mask), Spy(adapter._validate_utf8)
    monkeypatch.setattr(adapter, "_mask", mask)
    monkeypatch.setattr(adapter, "_validate_utf8", validate)
    accelerate("websocket_client")
    frame = abnf.ABNF.create_frame("h\u00e9llo", abnf.ABNF.OPCODE_TEXT)
    wire = frame.format()
    assert mask.calls == 1
    assert websocket.ABNF.mask(wire[2:6], wire[6:]) == "h\u00e9llo".encode()
    assert mask.calls == 2
    assert utils.validate_utf8("h\u00e9llo".encode())
    assert validate.calls == 1


@settings(deadline=None)
@given(data=payloads(), key=keys())
def test_same_results_as_websocket_client(data: bytes, key: bytes) -> None:
    with accelerated("websocket_client"):
        assert abnf.ABNF.mask(key, data) == ORIGINAL_ABNF_MASK.__func__(key, data)
        arrays = (array.array("B", key), array.array("B", data))
        assert abnf._mask(*arrays) == ORIGINAL_MASK(*arrays)
        assert abnf._mask(*arrays) == bytes(b ^ key[i % 4] for i, b in enumerate(data))


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_edge_lengths(size: int) -> None:
    data = random_bytes(size, size)
    with accelerated("websocket_client"):
        assert abnf.ABNF.mask(b"\x01\x02\x03\x04", data) == ORIGINAL_ABNF_MASK.__func__(b"\x01\x02\x03\x04", data)


@pytest.mark.parametrize(
    ("key", "data"),
    [
        ("abcd", "text"),  # str keys and data are latin-1 encoded
        (b"abcd", None),
        (b"abc", b"data"),
        (b"abcde", b"data"),
        (bytearray(b"abcd"), bytearray(b"data")),
        (b"abcd", memoryview(b"data")),
        (None, b"data"),
        (b"abcd", 5),
    ],
    ids=repr,
)
def test_odd_arguments_as_websocket_client(key: Any, data: Any) -> None:
    with accelerated("websocket_client"):
        assert outcome(abnf.ABNF.mask, key, data) == outcome(ORIGINAL_ABNF_MASK.__func__, key, data)


@settings(deadline=None, max_examples=300)
@given(chunks=utf8_chunks())
def test_utf8_answers_as_websocket_client(chunks: list[bytes]) -> None:
    text = b"".join(chunks)
    with accelerated("websocket_client"):
        assert utils._validate_utf8(text) is ORIGINAL_VALIDATE(text)
        assert utils.validate_utf8(text) is ORIGINAL_VALIDATE(text)


@pytest.mark.parametrize(
    "data", [b"", b"\xe2\x82", b"\xf0\x9f\x98", b"abc\xc3", b"\xed\xa0", b"\xc0", b"ok\x80", bytearray(b"\xe2")]
)
def test_truncated_endings_count_as_valid(data: bytes) -> None:
    with accelerated("websocket_client"):
        assert utils._validate_utf8(data) is ORIGINAL_VALIDATE(data)


def test_round_trip_through_websocket_client(monkeypatch: pytest.MonkeyPatch) -> None:
    mask, validate = Spy(adapter._mask), Spy(adapter._validate_utf8)
    monkeypatch.setattr(adapter, "_mask", mask)
    monkeypatch.setattr(adapter, "_validate_utf8", validate)
    accelerate("websocket_client")
    messages: list[str | bytes] = [b"x", random_bytes(125, 1), random_bytes(126, 2), random_bytes(65536, 3)]
    messages += ["h\u00e9llo \u20ac \U0001f600", "x" * 70000]

    def echo(connection: websockets.sync.server.ServerConnection) -> None:
        for message in connection:
            connection.send(message)

    with websockets.sync.server.serve(echo, "127.0.0.1", 0, compression=None, max_size=None) as server:
        port = server.socket.getsockname()[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            client = websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=TIMEOUT)
            try:
                for message in messages:
                    if isinstance(message, str):
                        client.send(message)
                    else:
                        client.send_binary(message)
                    assert client.recv() == message
            finally:
                client.close()
        finally:
            server.shutdown()
            thread.join(TIMEOUT)
    assert mask.calls >= len(messages)  # every message the client sent
    assert validate.calls >= 2  # every text message it received


def test_deaccelerate_restores_the_originals() -> None:
    accelerate("websocket_client")
    assert deaccelerate("websocket-client") == ["websocket_client"]
    assert abnf._mask is ORIGINAL_MASK
    assert vars(abnf.ABNF)["mask"] is ORIGINAL_ABNF_MASK
    assert utils._validate_utf8 is ORIGINAL_VALIDATE


def test_idempotent() -> None:
    accelerate("websocket_client")
    first = (abnf._mask, vars(abnf.ABNF)["mask"], utils._validate_utf8)
    accelerate("websocket_client")
    assert (abnf._mask, vars(abnf.ABNF)["mask"], utils._validate_utf8) == first
    deaccelerate("websocket_client")
    assert abnf._mask is ORIGINAL_MASK
