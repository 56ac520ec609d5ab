"""Incremental UTF-8 validators that answer like Hoehrmann's DFA, on the wsfast kernel.

wsaccel, autobahn and ws4py each ship a ``Utf8Validator`` built on Bjoern
Hoehrmann's "Flexible and Economical UTF-8 Decoder": a 9-state DFA fed one
byte at a time, whose state, code point and byte count are public. They all
fail at the first byte the DFA rejects, which is where
``wsfast.kernels.Utf8Validator`` fails too, so :class:`DfaValidator` runs
the kernel and derives the rest:

- the public ``state`` is computed on demand: 1 once failed, 0 on a code
  point boundary, else the DFA state of the unfinished code point, kept as
  the last (at most 3) bytes seen;
- setting ``state`` (or :meth:`decode`) re-seeds the kernel with the one
  lead byte that puts the DFA in that state;
- ``i`` is the kernel's byte count plus an offset, so it can be set too;
- after a failure the DFA stays in its reject state: a non-empty chunk fails
  at index 0, but an *empty* chunk, which the DFA loop never enters, reports
  ``valid=True`` (``(True, False, 0, total)``). The kernel stays failed on
  both, so the empty case is translated here.

Subclasses set how integers behave (wsaccel's are C ``int``) and which
argument types they take.
"""

from __future__ import annotations

from typing import Any

from wsfast import kernels

__all__ = ["DFA", "UTF8_ACCEPT", "UTF8_REJECT", "DfaValidator", "dfa_validate"]

UTF8_ACCEPT = 0
UTF8_REJECT = 1

# fmt: off
#: Hoehrmann's table: 256 byte classes, then 9 states x 16 classes.
DFA = bytes((
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  # 00..1f
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  # 20..3f
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  # 40..5f
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  # 60..7f
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,  # 80..9f
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,  # a0..bf
    8, 8, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  # c0..df
    10, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 3, 3,  # e0..ef
    11, 6, 6, 6, 5, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,  # f0..ff
    0, 1, 2, 3, 5, 8, 7, 1, 1, 1, 4, 6, 1, 1, 1, 1,  # s0
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1,  # s1..s2
    1, 2, 1, 1, 1, 1, 1, 2, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1,  # s3..s4
    1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 1, 3, 1, 1, 1, 1, 1, 1,  # s5..s6
    1, 3, 1, 1, 1, 1, 1, 3, 1, 3, 1, 1, 1, 1, 1, 1, 1, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  # s7..s8
))
# fmt: on

# Looked up at each construction, so that a test can wrap the kernel in a spy.
_Utf8Validator = kernels.Utf8Validator

# The lead byte that takes the DFA from ACCEPT to each state (REJECT: 0xFF).
_ENTRY = {1: b"\xff", 2: b"\xc2", 3: b"\xe1", 4: b"\xe0", 5: b"\xed", 6: b"\xf0", 7: b"\xf1", 8: b"\xf4"}
_EMPTY = b""


def _tail_state(tail: bytes) -> int:
    """The DFA state after ``tail``, the last bytes of a valid, unfinished text."""
    start = len(tail) - 1
    while start > 0 and 0x80 <= tail[start] < 0xC0:
        start -= 1  # back to the lead byte of the unfinished code point
    state = UTF8_ACCEPT
    for byte in tail[start:]:
        state = DFA[256 + state * 16 + DFA[byte]]
    return state


def dfa_validate(state: int, data: Any, last_index: bool = False) -> tuple[int, bool, int]:
    """Run the DFA over any sequence of byte values, as the pure-Python twins do.

    Returns:
        ``(state, valid, index)``: the final state, whether no byte was
        rejected, and the index of the rejected byte or the count consumed
        (with ``last_index``, ws4py's count: the index of the last byte).
    """
    index = 0
    for index, byte in enumerate(data):  # noqa: B007 - index is used after the loop
        state = DFA[256 + (state << 4) + DFA[byte]]
        if state == UTF8_REJECT:
            return state, False, index
    if not last_index:
        index = len(data)
    return state, True, index


class DfaValidator:
    """Incremental UTF-8 validator with Hoehrmann's DFA interface, on the kernel.

    ``validate(chunk)`` returns ``(valid, ends_on_codepoint, chunk_index,
    total_index)``; ``state``, ``codepoint`` and ``i`` are the DFA's
    variables; ``decode(byte)`` steps the DFA by one byte. See the module
    docstring for how each is kept.
    """

    __slots__ = ("_kernel", "_feed", "_base", "_tail", "_codepoint")

    UTF8_ACCEPT = UTF8_ACCEPT
    UTF8_REJECT = UTF8_REJECT

    #: Largest total the fast path returns untouched (C ``int`` in wsaccel).
    _FAST_LIMIT = (1 << 63) - 1

    def __init__(self) -> None:
        self._kernel = _Utf8Validator()
        self._feed = self._kernel.validate
        self._base = 0  # i == kernel total + _base
        self._tail = _EMPTY  # last bytes seen, while a code point is unfinished
        self._codepoint = 0

    # -- hooks for the flavours ---------------------------------------------------------------

    def _integer(self, value: Any) -> int:
        """Convert a value assigned to ``state``/``i``/``codepoint``."""
        return value  # type: ignore[no-any-return]

    def _wrap(self, value: int) -> int:
        """Map an internal count to the public one (C int overflow in wsaccel)."""
        return value

    def _coerce(self, data: Any) -> Any:
        """The buffer to give the kernel for a chunk that is not bytes or
        bytearray, or None to validate it with :meth:`_slow`. May raise the
        flavour's own errors."""
        # Indexing any other view yields what the DFA twins index their table
        # with (signed ints, 1-byte bytes): only the slow path answers as they do.
        if data.__class__ is memoryview and data.ndim == 1 and data.format == "B":
            return data
        return None

    def _slow(self, data: Any) -> tuple[bool, bool, int, int]:
        """Validate a chunk the kernel does not take, like the pure-Python twin."""
        state, valid, index = dfa_validate(self.state, data)
        total = self._total() + index
        self._seed(state, total)
        return (valid, state == UTF8_ACCEPT, index, total)

    # -- the DFA interface --------------------------------------------------------------------

    def reset(self) -> None:
        """Reset the validator for a new text."""
        self._kernel.reset()
        self._base = 0
        self._tail = _EMPTY
        self._codepoint = 0

    def validate(self, ba: Any) -> tuple[bool, bool, int, int]:
        """Validate the next chunk of the text.

        Returns:
            ``(valid, ends_on_codepoint, current_index, total_index)``: as
            soon as a byte makes the text invalid, ``valid`` is False and the
            indexes point at that byte in the chunk and in the whole text;
            otherwise ``current_index`` is ``len(ba)`` and ``total_index`` the
            number of bytes validated so far.
        """
        cls = ba.__class__
        if cls is not bytes and cls is not bytearray:
            view = self._coerce(ba)
            if view is None:
                return self._slow(ba)
            ba = view
        result = self._feed(ba)
        if result[1] and not self._base and result[3] <= self._FAST_LIMIT:
            return result  # valid and complete: the common case, untouched
        return self._settle(ba, result)

    def _settle(self, ba: Any, result: tuple[bool, bool, int, int]) -> tuple[bool, bool, int, int]:
        valid, complete, index, total = result
        if valid:
            if not complete:
                self._remember(ba)
        elif index == 0 and not len(memoryview(ba)):
            valid = True  # the DFA loop never runs on an empty chunk, even after a failure
        return (valid, complete, self._wrap(index), self._wrap(total + self._base))

    def _remember(self, ba: Any) -> None:
        last = memoryview(ba)[-3:].tobytes()
        self._tail = (self._tail + last)[-3:] if len(last) < 3 else last

    def _total(self) -> int:
        return self._feed(_EMPTY)[3] + self._base  # an empty chunk changes nothing

    def _seed(self, state: int, total: int) -> None:
        """Put the kernel in DFA ``state`` with ``total`` bytes counted."""
        self._kernel.reset()
        entry = _ENTRY.get(state)
        if entry is not None:
            self._feed(entry)
            self._tail = entry
        elif state != UTF8_ACCEPT:
            raise ValueError(f"not a state of the UTF-8 DFA: {state}")
        self._base = total - self._feed(_EMPTY)[3]

    @property
    def state(self) -> int:
        """The DFA state: 0 on a code point boundary, 1 after a failure, else 2-8."""
        valid, complete, _, _ = self._feed(_EMPTY)
        if not valid:
            return UTF8_REJECT
        if complete:
            return UTF8_ACCEPT
        return _tail_state(self._tail)

    @state.setter
    def state(self, value: Any) -> None:
        self._seed(self._integer(value), self._total())

    @property
    def i(self) -> int:
        """The number of bytes validated, up to the failure if there was one."""
        return self._wrap(self._total())

    @i.setter
    def i(self, value: Any) -> None:
        self._base = self._integer(value) - self._feed(_EMPTY)[3]

    @property
    def codepoint(self) -> int:
        """The code point :meth:`decode` assembled (``validate`` leaves it alone)."""
        return self._codepoint

    @codepoint.setter
    def codepoint(self, value: Any) -> None:
        self._codepoint = self._integer(value)

    def decode(self, b: Any) -> int:
        """Eat one UTF-8 octet and return the new state.

        Returns ``UTF8_ACCEPT`` when a code point is complete (it is then in
        ``codepoint``), ``UTF8_REJECT`` on invalid UTF-8, another state when
        more octets are needed.
        """
        kind: int = DFA[b]
        state = self.state
        if state != UTF8_ACCEPT:
            self._codepoint = (b & 0x3F) | (self._codepoint << 6)
        else:
            self._codepoint = (0xFF >> kind) & b
        state = DFA[256 + state * 16 + kind]
        self._seed(state, self._total())
        return state

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (), (self.state, self._total(), self._codepoint))

    def __setstate__(self, saved: tuple[int, int, int]) -> None:
        state, total, codepoint = saved
        self._seed(state, total)
        self._codepoint = codepoint
