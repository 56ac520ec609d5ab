"""Accelerate gunicorn's ASGI worker: its WebSocket unmasking runs on ``wsfast.kernels.mask``.

gunicorn's ASGI worker (``-k asgi``; gunicorn 27 here) serves WebSocket itself
(``gunicorn.asgi.websocket.WebSocketProtocol``), in pure Python. Its
``_unmask`` XORs every payload one byte at a time in a generator
expression, which dominates the cost of every message a client sends.

What is patched, and why there:

- ``gunicorn.asgi.websocket.WebSocketProtocol._unmask``: ``_read_frame``
  calls it through ``self`` for the payload of every frame received.

Not patched: its header parsing and ``_send_frame`` (a few ``struct`` and
``bytearray`` calls per frame, which a kernel call would not beat), and
UTF-8: ``bytes.decode`` is already CPython's C decoder.

Calling convention: ``_unmask(self, payload, masking_key) -> bytes``. An
empty payload comes back as the same object, as gunicorn returns it. The
kernel runs for ``bytes`` or ``bytearray`` payloads with a 4-byte ``bytes``
or ``bytearray`` key (what ``_read_exact`` returns) and gives gunicorn's
result; every other call, errors included, goes to the original.
"""

from __future__ import annotations

from typing import Any

from wsfast import kernels
from wsfast.adapters._patch import Patcher, Site, mark

__all__ = ["PATCHER", "SITES", "install", "is_active", "make_unmask", "uninstall"]

SITES = (Site("gunicorn.asgi.websocket", "WebSocketProtocol._unmask"),)

# Looked up at call time, so that a test can wrap the kernel in a spy.
_mask = kernels.mask

_BUFFERS = (bytes, bytearray)


def make_unmask(original: Any) -> Any:
    """A drop-in ``WebSocketProtocol._unmask`` that runs the kernel, else ``original``."""

    def _unmask(self: Any, payload: Any, masking_key: Any) -> Any:
        """Unmask WebSocket payload data (wsfast kernel)."""
        if payload.__class__ in _BUFFERS and masking_key.__class__ in _BUFFERS and len(masking_key) == 4:
            return _mask(payload, masking_key) if payload else payload
        return original(self, payload, masking_key)

    _unmask.__qualname__ = "WebSocketProtocol._unmask"
    return mark(_unmask, original)


PATCHER = Patcher("gunicorn", SITES, lambda site, original: make_unmask(original))


def install(import_modules: bool = True) -> None:
    """Route gunicorn's WebSocket unmasking through wsfast; idempotent.

    Raises:
        ImportError: gunicorn (with its ASGI worker) is not installed.
    """
    PATCHER.install(import_modules)


def uninstall() -> None:
    """Put gunicorn's own ``_unmask`` back; idempotent."""
    PATCHER.uninstall()


def is_active() -> bool:
    """Whether :func:`install` is in effect."""
    return PATCHER.active
