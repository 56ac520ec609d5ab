"""Accelerate ws4py: frame masking and UTF-8 validation run on ``wsfast.kernels``.

What is patched, and why there:

- ``ws4py.framing.Frame.mask`` and ``Frame.unmask`` (one function under two
  names): ``Frame.build`` masks what a client sends, ``Stream.parser``
  unmasks what a server receives; both go through the class attribute.
- ``ws4py.streaming.Utf8Validator``: ``Stream.parser`` creates one per stream
  from this module global and feeds it every text frame. The defining module
  ``ws4py.utf8validator`` is left alone.

Calling conventions: ``Frame.mask(data)`` returns a new ``bytearray``, masked
with the first 4 bytes of ``self.masking_key`` (ws4py indexes ``key[i % 4]``,
so a longer key is used only up to its 4th byte). The kernel runs for
``bytes``/``bytearray`` data and keys of at least 4 bytes; anything else goes
to ws4py's own method, with its errors. ``Utf8Validator.validate(chunk)``
returns ws4py's exact answers, quirk included: on success ws4py's index is
that of the chunk's *last* byte (``len - 1``), not its length, and its running
total adds up those indexes. ws4py still draws masks from ``os.urandom``.
"""

from __future__ import annotations

from typing import Any

from wsfast import kernels
from wsfast.adapters._patch import Patcher, Site, mark
from wsfast.adapters._utf8 import DFA, DfaValidator, dfa_validate

__all__ = ["PATCHER", "SITES", "Utf8Validator", "install", "is_active", "make_frame_mask", "uninstall"]

SITES = (
    Site("ws4py.framing", "Frame.mask"),
    Site("ws4py.framing", "Frame.unmask"),
    Site("ws4py.streaming", "Utf8Validator"),
)

_mask_into = kernels.mask_into


def make_frame_mask(original: Any) -> Any:
    """A drop-in ``Frame.mask``/``Frame.unmask`` method that runs the kernel."""

    def mask(self: Any, data: Any) -> bytearray:
        """Mask or unmask ``data`` with ``self.masking_key`` (wsfast kernel)."""
        key = self.masking_key
        if (data.__class__ is bytes or data.__class__ is bytearray) and (
            key.__class__ is bytes or key.__class__ is bytearray
        ):
            size = len(key)
            if size >= 4:
                masked = bytearray(data)
                _mask_into(masked, key if size == 4 else key[:4])
                return masked
        return original(self, data)  # type: ignore[no-any-return]

    mask.__qualname__ = "Frame.mask"
    return mark(mask, original)


class Utf8Validator(DfaValidator):
    """ws4py's incremental UTF-8 validator on the wsfast kernel (same answers)."""

    __slots__ = ()

    #: ws4py exposes its DFA table as a class attribute.
    UTF8VALIDATOR_DFA = list(DFA)

    def validate(self, ba: Any) -> tuple[bool, bool, int, int]:
        """Validate the next chunk; see the module docstring for ws4py's indexes."""
        cls = ba.__class__
        if cls is not bytes and cls is not bytearray:
            return self._slow(ba)
        valid, complete, index, total = self._feed(ba)
        if valid:
            if index:
                index -= 1  # ws4py reports the last byte's index...
                self._base -= 1  # ...and counts it in its total
            if not complete:
                self._remember(ba)
        elif index == 0 and not ba:
            valid = True  # ws4py's loop never runs on an empty chunk, even after a failure
        return (valid, complete, index, total + self._base)

    def _slow(self, data: Any) -> tuple[bool, bool, int, int]:
        state, valid, index = dfa_validate(self.state, data, last_index=True)
        total = self._total() + index
        self._seed(state, total)
        return (valid, state == self.UTF8_ACCEPT, index, total)


def _replace(site: Site, original: Any) -> Any:
    if site.attribute == "Utf8Validator":
        return mark(Utf8Validator, original)
    return make_frame_mask(original)  # Frame.mask and Frame.unmask share one original


PATCHER = Patcher("ws4py", SITES, _replace)


def install(import_modules: bool = True) -> None:
    """Route ws4py's masking and UTF-8 validation through wsfast; idempotent.

    Raises:
        ImportError: ws4py is not installed.
    """
    PATCHER.install(import_modules)


def uninstall() -> None:
    """Put ws4py's own methods and validator back; idempotent."""
    PATCHER.uninstall()


def is_active() -> bool:
    """Whether :func:`install` is in effect."""
    return PATCHER.active
