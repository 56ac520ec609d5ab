"""wsfast: the fastest WebSocket (RFC 6455) engine for Python.

The kernels, the RFC's nouns and the exceptions are imported with the
package; the protocol, the server, both clients and TLS are imported on
first use of one of their names (``wsfast.Server``, ``wsfast.connect``...),
so that ``import wsfast`` stays cheap for a program that only masks or
validates, and for ``wsfast.accelerate()``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .accelerate import accelerate, accelerated, deaccelerate
from .exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidUTF8,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
    WsfastError,
)
from .frames import Close, CloseCode, Opcode
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

if TYPE_CHECKING:
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
    from .extensions import PerMessageDeflate
    from .handshake import ClientHandshake, ServerHandshake
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

# The names imported on first use, by the module each comes from.
_LAZY_MODULES = {
    ".client": "ClientConnection CloseEvent ErrorEvent MessageEvent Reconnect ReconnectEvent WebSocket connect",
    ".extensions": "PerMessageDeflate",
    ".handshake": "ClientHandshake ServerHandshake",
    ".protocol": "Connection Role State",
    ".server": "Handler Server ServerConnection",
}
_LAZY = {name: module for module, names in _LAZY_MODULES.items() for name in names.split()}


def __getattr__(name: str) -> Any:
    """Import a heavy layer on first use of one of its names (PEP 562)."""
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'wsfast' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
