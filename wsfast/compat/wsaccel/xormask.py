"""wsaccel.xormask on wsfast's kernels: ``XorMaskerNull``, ``XorMaskerSimple``, ``createXorMasker``.

Same signatures, results and errors as wsaccel 0.6: ``XorMaskerSimple(mask)``
takes any one-dimensional buffer of bytes (``ValueError("mask should be
4byte.")`` unless it holds 4), ``process(data)`` returns new ``bytes`` masked
from the current key phase and advances it, ``None`` counting as empty;
``pointer()`` is the number of bytes processed, ``reset()`` goes back to
phase 0. Differences: wsfast's classes are Python classes (subclassable,
with ``__slots__``); Cython's wording of argument-count errors is not copied.
"""

from __future__ import annotations

from typing import Any

from wsfast import kernels
from wsfast.compat.wsaccel._buffer import uchar_view

__all__ = ["XorMaskerNull", "XorMaskerSimple", "createXorMasker"]

_mask = kernels.mask


class XorMaskerNull:
    """A masker that does not mask: ``process`` returns its argument."""

    __slots__ = ("_ptr",)

    def __init__(self, mask: Any = None) -> None:
        self._ptr = 0

    def pointer(self) -> int:
        """The number of bytes processed since creation or :meth:`reset`."""
        return self._ptr

    def reset(self) -> None:
        """Set the byte count back to 0."""
        self._ptr = 0

    def process(self, data: Any) -> Any:
        """Count ``data``'s bytes and return it unchanged."""
        self._ptr += len(data)
        return data

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (), self._ptr)

    def __setstate__(self, ptr: int) -> None:
        self._ptr = ptr


class XorMaskerSimple:
    """Masks a payload with a 4-byte key, continuing the key phase across calls."""

    __slots__ = ("_ptr", "_key")

    def __init__(self, mask: Any) -> None:
        key = b"" if mask is None else uchar_view(mask).tobytes()
        if len(key) != 4:
            raise ValueError("mask should be 4byte.")
        self._key = key
        self._ptr = 0

    def pointer(self) -> int:
        """The number of bytes processed since creation or :meth:`reset`."""
        return self._ptr

    def reset(self) -> None:
        """Start again at the first byte of the key."""
        self._ptr = 0

    def process(self, data: Any) -> bytes:
        """Return ``data`` XOR the key, starting at the current phase; advance it.

        Args:
            data: a one-dimensional buffer of bytes (``None`` counts as empty).

        Raises:
            TypeError: ``data`` is not a buffer.
            ValueError: its items are not single unsigned bytes, or it is not
                one-dimensional.
        """
        cls = data.__class__
        if cls is not bytes and cls is not bytearray:
            data = b"" if data is None else uchar_view(data)
        out = _mask(data, self._key, self._ptr & 3)
        self._ptr += len(out)
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self._key,), self._ptr)

    def __setstate__(self, ptr: int) -> None:
        self._ptr = ptr


def createXorMasker(mask: Any, len: int | None = None) -> XorMaskerSimple:
    """A :class:`XorMaskerSimple` for ``mask``; ``len`` (the payload size) is ignored, as in wsaccel."""
    return XorMaskerSimple(mask)
