"""Type aliases shared by wsfast's modules and stubs."""

from __future__ import annotations

__all__ = ["BytesLike"]

#: Anything that exposes a contiguous byte buffer: bytes, bytearray,
#: memoryview, array.array, mmap, numpy arrays, ...
BytesLike = bytes | bytearray | memoryview
