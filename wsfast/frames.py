"""RFC 6455 nouns: opcodes, close codes, frames and close payloads.

Nothing here knows about connections; the byte-level work is done by
:mod:`wsfast.kernels`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .exceptions import InvalidUTF8, ProtocolError
from .kernels import Frame, FrameParser, build_frame, frame_header, mask, parse_header

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "Close",
    "CloseCode",
    "Frame",
    "FrameParser",
    "Opcode",
    "build_frame",
    "frame_header",
    "is_valid_close_code",
    "mask",
    "parse_header",
]


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 §5.2); the others are reserved."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


# The values again as plain ints under module names (in definition order),
# for the code that compares opcodes frame by frame: a module global is found
# in a few nanoseconds, an attribute of an enum class in about 100 on CPython
# 3.11 (its metaclass hooks attribute access), and the interpreter's fast
# comparison takes exact ints only.
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = (op.value for op in Opcode)


class CloseCode(enum.IntEnum):
    """Close codes of RFC 6455 §7.4.1 and the IANA registry."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005  # never on the wire
    ABNORMAL_CLOSURE = 1006  # never on the wire
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015  # never on the wire


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame (RFC 6455 §7.4).

    1000-1003 and 1007-1014 are defined; 3000-4999 belong to libraries and
    applications. 1005, 1006 and 1015 are reserved for reporting only.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


@dataclass(frozen=True, slots=True)
class Close:
    """The payload of a close frame.

    Attributes:
        code: the close code; 1005 (no status) when the payload was empty.
        reason: the close reason, at most 123 bytes once encoded.
    """

    code: int = CloseCode.NORMAL_CLOSURE
    reason: str = ""

    @classmethod
    def parse(cls, payload: bytes) -> Close:
        """Decode and check a received close payload.

        Raises:
            ProtocolError: a 1-byte payload or a code not allowed on the wire.
            InvalidUTF8: the reason is not valid UTF-8.
        """
        if not payload:
            return cls(CloseCode.NO_STATUS_RCVD, "")
        if len(payload) == 1:
            raise ProtocolError("close frame with a 1-byte payload")
        code = int.from_bytes(payload[:2], "big")
        if not is_valid_close_code(code):
            raise ProtocolError(f"invalid close code {code}")
        try:
            reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidUTF8("close reason is not valid UTF-8") from None
        return cls(code, reason)

    def serialize(self) -> bytes:
        """Encode for sending; an empty payload stands for 1005.

        Raises:
            ValueError: the code may not be sent, or the reason is too long.
        """
        if self.code == CloseCode.NO_STATUS_RCVD:
            if self.reason:
                raise ValueError("a close without a code cannot carry a reason")
            return b""
        if not is_valid_close_code(self.code):
            raise ValueError(f"close code {self.code} may not be sent")
        reason = self.reason.encode("utf-8")
        if len(reason) > 123:
            raise ValueError(f"close reason is {len(reason)} bytes long, the limit is 123")
        return self.code.to_bytes(2, "big") + reason
