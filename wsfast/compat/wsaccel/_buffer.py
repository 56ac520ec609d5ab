"""What a Cython ``const unsigned char[:]`` argument accepts, with its errors.

wsaccel declares its buffer arguments that way: any one-dimensional buffer of
1-byte unsigned items (formats ``B``, ``c`` and ``?``, contiguous or strided,
read-only or not) is accepted; anything else raises what Cython raises.
"""

from __future__ import annotations

import re
import sys
from typing import Any

__all__ = ["uchar_view"]

_ACCEPTED = frozenset(("B", "c", "?"))
_STRUCT_OF_ONE = re.compile(r"T\{[Bc?](:[^:]*:)?\}")
# Cython's names for the struct codes it knows (__Pyx_BufFmt_DescribeTypeChar).
_NAMES = {
    "b": "'signed char'",
    "h": "'short'",
    "H": "'unsigned short'",
    "i": "'int'",
    "I": "'unsigned int'",
    "l": "'long'",
    "L": "'unsigned long'",
    "q": "'long long'",
    "Q": "'unsigned long long'",
    "f": "'float'",
    "d": "'double'",
    "g": "'long double'",
    "Zf": "'complex float'",
    "Zd": "'complex double'",
    "Zg": "'complex long double'",
    "O": "Python object",
    "s": "a string",
    "p": "a string",
    "x": "end",
}
_BYTE_ORDER = "@=<>!"


def uchar_view(obj: Any) -> memoryview:
    """A view of ``obj`` as Cython's ``const unsigned char[:]`` would take it.

    Raises:
        TypeError: ``obj`` does not support the buffer protocol.
        ValueError: it is not one-dimensional, or its items are not 1-byte
            unsigned values (with Cython's message).
    """
    try:
        view = memoryview(obj)
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not '{type(obj).__name__}'") from None
    if view.ndim != 1:
        raise ValueError(f"Buffer has wrong number of dimensions (expected 1, got {view.ndim})")
    fmt = view.format
    if fmt in _ACCEPTED:
        return view
    if fmt[:1] in ("!", ">") and sys.byteorder == "little":
        raise ValueError("Big-endian buffer not supported on little-endian compiler")
    if fmt[:1] == "<" and sys.byteorder == "big":
        raise ValueError("Little-endian buffer not supported on big-endian compiler")
    code = fmt.lstrip(_BYTE_ORDER).lstrip("0123456789")
    if code in _ACCEPTED or _STRUCT_OF_ONE.fullmatch(code):
        return view
    name = _NAMES.get(code)
    if name is None and code.startswith("T{"):
        name = "a struct"
    if name is None:
        raise ValueError(f"Does not understand character buffer dtype format string ('{code[:1]}')")
    raise ValueError(f"Buffer dtype mismatch, expected 'const unsigned char' but got {name}")
