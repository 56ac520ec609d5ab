"""wsfast.adapters.wsproto: ``wsproto.frame_protocol.XorMaskerSimple`` runs on the kernel."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from itertools import pairwise
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
    outcome,
    payloads,
    random_bytes,
    require,
    unpatched,
)
from wsfast.accelerate import accelerate, deaccelerate
from wsfast.adapters import wsproto as adapter
from wsfast.adapters._patch import original_of

require("wsproto")
import wsproto.frame_protocol as fp  # noqa: E402
from wsproto import ConnectionType, WSConnection  # noqa: E402
from wsproto.events import (  # noqa: E402
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Request,
    TextMessage,
)

ORIGINAL = unpatched(fp.XorMaskerSimple)


@pytest.fixture(autouse=True)
def restore() -> Iterator[None]:
    yield
    deaccelerate("wsproto")


def test_the_patch_took() -> None:
    assert accelerate("wsproto") == ["wsproto"]
    patched = fp.XorMaskerSimple
    assert patched is not ORIGINAL
    assert patched.__module__ == "wsfast.adapters.wsproto"
    assert issubclass(patched, ORIGINAL)
    assert original_of(patched) is ORIGINAL


def test_the_hot_path_reaches_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    masker, whole = Spy(adapter._mask_into), Spy(adapter._mask)
    monkeypatch.setattr(adapter, "_mask_into", masker)
    monkeypatch.setattr(adapter, "_mask", whole)
    accelerate("wsproto")
    client = fp.FrameProtocol(client=True, extensions=[])
    server = fp.FrameProtocol(client=False, extensions=[])
    wire = bytes(client.send_data(b"hello, wsproto", fin=True))
    assert masker.calls == 1  # masked by the client's XorMaskerSimple
    server.receive_bytes(wire[:5])  # the header is 6 bytes
    assert list(server.received_frames()) == []
    server.receive_bytes(wire[5:9])
    (start,) = list(server.received_frames())
    assert start.payload == b"hel" and not start.frame_finished
    assert masker.calls == 2  # a frame arriving in pieces: unmasked by the server's XorMaskerSimple
    server.receive_bytes(wire[9:] + wire)
    rest, again = list(server.received_frames())
    assert rest.payload == b"lo, wsproto" and again.payload == b"hello, wsproto"
    assert (masker.calls, whole.calls) == (3, 1)  # a frame received whole: unmasked in one kernel call


@settings(deadline=None)
@given(
    data=payloads(),
    key=keys(),
    kind=st.sampled_from(BUFFER_KINDS),
    cuts=st.lists(st.integers(0, 400), max_size=4),
    bytearray_key=st.booleans(),
)
def test_same_results_as_wsproto(data: bytes, key: bytes, kind: str, cuts: list[int], bytearray_key: bool) -> None:
    masking_key: bytes | bytearray = bytearray(key) if bytearray_key else key
    with accelerated("wsproto"):
        ours, theirs = fp.XorMaskerSimple(masking_key), ORIGINAL(masking_key)
        bounds = [0, *sorted(min(cut, len(data)) for cut in cuts), len(data)]
        for start, end in pairwise(bounds):
            chunk = as_kind(data[start:end], kind)
            assert outcome(ours.process, chunk) == outcome(theirs.process, chunk)
            assert ours._masking_key == theirs._masking_key
            assert type(ours._masking_key) is type(theirs._masking_key)


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_edge_lengths(size: int) -> None:
    data = random_bytes(size, size)
    with accelerated("wsproto"):
        result = fp.XorMaskerSimple(b"\x01\x02\x03\x04").process(data)
        assert type(result) is bytearray
        assert result == ORIGINAL(b"\x01\x02\x03\x04").process(data)


@pytest.mark.parametrize(
    ("key", "data"),
    [(b"abc", b"data"), (b"abcde", b"data"), (b"abc", b""), ("abcd", b"data"), (None, b"data"), (b"abcd", None)],
    ids=repr,
)
def test_same_errors_as_wsproto(key: Any, data: Any) -> None:
    with accelerated("wsproto"):
        assert outcome(fp.XorMaskerSimple(key).process, data) == outcome(ORIGINAL(key).process, data)


def _serve_one(listener: socket.socket) -> None:
    """A wsproto echo server for one connection."""
    connection, _ = listener.accept()
    connection.settimeout(TIMEOUT)
    ws = WSConnection(ConnectionType.SERVER)
    with connection:
        while True:
            data = connection.recv(65536)
            if not data:
                return
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, Request):
                    connection.sendall(ws.send(AcceptConnection()))
                elif isinstance(event, Message):
                    echo = type(event)(data=event.data, message_finished=event.message_finished)
                    connection.sendall(ws.send(echo))
                elif isinstance(event, Ping):
                    connection.sendall(ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    connection.sendall(ws.send(event.response()))
                    return


def test_round_trip_through_wsproto(monkeypatch: pytest.MonkeyPatch) -> None:
    masker, whole = Spy(adapter._mask_into), Spy(adapter._mask)
    monkeypatch.setattr(adapter, "_mask_into", masker)
    monkeypatch.setattr(adapter, "_mask", whole)
    accelerate("wsproto")
    messages: list[str | bytes] = [b"x", random_bytes(125, 1), random_bytes(126, 2), random_bytes(65536, 3)]
    messages += ["h\u00e9llo \u20ac \U0001f600", "x" * 70000]
    with socket.create_server(("127.0.0.1", 0)) as listener:
        server = threading.Thread(target=_serve_one, args=(listener,), daemon=True)
        server.start()
        with socket.create_connection(listener.getsockname(), timeout=TIMEOUT) as sock:
            ws = WSConnection(ConnectionType.CLIENT)
            sock.sendall(ws.send(Request(host="127.0.0.1", target="/")))
            events = _receive_until(sock, ws, lambda event: isinstance(event, AcceptConnection))
            for message in messages:
                event: Message[Any] = (
                    TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=message)
                )
                sock.sendall(ws.send(event))
                events = _receive_until(sock, ws, lambda event: isinstance(event, Message) and event.message_finished)
                parts = [event.data for event in events if isinstance(event, Message)]
                assert (parts[0][:0].join(parts)) == message
            sock.sendall(ws.send(CloseConnection(code=1000)))
            _receive_until(sock, ws, lambda event: isinstance(event, CloseConnection))
        server.join(TIMEOUT)
    assert masker.calls + whole.calls >= 2 * len(messages)  # masked by the client, unmasked by the server


def _receive_until(sock: socket.socket, ws: WSConnection, done: Any) -> list[Any]:
    events: list[Any] = []
    while True:
        data = sock.recv(65536)
        assert data, "connection closed early"
        ws.receive_data(data)
        for event in ws.events():
            events.append(event)
            if done(event):
                return events


def test_deaccelerate_restores_the_original() -> None:
    accelerate("wsproto")
    assert deaccelerate("wsproto") == ["wsproto"]
    assert fp.XorMaskerSimple is ORIGINAL


def test_idempotent() -> None:
    accelerate("wsproto")
    first = fp.XorMaskerSimple
    assert accelerate("wsproto") == ["wsproto"]
    assert fp.XorMaskerSimple is first
    deaccelerate("wsproto")
    deaccelerate("wsproto")
    assert fp.XorMaskerSimple is ORIGINAL
