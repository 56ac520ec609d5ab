"""Fuzz targets: each takes one input and raises only when it finds a bug.

The same functions serve ``scripts/fuzz.py`` (under atheris) and the corpus
replay in ``tests/fuzz/test_fuzz.py`` (plain Python), so they import nothing
from atheris. An input is decoded by :func:`decode`: its first byte picks the
target's options, its second the chunking, and the rest is the byte stream,
fed in those chunks.

Each target checks the contract of what it drives, not just "no crash":
twins that agree, well-formed events, bounded output, parse round trips.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from wsfast.events import Closed, CloseReceived, Fragment, Ping, Pong
from wsfast.exceptions import InvalidHandshake, ProtocolError
from wsfast.extensions import PerMessageDeflate, PerMessageDeflateCodec
from wsfast.handshake import ClientHandshake, ServerHandshake
from wsfast.http11 import Headers, RequestParser, Response, ResponseParser
from wsfast.kernels import _py
from wsfast.protocol import Connection, Role, State

__all__ = ["TARGETS", "TwinDisagreement", "decode", "frame_parser", "compare_frame_parsers"]

try:
    from wsfast.kernels import _cy
except ImportError:
    _cy = None  # type: ignore[assignment]


class TwinDisagreement(AssertionError):
    """The pure-Python and the Cython twin answered the same input differently."""


def decode(data: bytes) -> tuple[int, list[bytes]]:
    """Split an input into its options byte and the chunks of its stream.

    Args:
        data: the input; byte 0 is the options, byte 1 the chunking seed
            (0: the stream in one chunk; else chunks of random sizes from 1
            to ``2 ** (seed % 8)`` bytes, drawn from a generator seeded with
            it), the rest the stream.

    Returns:
        ``(options, chunks)``; the chunks joined are the stream.
    """
    options = data[0] if data else 0
    seed = data[1] if len(data) > 1 else 0
    stream = data[2:]
    if seed == 0:
        return options, [stream]
    rng = random.Random(seed)
    largest = 1 << (seed & 7)
    chunks = []
    position = 0
    while position < len(stream):
        size = rng.randint(1, largest)
        chunks.append(stream[position : position + size])
        position += size
    return options, chunks


# --- FrameParser: the two twins against each other ----------------------------

_FRAME_SIZE_LIMITS = (125, 65536, _py.DEFAULT_MAX_FRAME_SIZE, 0)


def _outcome(parser: Any, chunk: bytes) -> tuple[Any, ...]:
    try:
        frames = parser.feed(chunk)
    except ProtocolError as exc:
        return ("error", type(exc).__name__, exc.code)
    return ("frames", [(f.opcode, f.payload, f.fin, f.rsv) for f in frames])


def _error(parser: Any) -> tuple[str, int] | None:
    error = parser.error
    return None if error is None else (type(error).__name__, error.code)


def compare_frame_parsers(data: bytes, twins: tuple[Callable[..., Any], Callable[..., Any]]) -> None:
    """Feed two parsers the same chunks; raise :class:`TwinDisagreement` when they differ.

    Options: bit 0 ``masked``, bits 1-3 ``rsv_allowed``, bits 4-5 the
    ``max_frame_size`` (125, 64 KiB, the default, 0).
    """
    options, chunks = decode(data)
    kwargs = {
        "masked": bool(options & 1),
        "rsv_allowed": (options >> 1) & 7,
        "max_frame_size": _FRAME_SIZE_LIMITS[(options >> 4) & 3],
    }
    parsers = [twin(**kwargs) for twin in twins]
    for index, chunk in enumerate(chunks):
        outcomes = [_outcome(parser, chunk) for parser in parsers]
        if outcomes[0] != outcomes[1]:
            raise TwinDisagreement(f"chunk {index} of {chunks!r} with {kwargs}: {outcomes[0]!r} != {outcomes[1]!r}")
        states = [(_error(parser), parser.buffered) for parser in parsers]
        if states[0] != states[1]:
            raise TwinDisagreement(f"after chunk {index} of {chunks!r} with {kwargs}: {states[0]!r} != {states[1]!r}")


def frame_parser(data: bytes) -> None:
    """``FrameParser.feed``: the pure-Python and the Cython twins must agree."""
    if _cy is None:
        raise RuntimeError("the frame_parser target compares both twins: build the Cython extension")
    compare_frame_parsers(data, (_py.FrameParser, _cy.FrameParser))


# --- Connection.receive_data ---------------------------------------------------

_WINDOW_BITS = (15, 9, 12, 8)
_VALID_CLOSE_CODES = {1000, 1001, 1002, 1003, 1005, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}


def _connection(options: int) -> Connection:
    is_server = bool(options & 1)
    extensions = []
    if options & 2:
        extensions.append(
            PerMessageDeflateCodec(
                is_server=is_server,
                local_no_context_takeover=False,
                remote_no_context_takeover=bool(options & 32),
                local_max_window_bits=15,
                remote_max_window_bits=_WINDOW_BITS[options >> 6],
            )
        )
    return Connection(
        Role.SERVER if is_server else Role.CLIENT,
        extensions=extensions,
        stream_fragments=bool(options & 4),
        max_message_size=256 if options & 8 else 65536,
        auto_pong=not options & 16,
    )


def _check_event(event: object, connection: Connection) -> None:
    limit = connection.max_message_size
    if isinstance(event, str | bytes):
        assert not connection.stream_fragments, f"whole message {event!r} while streaming fragments"
        size = len(event.encode()) if isinstance(event, str) else len(event)
        assert size <= limit, f"message of {size} bytes over max_message_size={limit}"
    elif isinstance(event, Fragment):
        assert connection.stream_fragments, f"{event!r} while assembling messages"
        assert isinstance(event.data, str | bytes), repr(event)
    elif isinstance(event, Ping | Pong):
        assert isinstance(event.payload, bytes) and len(event.payload) <= 125, repr(event)
    elif isinstance(event, CloseReceived):
        assert event.code in _VALID_CLOSE_CODES or 3000 <= event.code < 5000, repr(event)
        assert isinstance(event.reason, str) and len(event.reason.encode()) <= 123, repr(event)
    elif isinstance(event, Closed):
        # A failure that follows other events in the same data leaves the
        # connection OPEN for the replies to them, until data_to_send().
        deferred = connection.state is State.OPEN and connection.should_close_transport
        assert connection.state is State.CLOSED or deferred, f"{event!r} in state {connection.state!r}"
    else:
        raise AssertionError(f"unexpected event {event!r} on an open connection")


def _check_events(events: Iterable[object], connection: Connection, closed: bool) -> bool:
    for event in events:
        assert not closed, f"{event!r} after Closed"
        _check_event(event, connection)
        closed = isinstance(event, Closed)
    return closed


def connection(data: bytes) -> None:
    """``Connection.receive_data``: well-formed events, bounded output.

    Options: bit 0 server (else client), bit 1 permessage-deflate, bit 2
    ``stream_fragments``, bit 3 ``max_message_size`` 256 (else 64 KiB), bit 4
    no ``auto_pong``, bit 5 the peer's ``no_context_takeover``, bits 6-7 its
    window bits (15, 9, 12, 8).
    """
    options, chunks = decode(data)
    conn = _connection(options)
    closed = False
    received = sent = 0
    for chunk in chunks:
        closed = _check_events(conn.receive_data(chunk), conn, closed)
        received += len(chunk)
        sent += sum(len(buffer) for buffer in conn.data_to_send())
        assert not closed or conn.state is State.CLOSED, f"Closed, then state {conn.state!r} after data_to_send()"
        # The worst case is a client's masked pong (6 + n bytes) for an
        # unmasked ping (2 + n), plus one close frame.
        assert sent <= 3 * received + 256, f"{sent} bytes queued for {received} received"
    closed = _check_events(conn.receive_eof(), conn, closed)
    assert closed and conn.state is State.CLOSED, f"no Closed event; state {conn.state!r}"


# --- HTTP/1.1 heads and the opening handshake ------------------------------------

_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def _feed(parser: RequestParser | ResponseParser, chunks: list[bytes]) -> Any:
    """Feed chunks until the head is complete; ``None`` if it never is.

    The bytes fed must end with the parser's ``trailing`` bytes.
    """
    fed = b""
    for chunk in chunks:
        fed += chunk
        head = parser.feed(chunk)
        if head is not None:
            assert fed.endswith(parser.trailing), f"trailing {parser.trailing!r} is not the end of {fed!r}"
            return head
    return None


def http_request(data: bytes) -> None:
    """``RequestParser`` and ``ServerHandshake``: a response for every request.

    Options: bit 0 an ``Origin`` allowlist, bit 1 ``max_header_bytes`` 256
    (else 16 KiB). A parsed request must survive ``serialize()`` and a
    second parse unchanged.
    """
    options, chunks = decode(data)
    parser = RequestParser(max_header_bytes=256 if options & 2 else 16384)
    handshake = ServerHandshake(
        origins=["https://example.com"] if options & 1 else None,
        subprotocols=["chat", "superchat"],
        extensions=[PerMessageDeflate()],
    )
    try:
        request = _feed(parser, chunks)
    except InvalidHandshake as exc:
        handshake.reject(exc).serialize()
        return
    if request is None:
        return
    again = RequestParser(max_header_bytes=1 << 20).feed(request.serialize())
    assert again == request, f"{request!r} serialized and parsed again is {again!r}"
    assert request.target.startswith(request.path) and isinstance(request.query, dict), repr(request)
    try:
        handshake.accept(request).response.serialize()
    except InvalidHandshake as exc:
        handshake.reject(exc).serialize()


def http_response(data: bytes) -> None:
    """``ResponseParser`` and ``ClientHandshake.validate``.

    Options: bit 1 ``max_header_bytes`` 256 (else 16 KiB). A parsed response
    must survive ``serialize()`` and a second parse unchanged.
    """
    options, chunks = decode(data)
    parser = ResponseParser(max_header_bytes=256 if options & 2 else 16384)
    handshake = ClientHandshake(
        "ws://example.com/chat", subprotocols=["chat", "superchat"], extensions=[PerMessageDeflate()], key=_KEY
    )
    try:
        response = _feed(parser, chunks)
    except InvalidHandshake:
        return
    if response is None:
        return
    expected = response
    if response.status != 101 and "Content-Length" not in response.headers:
        headers = Headers(response.headers)
        headers.add("Content-Length", "0")  # serialize() adds it
        expected = Response(response.status, response.reason, headers)
    # serialize() may add a header field: the second parse allows one more.
    again = ResponseParser(max_header_bytes=1 << 20, max_headers=parser.max_headers + 1).feed(response.serialize())
    assert again == expected, f"{response!r} serialized and parsed again is {again!r}"
    try:
        handshake.validate(response)
    except InvalidHandshake:
        pass


#: The targets by the name ``scripts/fuzz.py`` and ``tests/fuzz/corpus/`` use.
TARGETS: dict[str, Callable[[bytes], None]] = {
    "frame_parser": frame_parser,
    "connection": connection,
    "http_request": http_request,
    "http_response": http_response,
}
