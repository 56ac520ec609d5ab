"""Test helpers: frames as a peer would write them, and two connected peers.

The frame builders are deliberately independent of :mod:`wsfast.kernels`:
they write any frame, including those wsfast refuses to build (fragmented or
oversized control frames, reserved opcodes, RSV bits), and they cannot share
a bug with the code under test.

RSV bits are an int 0-7, as in wsfast: ``RSV1 = 4``, ``RSV2 = 2``, ``RSV3 = 1``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from wsfast.events import Event, Opened
from wsfast.frames import Frame, FrameParser
from wsfast.handshake import ClientHandshake, ServerHandshake
from wsfast.protocol import Connection, Role, State

__all__ = [
    "RSV1",
    "RSV2",
    "RSV3",
    "client_frame",
    "close_payload",
    "deliver",
    "feed",
    "open_pair",
    "peer_frame",
    "raw_frame",
    "sent_bytes",
    "sent_frames",
    "server_frame",
    "transfer",
]

RSV1, RSV2, RSV3 = 4, 2, 1


def _xor(data: bytes, key: bytes) -> bytes:
    """``data`` XOR the repeated 4-byte ``key`` (RFC 6455 §5.3), written from scratch."""
    n = len(data)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def raw_frame(
    opcode: int, payload: Any = b"", *, fin: bool = True, rsv: int = 0, mask_key: bytes | None = None
) -> bytes:
    """Any frame at all, legal or not (RFC 6455 §5.2).

    Args:
        opcode: 0-15, reserved ones included.
        payload: any bytes-like object, of any length (control frames too).
        fin: the FIN bit.
        rsv: the RSV bits, 0-7 (RSV1 = 4).
        mask_key: the 4-byte masking key of a client frame, or ``None``.
    """
    data = bytes(memoryview(payload).cast("B"))
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if mask_key is not None else 0
    length = len(data)
    if length < 126:
        header = bytes((b0, mask_bit | length))
    elif length < 65536:
        header = bytes((b0, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((b0, mask_bit | 127)) + length.to_bytes(8, "big")
    if mask_key is None:
        return header + data
    return header + bytes(mask_key) + _xor(data, mask_key)


def client_frame(opcode: int, payload: Any = b"", fin: bool = True, rsv: int = 0) -> bytes:
    """A frame as a client sends it: masked with a random key."""
    return raw_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=os.urandom(4))


def server_frame(opcode: int, payload: Any = b"", fin: bool = True, rsv: int = 0) -> bytes:
    """A frame as a server sends it: unmasked."""
    return raw_frame(opcode, payload, fin=fin, rsv=rsv)


def peer_frame(conn: Connection, opcode: int, payload: Any = b"", fin: bool = True, rsv: int = 0) -> bytes:
    """A frame as the peer of ``conn`` sends it: masked when ``conn`` is a server."""
    build = client_frame if conn.role is Role.SERVER else server_frame
    return build(opcode, payload, fin, rsv)


def close_payload(code: int, reason: str | bytes = b"") -> bytes:
    """A close frame's payload, unchecked: any code, any reason bytes."""
    if isinstance(reason, str):
        reason = reason.encode()
    return code.to_bytes(2, "big") + reason


def feed(conn: Connection, data: bytes, chunk_size: int | None = None) -> list[Event]:
    """Feed ``data`` to ``conn`` in one call, or in chunks of ``chunk_size``; return all events."""
    if chunk_size is None:
        return conn.receive_data(data)
    events: list[Event] = []
    view = memoryview(data)
    for start in range(0, len(data), chunk_size):
        events += conn.receive_data(view[start : start + chunk_size])
    return events


def deliver(conn: Connection, frames: Sequence[bytes], how: str = "chunk") -> list[Event]:
    """Feed frames the way Autobahn|Testsuite sends them; return all events.

    Args:
        how: ``"chunk"``: everything in one read; ``"frames"``: one read per
            frame ("frame-wise chops"); ``"octets"``: one read per byte
            ("octet-wise chops").
    """
    if how == "chunk":
        return conn.receive_data(b"".join(frames))
    if how == "frames":
        events: list[Event] = []
        for frame in frames:
            events += conn.receive_data(frame)
        return events
    if how == "octets":
        return feed(conn, b"".join(frames), 1)
    raise ValueError(f"unknown delivery {how!r}")


def sent_bytes(conn: Connection) -> bytes:
    """Drain ``conn.data_to_send()`` into one byte string."""
    return b"".join(conn.data_to_send())


def sent_frames(conn: Connection) -> list[Frame]:
    """Drain what ``conn`` queued and parse it as its peer would.

    The peer's parser requires the right masking (masked from a client,
    unmasked from a server), so a wrongly masked frame fails here.
    """
    parser = FrameParser(masked=conn.role is Role.CLIENT, max_frame_size=1 << 40, rsv_allowed=7)
    data = sent_bytes(conn)
    frames = parser.feed(data)
    assert parser.buffered == 0, "a partial frame was queued"
    return frames


def transfer(src: Connection, dst: Connection, chunk_size: int | None = None) -> list[Event]:
    """Move everything ``src`` queued to ``dst``; return the events ``dst`` reports."""
    return feed(dst, sent_bytes(src), chunk_size)


def open_pair(
    *,
    extensions: Iterable[Any] = (),
    server_extensions: Iterable[Any] | None = None,
    subprotocols: Sequence[str] = (),
    server_subprotocols: Sequence[str] | None = None,
    client_options: dict[str, Any] | None = None,
    server_options: dict[str, Any] | None = None,
    **options: Any,
) -> tuple[Connection, Connection]:
    """A client and a server Connection, opened by a real handshake through bytes.

    Args:
        extensions: the extensions the client offers (``PerMessageDeflate``
            objects); the server supports the same unless ``server_extensions``.
        subprotocols: the subprotocols the client offers; the server supports
            the same unless ``server_subprotocols``.
        client_options, server_options: Connection arguments for one side.
        options: Connection arguments for both sides.

    Returns:
        ``(client, server)``, both OPEN, with nothing left to send.
    """
    extensions = list(extensions)
    client = Connection(
        Role.CLIENT,
        handshake=ClientHandshake("ws://example.com/chat", subprotocols=subprotocols, extensions=extensions),
        **options,
        **(client_options or {}),
    )
    server = Connection(
        Role.SERVER,
        handshake=ServerHandshake(
            subprotocols=subprotocols if server_subprotocols is None else server_subprotocols,
            extensions=extensions if server_extensions is None else list(server_extensions),
        ),
        **options,
        **(server_options or {}),
    )
    server_events = transfer(client, server)
    assert len(server_events) == 1 and isinstance(server_events[0], Opened), server_events
    client_events = transfer(server, client)
    assert len(client_events) == 1 and isinstance(client_events[0], Opened), client_events
    assert client.state is State.OPEN and server.state is State.OPEN
    assert client_events[0].extensions == server_events[0].extensions
    assert client.subprotocol == server.subprotocol
    return client, server
