"""RESP2, the Redis protocol: commands out, replies in, no sockets.

:func:`encode` turns a command into buffers to write (payloads uncopied).
:class:`PythonReader` parses replies incrementally; :func:`reader` returns
``hiredis.Reader`` when hiredis is installed (and ``WSFAST_PURE`` is unset),
else a :class:`PythonReader`. Both have the same two methods: ``feed(data)``
and ``gets()``, which returns one reply or :data:`NEED_DATA`. An error reply
(``-ERR ...``) is returned, not raised, as a :class:`ReplyError`.

Replies map to Python as hiredis maps them: simple strings and bulk strings
to ``bytes``, integers to ``int``, arrays to ``list``, nulls to ``None``.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

__all__ = ["NEED_DATA", "ProtocolError", "PythonReader", "Reader", "ReplyError", "encode", "reader"]

#: What ``gets()`` returns while no whole reply is buffered. It is ``False``
#: because that is hiredis' value; no RESP2 reply parses to ``False``.
NEED_DATA = False

_CRLF = b"\r\n"


class ReplyError(Exception):
    """An error reply from Redis, such as ``ERR unknown command``."""


class ProtocolError(Exception):
    """The bytes received are not RESP2: the connection must be dropped."""


class Reader(Protocol):
    def feed(self, data: Any, /) -> None: ...

    def gets(self) -> Any: ...


def encode(*args: str | bytes | int) -> list[bytes]:
    """Encode one command as a RESP array of bulk strings.

    Args:
        args: the command name and its arguments; ``str`` is UTF-8 encoded,
            ``int`` written in decimal.

    Returns:
        Buffers to write in order; ``bytes`` arguments are among them uncopied.
    """
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if type(arg) is str:
            arg = arg.encode("utf-8")
        elif type(arg) is int:
            arg = b"%d" % arg
        elif not isinstance(arg, bytes):
            raise TypeError(f"a Redis argument is str, bytes or int, not {type(arg).__name__}")
        out.append(b"$%d\r\n" % len(arg))
        out.append(arg)
        out.append(_CRLF)
    return out


class _Incomplete(Exception):
    pass


class PythonReader:
    """An incremental RESP2 reply parser in pure Python (hiredis' API)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pos = 0

    def feed(self, data: Any, /) -> None:
        """Append received bytes."""
        self._buffer += data

    def gets(self) -> Any:
        """Return the next whole reply, or :data:`NEED_DATA`.

        Raises:
            ProtocolError: the input is not RESP2.
        """
        try:
            reply, end = self._parse(self._pos)
        except _Incomplete:
            return NEED_DATA
        self._pos = end
        # Compact once the unread part is small: del is O(len(buffer)).
        if end == len(self._buffer):
            self._buffer.clear()
            self._pos = 0
        elif end > 65536:
            del self._buffer[:end]
            self._pos = 0
        return reply

    def _line(self, pos: int) -> tuple[bytes, int]:
        end = self._buffer.find(_CRLF, pos)
        if end < 0:
            raise _Incomplete
        return bytes(self._buffer[pos:end]), end + 2

    def _parse(self, pos: int) -> tuple[Any, int]:
        buffer = self._buffer
        if pos >= len(buffer):
            raise _Incomplete
        kind = buffer[pos]
        line, pos = self._line(pos + 1)
        if kind == 0x2B:  # + simple string
            return line, pos
        if kind == 0x2D:  # - error
            return ReplyError(line.decode("utf-8", "replace")), pos
        if kind == 0x3A:  # : integer
            return self._int(line), pos
        if kind == 0x24:  # $ bulk string
            length = self._int(line)
            if length < 0:
                return None, pos
            if len(buffer) < pos + length + 2:
                raise _Incomplete
            if buffer[pos + length : pos + length + 2] != _CRLF:
                raise ProtocolError(f"a bulk string of {length} bytes does not end with CRLF")
            return bytes(buffer[pos : pos + length]), pos + length + 2
        if kind == 0x2A:  # * array
            count = self._int(line)
            if count < 0:
                return None, pos
            items = []
            for _ in range(count):
                item, pos = self._parse(pos)
                items.append(item)
            return items, pos
        raise ProtocolError(f"unknown RESP2 type byte {bytes([kind])!r}")

    @staticmethod
    def _int(line: bytes) -> int:
        try:
            return int(line)
        except ValueError:
            raise ProtocolError(f"not a RESP2 integer: {line!r}") from None


def reader() -> Reader:
    """A reply parser: hiredis' when installed (unless ``WSFAST_PURE`` is set)."""
    if not os.environ.get("WSFAST_PURE"):
        try:
            import hiredis
        except ImportError:
            pass
        else:
            return hiredis.Reader(replyError=ReplyError, protocolError=ProtocolError)
    return PythonReader()
