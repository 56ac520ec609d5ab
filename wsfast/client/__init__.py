"""Clients: a blocking one (:func:`connect`) and the browser's API (:class:`WebSocket`).

Both drive the sans-IO :class:`~wsfast.Connection` with the Cython kernels
underneath. :func:`connect` (:mod:`wsfast.client.sync`) uses a plain
blocking socket in the caller's thread; :class:`WebSocket`
(:mod:`wsfast.client.browser`) runs on a selector :class:`~wsfast.loop.Loop`
(its own thread, or one the caller runs) and adds what the browser lacks:
automatic reconnection with backoff (:mod:`wsfast.client.reconnect`) and a
heartbeat.
"""

from __future__ import annotations

from .browser import CloseEvent, ErrorEvent, MessageEvent, WebSocket
from .reconnect import Reconnect, ReconnectEvent
from .sync import ClientConnection, connect

__all__ = [
    "ClientConnection",
    "CloseEvent",
    "ErrorEvent",
    "MessageEvent",
    "Reconnect",
    "ReconnectEvent",
    "WebSocket",
    "connect",
]
