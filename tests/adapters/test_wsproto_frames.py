"""wsfast.adapters.wsproto: ``FrameDecoder.process_buffer`` and ``_serialize_frame`` on the kernels, as wsproto's own.

Differential: the same bytes and the same sends go through wsproto's
``FrameProtocol`` unpatched, then accelerated; every frame, byte written,
``ParseFailed`` (message and close code) and decoder state must be the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.adapters import Spy, accelerated, frame_streams, payloads, require
from wsfast.accelerate import accelerate, deaccelerate
from wsfast.adapters import wsproto as adapter

require("wsproto")
from wsproto.extensions import PerMessageDeflate  # noqa: E402
from wsproto.frame_protocol import FrameDecoder, FrameProtocol, Opcode, ParseFailed  # noqa: E402

MASK = b"\x12\x34\x56\x78"


@pytest.fixture(autouse=True)
def restore() -> Iterator[None]:
    yield
    deaccelerate("wsproto")


@pytest.fixture(autouse=True)
def fixed_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients draw masks from os.urandom: make them the same in both runs."""
    monkeypatch.setattr("os.urandom", lambda n: MASK[:n])


def _client_frame(opcode: int, data: bytes) -> bytes:
    return bytes([0x80 | opcode, 0x80 | len(data)]) + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(data))


def test_a_buffered_frame_is_read_on_the_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    header, mask = Spy(adapter._parse_header), Spy(adapter._mask)
    monkeypatch.setattr(adapter, "_parse_header", header)
    monkeypatch.setattr(adapter, "_mask", mask)
    accelerate("wsproto")
    server = FrameProtocol(client=False, extensions=[])
    server.receive_bytes(_client_frame(Opcode.BINARY, b"hello"))
    assert [(f.opcode, f.payload) for f in server.received_frames()] == [(Opcode.BINARY, b"hello")]
    assert (header.calls, mask.calls) == (2, 1)  # the second header call finds the buffer empty


def test_a_server_frame_is_built_on_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    header = Spy(adapter._frame_header)
    monkeypatch.setattr(adapter, "_frame_header", header)
    accelerate("wsproto")
    assert FrameProtocol(client=False, extensions=[]).send_data(b"hello") == bytearray(b"\x82\x05hello")
    assert header.calls == 1


def _state(decoder: FrameDecoder) -> tuple[Any, ...]:
    return (
        decoder.header,
        decoder.effective_opcode,
        decoder.payload_required,
        decoder.payload_consumed,
        bytes(decoder.buffer.buffer),
        decoder.buffer.bytes_used,
    )


def _receive(client: bool, chunks: list[bytes], deflate: bool) -> list[Any]:
    extensions = [PerMessageDeflate()] if deflate else []
    for extension in extensions:
        extension._enabled = True
    protocol = FrameProtocol(client=client, extensions=extensions)
    seen: list[Any] = []
    for chunk in chunks:
        protocol.receive_bytes(chunk)
        try:
            for frame in protocol.received_frames():
                seen.append(
                    (frame.opcode, type(frame.payload), frame.payload, frame.frame_finished, frame.message_finished)
                )
        except ParseFailed as exc:
            seen.append(("failed", str(exc), exc.code))
            break
        seen.append(_state(protocol._frame_decoder))
    return seen


@settings(deadline=None, max_examples=300)
@given(data=st.data(), client=st.booleans(), deflate=st.booleans())
def test_receiving_is_wsprotos_own(data: st.DataObject, client: bool, deflate: bool) -> None:
    chunks = data.draw(frame_streams(masked=not client))
    expected = _receive(client, chunks, deflate)
    with accelerated("wsproto"):
        assert _receive(client, chunks, deflate) == expected


SENDS = st.one_of(
    st.tuples(
        st.just("send_data"),
        payloads(max_size=300)
        | st.text(max_size=20)
        | st.builds(bytearray, st.binary(max_size=20))
        | st.builds(memoryview, st.binary(max_size=20)),
        st.booleans(),
    ),
    st.tuples(st.sampled_from(["ping", "pong"]), st.binary(max_size=130), st.none()),
    st.tuples(st.just("close"), st.sampled_from([None, 1000, 1001, 3000, 1005]), st.none() | st.text(max_size=5)),
    st.tuples(st.just("_serialize_frame"), st.sampled_from(list(Opcode)), st.binary(max_size=130)),
)


def _send(client: bool, sends: list[tuple[str, Any, Any]]) -> list[Any]:
    protocol = FrameProtocol(client=client, extensions=[])
    seen: list[Any] = []
    for method, first, second in sends:
        try:
            if method == "send_data":
                result = protocol.send_data(first, second)
            elif method == "close":
                result = protocol.close(first, second)
            elif method == "_serialize_frame":
                result = protocol._serialize_frame(first, second)
            else:
                result = getattr(protocol, method)(first)
        except Exception as exc:
            seen.append(("raised", type(exc), str(exc)))
        else:
            seen.append((type(result), bytes(result)))
    return seen


@settings(deadline=None, max_examples=300)
@given(client=st.booleans(), sends=st.lists(SENDS, max_size=6))
def test_sending_is_wsprotos_own(client: bool, sends: list[tuple[str, Any, Any]]) -> None:
    expected = _send(client, sends)
    with accelerated("wsproto"):
        assert _send(client, sends) == expected
