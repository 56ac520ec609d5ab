"""wsfast.adapters.ws4py: ws4py's frame masking and UTF-8 validator run on the kernels."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.adapters import (
    EDGE_SIZES,
    TIMEOUT,
    Spy,
    accelerated,
    outcome,
    payloads,
    random_bytes,
    require,
    unpatched,
    utf8_chunks,
)
from wsfast.accelerate import accelerate, deaccelerate
from wsfast.adapters import _utf8
from wsfast.adapters import ws4py as adapter
from wsfast.adapters._patch import original_of

require("ws4py")
import ws4py.framing as framing  # noqa: E402
import ws4py.streaming as streaming  # noqa: E402
import ws4py.utf8validator as utf8validator  # noqa: E402
from ws4py.client.threadedclient import WebSocketClient  # noqa: E402
from ws4py.server.wsgirefserver import WebSocketWSGIRequestHandler, WSGIServer  # noqa: E402
from ws4py.server.wsgiutils import WebSocketWSGIApplication  # noqa: E402
from ws4py.websocket import EchoWebSocket  # noqa: E402

ORIGINAL_MASK = unpatched(vars(framing.Frame)["mask"])
ORIGINAL_VALIDATOR = unpatched(streaming.Utf8Validator)


@pytest.fixture(autouse=True)
def restore() -> Iterator[None]:
    yield
    deaccelerate("ws4py")


def test_the_patch_took() -> None:
    assert accelerate("ws4py") == ["ws4py"]
    assert vars(framing.Frame)["mask"] is vars(framing.Frame)["unmask"]
    assert original_of(framing.Frame.mask) is ORIGINAL_MASK
    assert streaming.Utf8Validator is adapter.Utf8Validator
    assert original_of(streaming.Utf8Validator) is ORIGINAL_VALIDATOR
    assert utf8validator.Utf8Validator is ORIGINAL_VALIDATOR  # the defining module is left alone


def test_the_hot_path_reaches_the_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    mask, validator = Spy(adapter._mask_into), Spy(_utf8._Utf8Validator)
    monkeypatch.setattr(adapter, "_mask_into", mask)
    monkeypatch.setattr(_utf8, "_Utf8Validator", validator)
    accelerate("ws4py")
    wire = framing.Frame(framing.OPCODE_TEXT, "h\u00e9llo".encode(), masking_key=b"\x01\x02\x03\x04", fin=1).build()
    assert mask.calls == 1
    stream = streaming.Stream(expect_masking=True)
    stream.parser.send(wire)
    assert mask.calls == 2
    assert validator.calls == 1
    assert stream.has_message
    assert stream.message.data == "h\u00e9llo".encode()


@settings(deadline=None)
@given(
    data=payloads(),
    key=st.binary(min_size=4, max_size=9),
    kinds=st.sampled_from([(bytes, bytes), (bytearray, bytes), (bytes, bytearray), (bytearray, bytearray)]),
)
def test_frame_mask_as_ws4py(data: bytes, key: bytes, kinds: tuple[type, type]) -> None:
    data_kind, key_kind = kinds
    frame = framing.Frame(masking_key=key_kind(key))
    with accelerated("ws4py"):
        ours = framing.Frame.mask(frame, data_kind(data))
        assert framing.Frame.unmask(frame, data_kind(data)) == ours
    assert type(ours) is bytearray
    assert ours == ORIGINAL_MASK(frame, data_kind(data))


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_edge_lengths(size: int) -> None:
    data = random_bytes(size, size)
    frame = framing.Frame(masking_key=b"\x01\x02\x03\x04")
    with accelerated("ws4py"):
        assert frame.mask(data) == ORIGINAL_MASK(frame, data)


@pytest.mark.parametrize(
    ("key", "data"),
    [
        (b"abc", b"data"),
        (b"abc", b"ab"),
        (None, b"data"),
        (None, b""),
        (b"abcd", None),
        (b"abcd", "text"),
        ("abcd", b"x"),
    ],
    ids=repr,
)
def test_frame_mask_odd_arguments_as_ws4py(key: Any, data: Any) -> None:
    frame = framing.Frame(masking_key=key)
    with accelerated("ws4py"):
        ours = outcome(frame.mask, data)
    assert ours == outcome(ORIGINAL_MASK, frame, data)


@settings(deadline=None, max_examples=300)
@given(chunks=utf8_chunks())
def test_validator_answers_as_ws4py(chunks: list[bytes]) -> None:
    with accelerated("ws4py"):
        ours = streaming.Utf8Validator()
    theirs = ORIGINAL_VALIDATOR()
    for chunk in chunks:
        assert ours.validate(chunk) == theirs.validate(chunk)
        assert (ours.state, ours.i) == (theirs.state, theirs.i)
    ours.reset()
    theirs.reset()
    assert (ours.state, ours.i, ours.codepoint) == (theirs.state, theirs.i, theirs.codepoint)


@given(octets=st.lists(st.integers(0, 255), max_size=12), chunk=st.binary(max_size=6))
def test_validator_decode_as_ws4py(octets: list[int], chunk: bytes) -> None:
    ours, theirs = adapter.Utf8Validator(), ORIGINAL_VALIDATOR()
    for octet in octets:
        assert ours.decode(octet) == theirs.decode(octet)
        assert (ours.state, ours.codepoint) == (theirs.state, theirs.codepoint)
    assert ours.validate(chunk) == theirs.validate(chunk)
    assert list(adapter.Utf8Validator.UTF8VALIDATOR_DFA) == list(ORIGINAL_VALIDATOR.UTF8VALIDATOR_DFA)


def test_validator_odd_inputs_as_ws4py() -> None:
    for chunk in ([0x61, 0xC3, 0xA9], [0xFF, 0x61], memoryview(b"\xc3\xa9"), "text", None):
        ours, theirs = adapter.Utf8Validator(), ORIGINAL_VALIDATOR()
        assert outcome(ours.validate, chunk)[:2] == outcome(theirs.validate, chunk)[:2]
        assert ours.i == theirs.i


class _Client(WebSocketClient):  # type: ignore[misc]
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.replies: queue.Queue[Any] = queue.Queue()

    def received_message(self, message: Any) -> None:
        self.replies.put(bytes(message.data) if message.is_binary else bytes(message.data).decode("utf-8"))


def test_round_trip_through_ws4py(monkeypatch: pytest.MonkeyPatch) -> None:
    mask, validator = Spy(adapter._mask_into), Spy(_utf8._Utf8Validator)
    monkeypatch.setattr(adapter, "_mask_into", mask)
    monkeypatch.setattr(_utf8, "_Utf8Validator", validator)
    accelerate("ws4py")
    messages: list[str | bytes] = [b"x", random_bytes(125, 1), random_bytes(126, 2), random_bytes(65536, 3)]
    messages += ["h\u00e9llo \u20ac \U0001f600", "x" * 70000]
    from wsgiref.simple_server import make_server

    server = make_server(
        "127.0.0.1",
        0,
        server_class=WSGIServer,
        handler_class=WebSocketWSGIRequestHandler,
        app=WebSocketWSGIApplication(handler_cls=EchoWebSocket),
    )
    server.initialize_websockets_manager()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = _Client(f"ws://127.0.0.1:{server.server_port}/")
        client.connect()
        try:
            for message in messages:
                client.send(message, binary=isinstance(message, bytes))
                assert client.replies.get(timeout=TIMEOUT) == message
        finally:
            client.close()
    finally:
        server.shutdown()
        server.server_close()  # closes the websockets and joins ws4py's manager thread
        thread.join(TIMEOUT)
    assert mask.calls >= 2 * len(messages)  # masked by the client, unmasked by the server
    assert validator.calls >= 2  # one per stream: client and server


def test_deaccelerate_restores_the_originals() -> None:
    accelerate("ws4py")
    assert deaccelerate("ws4py") == ["ws4py"]
    assert vars(framing.Frame)["mask"] is ORIGINAL_MASK
    assert vars(framing.Frame)["unmask"] is ORIGINAL_MASK
    assert streaming.Utf8Validator is ORIGINAL_VALIDATOR


def test_idempotent() -> None:
    accelerate("ws4py")
    first = vars(framing.Frame)["mask"]
    accelerate("ws4py")
    assert vars(framing.Frame)["mask"] is first
    deaccelerate("ws4py")
    assert vars(framing.Frame)["mask"] is ORIGINAL_MASK
