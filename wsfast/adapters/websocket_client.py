"""Accelerate websocket-client: masking and UTF-8 validation run on ``wsfast.kernels``.

What is patched, and why there:

- ``websocket._abnf.ABNF.mask`` (a staticmethod): ``frame_buffer.recv_frame``
  and ``ABNF._get_masked`` call ``ABNF.mask(mask_key, data)``, which copies
  both arguments into ``array.array("B")`` before calling ``_mask``. For
  ``bytes`` arguments (what websocket-client passes) the replacement masks
  directly, skipping both copies.
- ``websocket._abnf._mask``: the module global ``ABNF.mask`` calls; patched for
  every other caller (websocket-client binds it to wsaccel's
  ``XorMaskerSimple`` or its own big-integer XOR).
- ``websocket._utils._validate_utf8``: the module global ``validate_utf8``
  calls for text frames and close reasons.

Calling conventions: ``ABNF.mask(mask_key, data) -> bytes`` and
``_mask(mask_value, data_value) -> bytes`` take the mask first; the kernel
runs for 4-byte ``bytes`` masks (``array("B")`` for ``_mask``), anything else
(``str`` keys, ``None`` data) goes to the original, with its errors.
``_validate_utf8(data) -> bool`` is True unless an invalid byte is seen: a
text *truncated* inside a code point counts as valid, as in both of
websocket-client's own implementations; the replacement keeps that by asking
the incremental validator when the strict check fails. websocket-client still
draws masks from ``os.urandom`` (``ABNF.get_mask_key``).
"""

from __future__ import annotations

from array import array
from typing import Any

from wsfast import kernels
from wsfast.adapters._patch import Patcher, Site, mark

__all__ = [
    "SITES",
    "install",
    "is_active",
    "make_abnf_mask",
    "make_mask",
    "make_validate_utf8",
    "uninstall",
]

SITES = (
    Site("websocket._abnf", "_mask"),
    Site("websocket._abnf", "ABNF.mask"),
    Site("websocket._utils", "_validate_utf8"),
)

_mask = kernels.mask
_validate_utf8 = kernels.validate_utf8
_Utf8Validator = kernels.Utf8Validator


def make_mask(original: Any) -> Any:
    """A drop-in ``_mask(mask_value, data_value)`` over ``array("B")`` arguments."""

    def _mask_arrays(mask_value: Any, data_value: Any) -> bytes:
        """Return ``data_value`` masked with ``mask_value`` (wsfast kernel)."""
        if (
            mask_value.__class__ is array
            and data_value.__class__ is array
            and mask_value.typecode == "B"
            and data_value.typecode == "B"
            and len(mask_value) == 4
        ):
            return _mask(data_value, mask_value)
        return original(mask_value, data_value)  # type: ignore[no-any-return]

    _mask_arrays.__name__ = _mask_arrays.__qualname__ = "_mask"
    return mark(_mask_arrays, original)


def make_abnf_mask(original: Any) -> Any:
    """A drop-in ``ABNF.mask`` staticmethod for ``bytes`` arguments."""
    function = original.__func__ if isinstance(original, staticmethod) else original

    def mask(mask_key: Any, data: Any) -> bytes:
        """Mask or unmask data (wsfast kernel)."""
        if mask_key.__class__ is bytes and data.__class__ is bytes and len(mask_key) == 4:
            return _mask(data, mask_key)
        return function(mask_key, data)  # type: ignore[no-any-return]

    mask.__qualname__ = "ABNF.mask"
    return mark(staticmethod(mask), original)


def make_validate_utf8(original: Any) -> Any:
    """A drop-in ``_validate_utf8(data) -> bool``, truncated endings counting as valid."""

    def validate(utfbytes: Any) -> bool:
        """Whether ``utfbytes`` holds no invalid UTF-8 byte (wsfast kernel)."""
        if utfbytes.__class__ is bytes:
            # The strict check settles the common case in one pass; only a
            # failure needs the incremental validator, which tells an invalid
            # byte from a code point cut short at the end.
            return _validate_utf8(utfbytes) or _Utf8Validator().validate(utfbytes)[0]
        return original(utfbytes)  # type: ignore[no-any-return]

    validate.__name__ = validate.__qualname__ = "_validate_utf8"
    return mark(validate, original)


def _replace(site: Site, original: Any) -> Any:
    if site.attribute == "ABNF.mask":
        return make_abnf_mask(original)
    if site.attribute == "_mask":
        return make_mask(original)
    return make_validate_utf8(original)


PATCHER = Patcher("websocket_client", SITES, _replace)


def install(import_modules: bool = True) -> None:
    """Route websocket-client's masking and UTF-8 validation through wsfast; idempotent.

    Raises:
        ImportError: websocket-client is not installed.
    """
    PATCHER.install(import_modules)


def uninstall() -> None:
    """Put websocket-client's own functions back; idempotent."""
    PATCHER.uninstall()


def is_active() -> bool:
    """Whether :func:`install` is in effect."""
    return PATCHER.active
