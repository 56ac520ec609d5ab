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

__all__ = [
    "HAS_EXTENSION",
    "IMPLEMENTATION",
    "ConnectionClosed",
    "Frame",
    "FrameParser",
    "InvalidHandshake",
    "InvalidUTF8",
    "NegotiationError",
    "PayloadTooBig",
    "ProtocolError",
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
