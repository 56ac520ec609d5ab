"""wsfast: the fastest WebSocket (RFC 6455) engine for Python."""

from __future__ import annotations

from ._version import __version__
from .exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidUTF8,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
    WsfastError,
)
from .extensions import PerMessageDeflate
from .frames import Close, CloseCode, Opcode
from .handshake import ClientHandshake, ServerHandshake
from .kernels import (
    HAS_EXTENSION,
    IMPLEMENTATION,
    Frame,
    FrameParser,
    Utf8Validator,
    build_frame,
    frame_header,
    mask,
    mask_into,
    parse_header,
    validate_utf8,
)
from .protocol import Connection, Role, State

__all__ = [
    "HAS_EXTENSION",
    "IMPLEMENTATION",
    "ClientHandshake",
    "Close",
    "CloseCode",
    "Connection",
    "ConnectionClosed",
    "Frame",
    "FrameParser",
    "InvalidHandshake",
    "InvalidUTF8",
    "NegotiationError",
    "Opcode",
    "PayloadTooBig",
    "PerMessageDeflate",
    "ProtocolError",
    "Role",
    "ServerHandshake",
    "State",
    "Utf8Validator",
    "WsfastError",
    "__version__",
    "build_frame",
    "frame_header",
    "mask",
    "mask_into",
    "parse_header",
    "validate_utf8",
]
