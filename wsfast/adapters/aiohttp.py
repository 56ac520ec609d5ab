"""Accelerate aiohttp where it runs Python: its in-place ``websocket_mask`` on ``wsfast.kernels.mask_into``.

What is patched, and why there, when the name holds aiohttp's pure-Python
``_websocket_mask_python`` (aiohttp without its C extensions, or
``AIOHTTP_NO_EXTENSIONS=1``):

- ``aiohttp._websocket.writer.websocket_mask``: ``WebSocketWriter`` masks
  every frame a client sends through this module global.
- ``aiohttp._websocket.reader_py.websocket_mask``: the pure-Python reader
  unmasks what clients send through it. aiohttp imports that reader only
  when its Cython reader is unavailable or ``AIOHTTP_NO_EXTENSIONS`` is set,
  so wsfast never imports it: it is patched if imported, or right after.

Already native, left alone: a site holding aiohttp's Cython
``_websocket_mask_cython`` (its default build) is as fast as the kernel
plus a wrapper's call (0.94-1.09x measured), so it is not patched and is
reported in ``PATCHER.native``; ``accelerate()`` then patches nothing in
aiohttp. Profiling aiohttp's echo server on its compiled reader (py-spy,
16 connections x 32 B) finds the rest of its WebSocket path in C too (the
reader, uvloop) or in Python that wsfast has no kernel for
(``WebSocketWriter.send_frame`` builds a 2-byte header with
``struct.pack`` and writes it: its time is the transport's send).

Not patched: aiohttp's Cython reader (``reader_c``) binds
``_websocket_mask_cython`` at C level (``cimport``); no Python name is
looked up, so a server running the compiled reader unmasks with aiohttp's
own code whatever wsfast does. ``aiohttp._websocket.helpers``, which defines
the name, is left alone.

Calling convention: aiohttp's ``websocket_mask(mask, data) -> None`` masks
the ``bytearray`` ``data`` in place with the 4-byte ``bytes`` ``mask`` (note
the order: mask first). The replacement calls ``mask_into(data, mask)`` for
exactly those types and hands anything else to the original, with its
errors. aiohttp still draws masks from its own ``random.getrandbits``.
"""

from __future__ import annotations

from typing import Any

from wsfast import kernels
from wsfast.adapters._patch import Patcher, Site, compiled, mark

__all__ = ["PATCHER", "SITES", "install", "is_active", "make_websocket_mask", "uninstall"]

SITES = (
    Site("aiohttp._websocket.writer", "websocket_mask"),
    Site("aiohttp._websocket.reader_py", "websocket_mask", required=False),
)

_mask_into = kernels.mask_into


def make_websocket_mask(original: Any) -> Any:
    """A drop-in ``websocket_mask(mask, data)`` that runs the kernel, else ``original``."""

    def websocket_mask(mask: Any, data: Any) -> None:
        """Mask the bytearray ``data`` in place with the 4-byte ``mask`` (wsfast kernel)."""
        if mask.__class__ is bytes and data.__class__ is bytearray and len(mask) == 4:
            _mask_into(data, mask)
        else:
            original(mask, data)

    websocket_mask.__qualname__ = "websocket_mask"
    return mark(websocket_mask, original)


PATCHER = Patcher("aiohttp", SITES, lambda site, original: make_websocket_mask(original), native=compiled)


def install(import_modules: bool = True) -> None:
    """Route aiohttp's writer (and pure-Python reader) masking through wsfast; idempotent.

    Raises:
        ImportError: aiohttp is not installed.
    """
    PATCHER.install(import_modules)


def uninstall() -> None:
    """Put aiohttp's own ``websocket_mask`` back; idempotent."""
    PATCHER.uninstall()


def is_active() -> bool:
    """Whether :func:`install` is in effect."""
    return PATCHER.active
