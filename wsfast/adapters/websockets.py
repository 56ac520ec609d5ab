"""Accelerate websockets: its frame masking runs on ``wsfast.kernels.mask``.

What is patched, and why there:

- ``websockets.frames.apply_mask``: ``Frame.parse`` (unmasking what clients
  send) and ``Frame.serialize`` (masking what a client sends) read this module
  global at call time. websockets binds it at import from its C
  ``speedups`` or, without them, from ``websockets.utils``; those defining
  modules are left alone (``websockets.utils.apply_mask`` stays the pure
  reference).
- ``websockets.legacy.framing.apply_mask``: the legacy framing's own binding.
  Importing ``websockets.legacy`` emits a DeprecationWarning, so wsfast never
  imports it: it is patched if it is imported already, or right after the
  program imports it.

Calling convention: the same as websockets' (``apply_mask(data, mask) ->
bytes``, keywords ``data`` and ``mask``, a new ``bytes`` returned). The
kernel runs for the types websockets' own code passes and for which it gives
the identical result: ``bytes`` or ``bytearray`` data (and ``memoryview``,
contiguous or not, when the original is the C speedup) with a 4-byte
``bytes``/``bytearray`` mask. Every other call, errors included (``TypeError``
on None, ``ValueError("mask must contain 4 bytes")``), goes to the original,
so results and exceptions are exactly websockets' own. websockets still draws
its masks from ``secrets.token_bytes``: wsfast does not touch that.
"""

from __future__ import annotations

import sys
from typing import Any

from wsfast import kernels
from wsfast.adapters._patch import Patcher, Site, mark

__all__ = ["SITES", "install", "is_active", "make_apply_mask", "uninstall"]

SITES = (
    Site("websockets.frames", "apply_mask"),
    Site("websockets.legacy.framing", "apply_mask", required=False),
)

# Looked up at call time, so that a test can wrap the kernel in a spy.
_mask = kernels.mask


def make_apply_mask(original: Any) -> Any:
    """A drop-in ``apply_mask`` that runs the wsfast kernel, else ``original``."""
    speedups = original is getattr(sys.modules.get("websockets.speedups"), "apply_mask", None)
    # The C speedup accepts any memoryview (it copies non-contiguous ones);
    # the pure-Python apply_mask mis-sizes views whose items are not bytes.
    data_types = (bytes, bytearray, memoryview) if speedups else (bytes, bytearray)
    mask_types = (bytes, bytearray)

    def apply_mask(data: Any, mask: Any) -> bytes:
        """Apply masking to the data of a WebSocket message (wsfast kernel).

        Args:
            data: Data to mask.
            mask: 4-bytes mask.
        """
        if data.__class__ in data_types and mask.__class__ in mask_types and len(mask) == 4:
            return _mask(data, mask)
        return original(data, mask)  # type: ignore[no-any-return]

    apply_mask.__qualname__ = apply_mask.__name__
    return mark(apply_mask, original)


_PATCHER = Patcher("websockets", SITES, lambda site, original: make_apply_mask(original))


def install(import_modules: bool = True) -> None:
    """Route websockets' masking through wsfast; idempotent.

    Raises:
        ImportError: websockets is not installed.
    """
    _PATCHER.install(import_modules)


def uninstall() -> None:
    """Put websockets' own ``apply_mask`` back; idempotent."""
    _PATCHER.uninstall()


def is_active() -> bool:
    """Whether :func:`install` is in effect."""
    return _PATCHER.active
