"""permessage-deflate's decoder for one direction of a connection, in pure Python.

:class:`Inflater` turns the payloads of compressed messages back into their
bytes (RFC 7692 §7.2.2): it appends the ``00 00 ff ff`` that the sender
removed, keeps the LZ77 window between messages unless told not to, bounds
every message's decompressed size, and starts a fresh zlib stream after a
block with BFINAL set (see :mod:`wsfast.extensions`).
``_inflate_c.pyx`` is the compiled twin, over zlib's C API;
:mod:`wsfast.extensions` picks one (``WSFAST_PURE=1``: this one).
"""

from __future__ import annotations

import zlib

from .exceptions import PayloadTooBig, ProtocolError
from .typing import BytesLike

__all__ = ["Inflater"]

# RFC 7692 §7.2.1: a sync flush ends with an empty stored block, whose
# LEN/NLEN are these 4 bytes; the sender drops them, the receiver adds them.
_EMPTY_BLOCK_TAIL = b"\x00\x00\xff\xff"
# Payloads up to this size get the tail appended and are inflated in one call.
_JOIN_TAIL_LIMIT = 64 * 1024
# The most one zlib call inflates at a time (see _inflate_stream).
_INFLATE_STEP = 256 * 1024


class Inflater:
    """Decompress the incoming messages of one connection, within their size limit.

    If a call raises, the inflater forgets the message (its zlib state is
    meaningless then) and the caller must fail the connection with the
    exception's ``code``.
    """

    __slots__ = ("_window_bits", "_no_context_takeover", "_decompressor", "_message_size")

    def __init__(self, window_bits: int, no_context_takeover: bool) -> None:
        """Set up a decoder; zlib state is allocated on first use.

        Args:
            window_bits: the peer's LZ77 window is at most ``2**window_bits``
                bytes, 8 to 15.
            no_context_takeover: the peer compresses every message from
                scratch: forget the window after each one.

        Raises:
            ValueError: if ``window_bits`` is outside 8..15.
        """
        if not 8 <= window_bits <= 15:
            raise ValueError(f"window_bits must be between 8 and 15, got {window_bits}")
        self._window_bits = window_bits
        self._no_context_takeover = no_context_takeover
        self._decompressor: zlib._Decompress | None = None
        self._message_size = 0  # decompressed bytes of the incoming message so far

    def message(self, data: BytesLike, max_size: int, text: bool) -> bytes | str:
        """Decompress a whole message that came in one frame.

        Args:
            data: the frame's payload, any contiguous buffer.
            max_size: the largest decompressed size accepted.
            text: return the message decoded from UTF-8 (``str``).

        Returns:
            The message: ``bytes``, or ``str`` when ``text``.

        Raises:
            PayloadTooBig: it decompresses to more than ``max_size`` bytes.
            ProtocolError: the payload is not valid DEFLATE data (code 1007).
            UnicodeDecodeError: ``text`` and the message is not valid UTF-8.
        """
        payload = self.decompress(data, True, max_size, None)
        return payload.decode("utf-8") if text else payload

    def decompress(self, data: BytesLike, final: bool, max_size: int | None, out: bytearray | None) -> bytes:
        """Decompress one frame of a message, ``final`` on its last frame.

        Args:
            data: the frame's payload, any contiguous buffer.
            final: whether this frame ends the message (the tail is then added).
            max_size: the largest decompressed size of the whole message,
                counted across its frames, or ``None`` for no limit. zlib is
                never asked for more than one byte past it, so a zip bomb
                costs about ``max_size`` bytes of memory.
            out: if given, the bytes are appended to it (and ``b""`` is
                returned); on an exception it may hold part of them.

        Returns:
            The decompressed bytes of this frame, or ``b""`` with ``out``.

        Raises:
            PayloadTooBig: the message decompresses to more than ``max_size``.
            ProtocolError: the payload is not valid DEFLATE data (code 1007).
        """
        try:
            if final and len(data) <= _JOIN_TAIL_LIMIT:
                data = bytes(data) + _EMPTY_BLOCK_TAIL  # one zlib call instead of two
                if not self._message_size and max_size is not None and out is None:
                    output = self._inflate_whole(data, max_size)
                else:
                    output = self._inflate(data, max_size, out)
            else:
                output = self._inflate(data, max_size, out)
                if final:
                    # Usually b"", and bytes + b"" is no copy.
                    output += self._inflate(_EMPTY_BLOCK_TAIL, max_size, out)
        except PayloadTooBig:
            self.reset()
            raise
        except zlib.error as exc:
            self.reset()
            raise ProtocolError(f"invalid compressed data: {exc}", code=1007) from exc
        if final:
            self._message_size = 0
            if self._no_context_takeover:
                self._decompressor = None
        return output

    def reset(self) -> None:
        """Forget the window and the message in progress: the next bytes start a new stream."""
        self._decompressor = None
        self._message_size = 0

    def _inflate_whole(self, data: bytes, max_size: int) -> bytes:
        """:meth:`_inflate` for a whole message in one buffer, usually in one zlib call."""
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = zlib.decompressobj(-self._window_bits)
        output = self._inflate_stream(decompressor, data, max_size, None)
        self._decompressor = decompressor
        if decompressor.eof:
            # A BFINAL block inside the message (rare): what follows starts a
            # new zlib stream, as in _inflate.
            self._decompressor = None
            output += self._inflate(decompressor.unused_data, max_size, None)
        return output

    def _inflate(self, data: BytesLike, max_size: int | None, out: bytearray | None) -> bytes:
        """Decompress ``data`` into the current message, within ``max_size``.

        Returns the bytes, or appends them to ``out`` and returns ``b""``.
        """
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = zlib.decompressobj(-self._window_bits)
        output = self._inflate_stream(decompressor, data, max_size, out)
        while decompressor.eof:
            # RFC 7692 §7.2.3.4: a BFINAL block ends zlib's stream, not the
            # message; what follows (at least the appended tail) is decoded
            # as the start of a new stream.
            rest = decompressor.unused_data
            decompressor = zlib.decompressobj(-self._window_bits)
            output += self._inflate_stream(decompressor, rest, max_size, out)
        self._decompressor = decompressor
        return output

    def _inflate_stream(
        self, decompressor: zlib._Decompress, data: BytesLike, max_size: int | None, out: bytearray | None
    ) -> bytes:
        """Feed ``data`` to one zlib stream, asking at most one byte past the limit.

        Returns the bytes, or appends them to ``out`` and returns ``b""``.
        Past ``_INFLATE_STEP`` bytes the output comes in steps of that size:
        zlib joins what one call produces, so a single call for a bomb would
        briefly hold twice the limit; in steps, it holds the limit plus a step.
        """
        if max_size is None:
            output = decompressor.decompress(data)
            self._message_size += len(output)
            if out is None:
                return output
            out += output
            return b""
        budget = max(max_size - self._message_size, 0)
        pieces = []
        size = 0
        while True:
            # Output shorter than max_length means zlib used all the input.
            asked = min(budget - size + 1, _INFLATE_STEP)
            piece = decompressor.decompress(data, asked)
            size += len(piece)
            if size > budget:
                raise PayloadTooBig(f"compressed message decompresses to more than {max_size} bytes")
            if out is not None:
                out += piece
            elif piece:
                pieces.append(piece)
            if len(piece) < asked:
                break
            data = decompressor.unconsumed_tail
        self._message_size += size
        return b"" if not pieces else pieces[0] if len(pieces) == 1 else b"".join(pieces)
