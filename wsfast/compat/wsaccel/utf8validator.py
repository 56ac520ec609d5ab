"""wsaccel.utf8validator on wsfast's kernels: ``Utf8Validator``.

Same interface, answers and errors as wsaccel 0.6's Cython class:

- ``validate(buf)`` takes any one-dimensional buffer of bytes and returns
  ``(valid, ends_on_codepoint, current_index, total_index)``, failing at the
  first byte Hoehrmann's DFA rejects. After a failure a non-empty chunk
  returns ``(False, False, 0, i)`` and an empty one ``(True, False, 0, i)``,
  as wsaccel does (its DFA loop never runs on an empty chunk).
- ``state``, ``i`` and ``codepoint`` are read/write C ``int`` values:
  assignment converts like Cython (``__int__``, ``OverflowError`` beyond 32
  bits) and ``i`` wraps around past ``2**31 - 1`` as wsaccel's does.
- ``decode(b)`` steps the DFA by one byte; ``reset()`` starts a new text.

Differences: wsaccel reads past its table for a ``state`` outside 0-8 or a
``decode`` byte outside 0-399; here those raise ``ValueError`` and
``IndexError``. Cython's wording of argument-count errors is not copied.
"""

from __future__ import annotations

import operator
from typing import Any

from wsfast.adapters._utf8 import DFA, UTF8_ACCEPT, DfaValidator
from wsfast.compat.wsaccel._buffer import uchar_view

__all__ = ["Utf8Validator"]

_INT_MIN = -(1 << 31)
_INT_MAX = (1 << 31) - 1


def _c_int(value: Any) -> int:
    """``value`` converted as Cython converts to a C ``int``."""
    if not isinstance(value, int):
        convert = getattr(type(value), "__int__", None)
        if convert is None:
            raise TypeError("an integer is required")
        value = convert(value)
    if not _INT_MIN <= value <= _INT_MAX:
        raise OverflowError("value too large to convert to int")
    return int(value)


def _wrap(value: int) -> int:
    """``value`` as a 32-bit C ``int`` holds it (two's complement)."""
    return ((value - _INT_MIN) & 0xFFFFFFFF) + _INT_MIN


class Utf8Validator(DfaValidator):
    """Incremental UTF-8 validator with constant memory consumption (minimal state).

    Implements the interface of Bjoern Hoehrmann's "Flexible and Economical
    UTF-8 Decoder" (http://bjoern.hoehrmann.de/utf-8/decoder/dfa/), as wsaccel
    does, on wsfast's UTF-8 kernel.
    """

    __slots__ = ()

    _FAST_LIMIT = _INT_MAX

    def _integer(self, value: Any) -> int:
        return _c_int(value)

    def _wrap(self, value: int) -> int:
        return value if _INT_MIN <= value <= _INT_MAX else _wrap(value)

    def _coerce(self, data: Any) -> Any:
        if data is None:
            raise TypeError("'NoneType' is not iterable")
        return uchar_view(data)

    def decode(self, b: Any) -> int:
        """Eat one UTF-8 octet, and validate on the fly.

        Returns UTF8_ACCEPT when enough octets have been consumed, in which case
        self.codepoint contains the decoded Unicode code point.

        Returns UTF8_REJECT when invalid UTF-8 was encountered.

        Returns some other positive integer when more octets need to be eaten.
        """
        index = operator.index(b)
        if not 0 <= index < len(DFA):
            raise IndexError(f"byte {index} is outside the UTF-8 DFA table")
        kind = DFA[index]
        state = self.state
        if state != UTF8_ACCEPT:
            # C int arithmetic: the shift wraps, then ORs with a Python int.
            self._codepoint = _c_int((b & 0x3F) | _wrap(self._codepoint << 6))
        else:
            self._codepoint = _c_int((0xFF >> kind) & b)
        state = DFA[256 + state * 16 + kind]
        self._seed(state, self._total())
        return state
