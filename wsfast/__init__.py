"""wsfast: the fastest WebSocket (RFC 6455) engine for Python."""

from __future__ import annotations

from ._version import __version__
from .accelerate import accelerate, accelerated, deaccelerate
from .client import (
    ClientConnection,
    CloseEvent,
    ErrorEvent,
    MessageEvent,
    Reconnect,
    ReconnectEvent,
    WebSocket,
    connect,
)
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
from .server import Handler, Server, ServerConnection

__all__ = [
    "HAS_EXTENSION",
    "IMPLEMENTATION",
    "ClientConnection",
    "ClientHandshake",
    "Close",
    "CloseCode",
    "Connection",
    "CloseEvent",
    "ConnectionClosed",
    "ErrorEvent",
    "Frame",
    "FrameParser",
    "Handler",
    "InvalidHandshake",
    "InvalidUTF8",
    "MessageEvent",
    "NegotiationError",
    "Opcode",
    "PayloadTooBig",
    "PerMessageDeflate",
    "ProtocolError",
    "Reconnect",
    "ReconnectEvent",
    "Role",
    "Server",
    "ServerConnection",
    "ServerHandshake",
    "State",
    "Utf8Validator",
    "WebSocket",
    "WsfastError",
    "__version__",
    "accelerate",
    "accelerated",
    "build_frame",
    "connect",
    "deaccelerate",
    "frame_header",
    "mask",
    "mask_into",
    "parse_header",
    "validate_utf8",
]
