"""wsfast on asyncio: :func:`serve` and :func:`connect`, on the standard loop or uvloop.

The same sans-IO protocol and compiled kernels as :class:`wsfast.Server`,
driven by asyncio transports. ``async def handler(ws)`` gets a task per
connection (the websockets idiom); a :class:`wsfast.Handler` gets callbacks
in the loop, with no task per message (the fast path).
"""

from __future__ import annotations

from .client import ClientConnection, connect
from .connection import Connection
from .server import Server, ServerConnection, serve

__all__ = ["ClientConnection", "Connection", "Server", "ServerConnection", "connect", "serve"]
