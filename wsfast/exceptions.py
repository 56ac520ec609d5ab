"""Exceptions raised by wsfast.

Every exception derives from :class:`WsfastError`. Protocol violations carry
the RFC 6455 close code the connection must be failed with, so the layer that
catches one knows exactly what to send.
"""

from __future__ import annotations

__all__ = [
    "WsfastError",
    "ProtocolError",
    "InvalidUTF8",
    "PayloadTooBig",
    "InvalidHandshake",
    "NegotiationError",
    "ConnectionClosed",
]


class WsfastError(Exception):
    """Base class of every exception wsfast raises on purpose."""


class ProtocolError(WsfastError, ValueError):
    """The peer broke RFC 6455 (or RFC 7692).

    Attributes:
        code: the close code to fail the connection with (1002 by default).
    """

    code: int = 1002

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidUTF8(ProtocolError):
    """A text message or a close reason is not valid UTF-8 (close code 1007)."""

    code = 1007


class PayloadTooBig(ProtocolError):
    """A frame or message exceeds the configured limit (close code 1009)."""

    code = 1009


class InvalidHandshake(WsfastError):
    """The opening handshake failed.

    Attributes:
        status: the HTTP status that describes the failure (the status the
            server answered with, on the client side; the status to answer
            with, on the server side).
        reason: a short human-readable explanation.
        headers: extra response headers that belong with ``status``
            (for example ``Sec-WebSocket-Version: 13`` with 426).
    """

    def __init__(
        self,
        status: int,
        reason: str,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers or []


class NegotiationError(InvalidHandshake):
    """Extension or subprotocol negotiation failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(400, reason)


class ConnectionClosed(WsfastError):
    """An operation was attempted on a closed (or closing) connection.

    Attributes:
        code: the close code, if one is known (1006 when the connection was
            lost without a close frame).
        reason: the close reason.
    """

    def __init__(self, code: int = 1006, reason: str = "") -> None:
        super().__init__(f"connection closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason
