"""Accelerate autobahn: its maskers and UTF-8 validator run on ``wsfast.kernels``.

What is patched, and why there (all in ``autobahn.websocket.protocol``, whose
``WebSocketProtocol`` looks these names up in its module globals per frame):

- ``create_xor_masker(mask, length=None)``: one masker per masked frame,
  received (``processData``) or sent (``sendFrame``, ``beginMessageFrame``,
  ``_send_message_frame``). autobahn returns its NVX (CFFI) maskers, or
  pure-Python ``XorMaskerSimple``/``XorMaskerShifted1`` when NVX is off; the
  replacement returns :class:`XorMasker`.
- ``XorMaskerNull``: the pass-through masker for unmasked frames. It does no
  work; wsfast's twin only keeps it slotted and in one place.
- ``Utf8Validator``: one per connection, fed every text frame's payload
  (``onFrameData``) and every close reason. Replaced by :class:`Utf8Validator`,
  which gives autobahn's pure-Python answers, error positions included
  (autobahn's tests compare them).

The defining modules (``autobahn.websocket.xormasker``,
``autobahn.websocket.utf8validator``, ``autobahn.nvx``) are left alone.

Calling conventions: a masker's ``process(data)`` returns new ``bytes`` and
continues the key phase across calls; ``pointer()`` is the number of bytes
processed, ``reset()`` restarts at phase 0; the constructor asserts a 4-byte
mask, as autobahn's do. ``Utf8Validator.validate(chunk)`` returns
``(valid, ends_on_codepoint, current_index, total_index)``. One deliberate
difference from NVX: after a failure, autobahn's NVX validator reports later
non-empty chunks as valid (it stops looking); the pure-Python validator and
this one keep reporting the failure. autobahn still draws masks from
``random.getrandbits`` (or ``os.urandom``), as configured.
"""

from __future__ import annotations

from array import array
from typing import Any

from wsfast import kernels
from wsfast.adapters._patch import Patcher, Site, mark
from wsfast.adapters._utf8 import DfaValidator
from wsfast.compat.wsaccel.xormask import XorMaskerNull

__all__ = [
    "SITES",
    "Utf8Validator",
    "XorMasker",
    "XorMaskerNull",
    "create_xor_masker",
    "install",
    "is_active",
    "uninstall",
]

SITES = (
    Site("autobahn.websocket.protocol", "create_xor_masker"),
    Site("autobahn.websocket.protocol", "XorMaskerNull"),
    Site("autobahn.websocket.protocol", "Utf8Validator"),
)

_mask = kernels.mask


class XorMasker:
    """A frame masker for autobahn: ``process`` masks with the wsfast kernel."""

    __slots__ = ("_ptr", "_key")

    def __init__(self, mask: Any) -> None:
        assert len(mask) == 4, "Mask must be exactly 4 bytes"
        self._ptr = 0
        self._key = mask if mask.__class__ is bytes else bytes(mask)

    def pointer(self) -> int:
        """The number of bytes processed since creation or :meth:`reset`."""
        return self._ptr

    def reset(self) -> None:
        """Start again at the first byte of the key."""
        self._ptr = 0

    def process(self, data: Any) -> bytes:
        """Mask (or unmask) the next chunk of the payload; returns new bytes."""
        cls = data.__class__
        if cls is not bytes and cls is not bytearray and cls is not memoryview:
            data = array("B", data)  # what autobahn's pure-Python maskers accept
        out = _mask(data, self._key, self._ptr & 3)
        self._ptr += len(out)
        return out


def create_xor_masker(mask: Any, length: int | None = None) -> XorMasker:
    """A masker for a frame masked with ``mask``; ``length`` is only a size hint."""
    return XorMasker(mask)


class Utf8Validator(DfaValidator):
    """autobahn's incremental UTF-8 validator on the wsfast kernel.

    Same interface and answers as ``autobahn.websocket.utf8validator``'s
    pure-Python class: ``validate``, ``reset`` and ``decode``.
    """

    __slots__ = ()


_REPLACEMENTS: dict[str, Any] = {
    "create_xor_masker": create_xor_masker,
    "XorMaskerNull": XorMaskerNull,
    "Utf8Validator": Utf8Validator,
}


def _replace(site: Site, original: Any) -> Any:
    # Module-level replacements, shared by every install; autobahn binds each
    # of these names once, so each is marked with the one original it replaces.
    return mark(_REPLACEMENTS[site.attribute], original)


PATCHER = Patcher("autobahn", SITES, _replace)


def install(import_modules: bool = True) -> None:
    """Route autobahn's masking and UTF-8 validation through wsfast; idempotent.

    Raises:
        ImportError: autobahn is not installed.
    """
    PATCHER.install(import_modules)


def uninstall() -> None:
    """Put autobahn's own maskers and validator back; idempotent."""
    PATCHER.uninstall()


def is_active() -> bool:
    """Whether :func:`install` is in effect."""
    return PATCHER.active
