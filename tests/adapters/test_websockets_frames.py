"""wsfast.adapters.websockets: ``Frame.parse`` and ``Frame.serialize`` on the kernels, as websockets' own.

Differential: the same bytes and the same sends go through websockets'
sans-IO ``Protocol`` unpatched, then accelerated; every event, byte written,
state, close frame and exception must be the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.adapters import Spy, accelerated, frame_streams, payloads, require
from wsfast.accelerate import accelerate, deaccelerate
from wsfast.adapters import websockets as adapter
from wsfast.adapters._patch import original_of

require("websockets")
from websockets.extensions.permessage_deflate import PerMessageDeflate  # noqa: E402
from websockets.frames import Frame, Opcode  # noqa: E402
from websockets.protocol import Protocol, Side, State  # noqa: E402

PARSE = vars(Frame)["parse"]
SERIALIZE = vars(Frame)["serialize"]
MASK = b"\x12\x34\x56\x78"


@pytest.fixture(autouse=True)
def restore() -> Iterator[None]:
    yield
    deaccelerate("websockets")


@pytest.fixture(autouse=True)
def fixed_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients draw masks from secrets.token_bytes: make them the same in both runs."""
    monkeypatch.setattr("secrets.token_bytes", lambda n: MASK[:n])


def test_parse_and_serialize_are_replaced_and_restored() -> None:
    accelerate("websockets")
    assert original_of(vars(Frame)["parse"]) is PARSE
    assert original_of(vars(Frame)["serialize"]) is SERIALIZE
    deaccelerate("websockets")
    assert vars(Frame)["parse"] is PARSE
    assert vars(Frame)["serialize"] is SERIALIZE


def test_a_buffered_frame_is_read_on_the_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    header, mask = Spy(adapter._parse_header), Spy(adapter._mask)
    monkeypatch.setattr(adapter, "_parse_header", header)
    monkeypatch.setattr(adapter, "_mask", mask)
    accelerate("websockets")
    server = Protocol(Side.SERVER, state=State.OPEN)
    # A fragment is not for Protocol.receive_data's direct path: Frame.parse reads it.
    server.receive_data(_client_frame(Opcode.BINARY, b"hello", fin=False))
    assert [(f.opcode, f.data, f.fin) for f in server.events_received()] == [(Opcode.BINARY, b"hello", False)]
    assert (header.calls, mask.calls) == (1, 1)


def test_a_frame_sent_is_built_on_the_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    header, mask = Spy(adapter._frame_header), Spy(adapter._mask)
    monkeypatch.setattr(adapter, "_frame_header", header)
    monkeypatch.setattr(adapter, "_mask", mask)
    accelerate("websockets")
    client = Protocol(Side.CLIENT, state=State.OPEN)
    # A fragment is not for Protocol.send_binary's direct path: Frame.serialize writes it.
    client.send_binary(b"hello", fin=False)
    assert client.data_to_send() == [_client_frame(Opcode.BINARY, b"hello", fin=False)]
    assert (header.calls, mask.calls) == (1, 1)


def _client_frame(opcode: int, data: bytes, fin: bool = True) -> bytes:
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(data))
    return bytes([0x80 * fin | opcode, 0x80 | len(data)]) + MASK + masked


# -- the differential -----------------------------------------------------------------------------


def _frame(frame: Frame) -> tuple[Any, ...]:
    return (frame.opcode, type(frame.data), bytes(frame.data), frame.fin, frame.rsv1, frame.rsv2, frame.rsv3)


def _error(exc: BaseException | None) -> tuple[Any, ...] | None:
    return None if exc is None else (type(exc), str(exc), _error(exc.__cause__))


MaxSize = int | tuple[int | None, int | None] | None


def _receive(side: Side, chunks: list[bytes], max_size: MaxSize, deflate: bool, eof: bool) -> list[Any]:
    protocol = Protocol(side, state=State.OPEN, max_size=max_size)
    if deflate:
        protocol.extensions = [PerMessageDeflate(False, False, 15, 15)]
    seen: list[Any] = []
    for chunk in [*chunks, None] if eof else chunks:
        try:
            protocol.receive_data(chunk) if chunk is not None else protocol.receive_eof()
        except Exception as exc:
            seen.append(("raised", _error(exc)))
        seen.append([_frame(f) for f in protocol.events_received()])
        seen.append(protocol.data_to_send())
        seen.append((protocol.state, protocol.close_rcvd, protocol.close_sent, protocol.close_rcvd_then_sent))
        seen.append(_error(protocol.parser_exc))
    return seen


@settings(deadline=None, max_examples=300)
@given(
    data=st.data(),
    side=st.sampled_from([Side.SERVER, Side.CLIENT]),
    # A message limit, or (message, fragment) limits, as Protocol takes them.
    max_size=st.none()
    | st.integers(0, 300)
    | st.tuples(st.none() | st.integers(0, 300), st.none() | st.integers(0, 50)),
    eof=st.booleans(),
)
def test_receiving_is_websockets_own(data: st.DataObject, side: Side, max_size: MaxSize, eof: bool) -> None:
    chunks = data.draw(frame_streams(masked=side is Side.SERVER))
    expected = _receive(side, chunks, max_size, False, eof)
    with accelerated("websockets"):
        assert _receive(side, chunks, max_size, False, eof) == expected


def _deflated(data: bytes) -> bytes:
    client = Protocol(Side.CLIENT, state=State.OPEN)
    client.extensions = [PerMessageDeflate(False, False, 15, 15)]
    client.send_binary(data)
    return b"".join(client.data_to_send())


@settings(deadline=None, max_examples=100)
@given(messages=st.lists(payloads(max_size=2000), min_size=1, max_size=4), cut=st.integers(1, 64))
def test_receiving_compressed_frames_is_websockets_own(messages: list[bytes], cut: int) -> None:
    wire = b"".join(_deflated(m) for m in messages)
    chunks = [wire[i : i + cut] for i in range(0, len(wire), cut)]
    expected = _receive(Side.SERVER, chunks, 1000, True, False)
    with accelerated("websockets"):
        assert _receive(Side.SERVER, chunks, 1000, True, False) == expected


SENDS = st.one_of(
    st.tuples(
        st.sampled_from(["send_text", "send_binary", "send_continuation"]), payloads(max_size=300), st.booleans()
    ),
    st.tuples(st.sampled_from(["send_ping", "send_pong"]), payloads(max_size=130), st.just(True)),
    st.tuples(st.just("send_close"), st.sampled_from([None, 1000, 1001, 3000, 1005, 999]), st.text(max_size=5)),
    st.tuples(
        st.just("frame"),
        st.builds(
            Frame,
            st.sampled_from(list(Opcode)),
            st.binary(max_size=130) | st.builds(memoryview, st.binary(max_size=130)),
            st.booleans(),
            st.booleans(),
            st.booleans(),
            st.booleans(),
        ),
        st.just(None),
    ),
)


def _send(side: Side, sends: list[tuple[str, Any, Any]], deflate: bool) -> list[Any]:
    protocol = Protocol(side, state=State.OPEN)
    if deflate:
        protocol.extensions = [PerMessageDeflate(False, False, 15, 15)]
    seen: list[Any] = []
    for method, first, second in sends:
        try:
            if method == "frame":
                seen.append(first.serialize(mask=side is Side.CLIENT, extensions=protocol.extensions))
            elif method == "send_close":
                protocol.send_close(first, second if first is not None else "")
            elif method in ("send_ping", "send_pong"):
                getattr(protocol, method)(first)
            else:
                getattr(protocol, method)(first, fin=second)
        except Exception as exc:
            seen.append(("raised", _error(exc)))
        seen.append(protocol.data_to_send())
        seen.append(protocol.state)
    return seen


@settings(deadline=None, max_examples=300)
@given(side=st.sampled_from([Side.SERVER, Side.CLIENT]), sends=st.lists(SENDS, max_size=6), deflate=st.booleans())
def test_sending_is_websockets_own(side: Side, sends: list[tuple[str, Any, Any]], deflate: bool) -> None:
    expected = _send(side, sends, deflate)
    with accelerated("websockets"):
        assert _send(side, sends, deflate) == expected


def test_a_frame_from_another_reader_goes_to_websockets_own_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    header = Spy(adapter._parse_header)
    monkeypatch.setattr(adapter, "_parse_header", header)
    accelerate("websockets")
    wire = _client_frame(Opcode.TEXT, b"caf\xc3\xa9")

    def read_exact(n: int) -> Iterator[None]:
        nonlocal wire
        chunk, wire = wire[:n], wire[n:]
        return chunk  # type: ignore[return-value]
        yield

    parser = Frame.parse(read_exact, mask=True)
    with pytest.raises(StopIteration) as stop:
        next(parser)
    assert stop.value.value == Frame(Opcode.TEXT, b"caf\xc3\xa9")
    assert header.calls == 0
