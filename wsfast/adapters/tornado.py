"""Accelerate tornado: ``_websocket_mask`` runs on ``wsfast.kernels.mask``.

What is patched, and why there:

- ``tornado.websocket._websocket_mask``: ``WebSocketProtocol13`` masks what a
  client sends (``_write_frame``) and unmasks what a server receives
  (``_receive_frame_loop``) through this module global.
- ``tornado.util._websocket_mask``: where tornado binds it (to its C
  ``speedups.websocket_mask`` or the pure-Python twin); patched too, so code
  that imports it from ``tornado.util`` later gets wsfast as well.

Calling convention: tornado's ``_websocket_mask(mask, data) -> bytes``
(mask first) returns a new ``bytes``; the replacement calls
``mask(data, mask)`` for ``bytes`` arguments with a 4-byte mask (what tornado
passes) and hands anything else to the original, with its errors. tornado
still draws masks from ``os.urandom``.
"""

from __future__ import annotations

from typing import Any

from wsfast import kernels
from wsfast.adapters._patch import Patcher, Site, mark

__all__ = ["PATCHER", "SITES", "install", "is_active", "make_websocket_mask", "uninstall"]

SITES = (
    Site("tornado.util", "_websocket_mask"),
    Site("tornado.websocket", "_websocket_mask"),
)

_mask = kernels.mask


def make_websocket_mask(original: Any) -> Any:
    """A drop-in ``_websocket_mask(mask, data)`` that runs the kernel, else ``original``."""

    def _websocket_mask(mask: Any, data: Any) -> bytes:
        """Return ``data`` masked with the 4-byte ``mask`` (wsfast kernel)."""
        if mask.__class__ is bytes and data.__class__ is bytes and len(mask) == 4:
            return _mask(data, mask)
        return original(mask, data)  # type: ignore[no-any-return]

    _websocket_mask.__qualname__ = "_websocket_mask"
    return mark(_websocket_mask, original)


PATCHER = Patcher("tornado", SITES, lambda site, original: make_websocket_mask(original))


def install(import_modules: bool = True) -> None:
    """Route tornado's WebSocket masking through wsfast; idempotent.

    Raises:
        ImportError: tornado is not installed.
    """
    PATCHER.install(import_modules)


def uninstall() -> None:
    """Put tornado's own ``_websocket_mask`` back; idempotent."""
    PATCHER.uninstall()


def is_active() -> bool:
    """Whether :func:`install` is in effect."""
    return PATCHER.active
