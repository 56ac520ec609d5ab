"""What a :class:`wsfast.Connection` reports.

A message is its own event: a text message arrives as a ``str``, a binary
message as ``bytes``. Wrapping each in an object would cost more than parsing
it (three times the time per small message), so the hot path creates
nothing but the payload. Everything else is a small slotted dataclass;
:class:`Fragment`, :class:`Ping` and :class:`Pong` are not frozen because a
frozen dataclass costs several times more to create; treat them as read-only
all the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .exceptions import InvalidHandshake, ProtocolError
from .handshake import Request, Response

__all__ = [
    "CloseReceived",
    "Closed",
    "Event",
    "Fragment",
    "HandshakeFailed",
    "HttpRequest",
    "Opened",
    "Ping",
    "Pong",
]


@dataclass(slots=True)
class Fragment:
    """A piece of a message, when the connection streams instead of assembling.

    Attributes:
        data: ``str`` for a text message (decoded incrementally: a code point
            never straddles two fragments), ``bytes`` for a binary message.
        final: whether this is the last piece of the message.
    """

    data: str | bytes
    final: bool


@dataclass(slots=True)
class Ping:
    """A ping; with ``auto_pong`` the pong is already queued."""

    payload: bytes = b""


@dataclass(slots=True)
class Pong:
    """A pong, solicited or not."""

    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The peer started (or answered) the closing handshake.

    Attributes:
        code: the peer's close code (1005 when it sent none).
        reason: the peer's close reason.
    """

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Closed:
    """The connection is over: nothing more will be received or sent.

    Attributes:
        code: the close code: the peer's in a clean close, the one we failed
            the connection with, or 1006 when it was lost without a close.
        reason: the matching close reason.
        clean: whether the closing handshake completed.
        error: the protocol violation that failed the connection, if any.
    """

    code: int
    reason: str
    clean: bool
    error: ProtocolError | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Opened:
    """The opening handshake succeeded; the connection is OPEN.

    Attributes:
        request: the handshake request (sent by a client, received by a server).
        response: the handshake response.
        subprotocol: the negotiated subprotocol, or ``None``.
        extensions: the names of the negotiated extensions.
    """

    request: Request
    response: Response
    subprotocol: str | None
    extensions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HandshakeFailed:
    """The opening handshake failed; the connection is CLOSED.

    On the server side the HTTP error response is already queued.
    """

    error: InvalidHandshake


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A plain HTTP request (no WebSocket upgrade) reached a server connection.

    Answer it with :meth:`wsfast.Connection.send_response`.
    """

    request: Request


#: What :meth:`wsfast.Connection.receive_data` returns a list of: ``str`` is a
#: text message, ``bytes`` a binary message.
Event = str | bytes | Fragment | Ping | Pong | CloseReceived | Closed | Opened | HandshakeFailed | HttpRequest
