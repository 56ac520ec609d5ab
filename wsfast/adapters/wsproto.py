"""Accelerate wsproto: its ``XorMaskerSimple`` masks with ``wsfast.kernels.mask_into``.

What is patched, and why there:

- ``wsproto.frame_protocol.XorMaskerSimple``: ``FrameDecoder.parse_header``
  (one masker per received masked frame) and ``FrameProtocol._serialize_frame``
  (client sends) look this class up in their module globals each time. It is
  replaced by a subclass of wsproto's own class, so ``isinstance`` checks
  against the original still hold.

Calling convention: wsproto's ``process(data)`` copies ``data`` into a new
``bytearray``, masks it and returns it; the key phase carries across calls
because wsproto rotates ``_masking_key`` by ``len(data) % 4``. The subclass
does the same copy, masks it in place with the kernel, and rotates
``_masking_key`` exactly as wsproto does, so the masker's state is the one
wsproto would have. A key that is not 4 bytes of ``bytes``/``bytearray`` goes
to wsproto's own ``process`` (with its errors). wsproto still draws client
masks from ``os.urandom``.
"""

from __future__ import annotations

from typing import Any

from wsfast import kernels
from wsfast.adapters._patch import Patcher, Site, mark

__all__ = ["PATCHER", "SITES", "install", "is_active", "make_masker", "uninstall"]

SITES = (Site("wsproto.frame_protocol", "XorMaskerSimple"),)

_mask_into = kernels.mask_into


def make_masker(original: Any) -> Any:
    """A subclass of wsproto's ``XorMaskerSimple`` whose ``process`` runs the kernel."""
    original_process = original.process

    def process(self: Any, data: Any) -> bytearray:
        """Mask (or unmask) the next chunk of the payload; returns a new bytearray."""
        buffer = bytearray(data)
        key = self._masking_key
        if buffer and (key.__class__ is bytes or key.__class__ is bytearray) and len(key) == 4:
            _mask_into(buffer, key)
            # Rotate the key so the next chunk continues at the right phase,
            # exactly as wsproto does (its state stays comparable).
            rotation = len(buffer) & 3
            if rotation:
                self._masking_key = key[rotation:] + key[:rotation]
            return buffer
        return original_process(self, buffer)  # type: ignore[no-any-return]

    namespace = {
        "__module__": __name__,
        "__qualname__": "XorMaskerSimple",
        "__doc__": "wsproto's XorMaskerSimple, masking with the wsfast kernel.",
        "process": process,
    }
    masker = type("XorMaskerSimple", (original,), namespace)
    return mark(masker, original)


PATCHER = Patcher("wsproto", SITES, lambda site, original: make_masker(original))


def install(import_modules: bool = True) -> None:
    """Route wsproto's masking through wsfast; idempotent.

    Raises:
        ImportError: wsproto is not installed.
    """
    PATCHER.install(import_modules)


def uninstall() -> None:
    """Put wsproto's own ``XorMaskerSimple`` back; idempotent."""
    PATCHER.uninstall()


def is_active() -> bool:
    """Whether :func:`install` is in effect."""
    return PATCHER.active
