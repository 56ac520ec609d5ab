"""Pure-Python kernels: the reference implementation and the contract.

Every function and class here has a Cython twin in ``_cy.pyx`` with the same
name, signature, results and exceptions; the test suite runs over both.
Docstrings live here; the twin points back to them.
"""

from __future__ import annotations

import codecs
import operator
from typing import Any

from ..exceptions import PayloadTooBig, ProtocolError

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "Frame",
    "FrameParser",
    "Utf8Validator",
    "build_frame",
    "frame_header",
    "mask",
    "mask_into",
    "parse_header",
    "validate_utf8",
]

#: Largest frame payload a :class:`FrameParser` accepts unless told otherwise.
DEFAULT_MAX_FRAME_SIZE = 64 * 1024 * 1024

# RFC 6455 §5.2: opcodes 0x3-0x7 and 0xB-0xF are reserved.
_KNOWN_OPCODES = frozenset((0x0, 0x1, 0x2, 0x8, 0x9, 0xA))
_MAX_LENGTH = (1 << 63) - 1
_utf8_decode = codecs.utf_8_decode


def _key_bytes(key: Any) -> bytes:
    """Return the 4-byte masking key ``key`` as bytes, or raise."""
    key_bytes = bytes(memoryview(key))
    if len(key_bytes) != 4:
        raise ValueError(f"mask key must be 4 bytes long, got {len(key_bytes)}")
    return key_bytes


def _byte_view(obj: Any) -> memoryview:
    """A flat, unsigned-byte view of any buffer (copying only non-contiguous ones)."""
    view = memoryview(obj)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    return view.cast("B")


def _phase(offset: int) -> int:
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    return offset & 3


def _xor(data: bytes, key: bytes, phase: int) -> bytes:
    """XOR ``data`` with the repeated ``key`` starting at key index ``phase``."""
    n = len(data)
    if n == 0:
        return b""
    key = key[phase:] + key[:phase]
    stream = key * (n // 4 + 1)
    # Big-integer XOR does the whole buffer in C: ~100x a byte loop.
    mixed = int.from_bytes(data, "little") ^ int.from_bytes(stream[:n], "little")
    return mixed.to_bytes(n, "little")


def mask(data: Any, key: Any, offset: int = 0) -> bytes:
    """Return ``data`` XOR the 4-byte masking ``key`` (RFC 6455 §5.3).

    Masking is its own inverse: the same call masks and unmasks.

    Args:
        data: any bytes-like object (bytes, bytearray, memoryview, numpy array,
            mmap, ...); non-contiguous buffers are accepted.
        key: the 4-byte masking key, any bytes-like object.
        offset: position of ``data`` in the stream being masked; the key starts
            at phase ``offset % 4``, so a payload can be masked in chunks.

    Returns:
        A new ``bytes`` object of the same length as ``data``.

    Raises:
        TypeError: ``data`` or ``key`` is not bytes-like.
        ValueError: ``key`` is not 4 bytes long, or ``offset`` is negative.
    """
    key = _key_bytes(key)
    phase = _phase(offset)
    return _xor(bytes(memoryview(data)), key, phase)


def mask_into(buffer: Any, key: Any, offset: int = 0) -> int:
    """Mask (or unmask) ``buffer`` in place, as :func:`mask` would.

    Args:
        buffer: a writable, C-contiguous buffer (bytearray, writable memoryview,
            numpy array, mmap, ...). Its bytes are masked whatever its format.
        key: the 4-byte masking key, any bytes-like object.
        offset: position of ``buffer`` in the masked stream (see :func:`mask`).

    Returns:
        The key phase of the byte after ``buffer``: ``(offset + len) % 4``.
        Pass it as ``offset`` for the next chunk of the same payload.

    Raises:
        TypeError: ``buffer`` is read-only, not contiguous, or not a buffer;
            ``key`` is not bytes-like.
        ValueError: ``key`` is not 4 bytes long, or ``offset`` is negative.
    """
    key = _key_bytes(key)
    phase = _phase(offset)
    view = memoryview(buffer)
    if view.readonly:
        raise TypeError(f"mask_into() needs a writable buffer, got read-only {type(buffer).__name__}")
    if not view.c_contiguous:
        raise TypeError("mask_into() needs a C-contiguous buffer")
    view = view.cast("B")
    view[:] = _xor(view.tobytes(), key, phase)
    return (phase + len(view)) & 3


def validate_utf8(data: Any) -> bool:
    """Tell whether ``data`` is complete, strictly valid UTF-8.

    The verdict is the one of ``bytes(data).decode("utf-8")``: no overlong
    forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no
    truncated sequence at the end.

    Raises:
        TypeError: ``data`` is not bytes-like.
    """
    try:
        _utf8_decode(memoryview(data).tobytes(), "strict", True)
    except UnicodeDecodeError:
        return False
    return True


# Valid ranges of the byte after each lead that restricts it (RFC 3629 §4);
# CPython's incremental decoder waits for a 3rd byte before rejecting ED A0.
_SECOND_BYTE = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}


def _first_invalid_in_tail(tail: bytes) -> int:
    """Index of the first byte of an unfinished code point that no valid
    continuation could rescue, or -1."""
    if len(tail) >= 2:
        low, high = _SECOND_BYTE.get(tail[0], (0x80, 0xBF))
        if not low <= tail[1] <= high:
            return 1
    return -1


class Utf8Validator:
    """Incremental UTF-8 validator for text that arrives in chunks.

    A chunk may end anywhere, even in the middle of a code point. Validation
    fails at the first byte that cannot be part of valid UTF-8, so a text
    message can be failed as soon as the offending byte arrives (RFC 6455
    §8.1). Once failed, the validator stays failed until :meth:`reset`.
    """

    __slots__ = ("_pending", "_total", "_failed")

    def __init__(self) -> None:
        self._pending = b""
        self._total = 0
        self._failed = False

    def reset(self) -> None:
        """Forget everything, ready for a new text."""
        self._pending = b""
        self._total = 0
        self._failed = False

    def validate(self, data: Any) -> tuple[bool, bool, int, int]:
        """Validate the next chunk of the text.

        Args:
            data: the chunk, any bytes-like object.

        Returns:
            ``(valid, ends_on_codepoint, chunk_index, total_index)``, as
            wsaccel and autobahn define them: ``valid`` is False as soon as an
            invalid byte was seen; ``ends_on_codepoint`` is True when the text
            so far is valid and complete; ``chunk_index`` is the number of
            bytes of this chunk that were consumed (the index of the invalid
            byte on failure) and ``total_index`` the same count over the whole
            text.

        Raises:
            TypeError: ``data`` is not bytes-like.
        """
        chunk = memoryview(data).tobytes()
        if self._failed:
            return (False, False, 0, self._total)
        pending = self._pending
        text = pending + chunk if pending else chunk
        try:
            _, consumed = _utf8_decode(text, "strict", False)
        except UnicodeDecodeError as exc:
            # CPython reports the maximal valid prefix of the bad sequence:
            # the offending byte is `start` for a bad lead byte, else `end`.
            bad = exc.start if exc.reason == "invalid start byte" else exc.end
            index = bad - len(pending)
            self._failed = True
            self._total += index
            return (False, False, index, self._total)
        pending = text[consumed:]
        bad = _first_invalid_in_tail(pending)
        if bad >= 0:
            index = consumed + bad - len(self._pending)
            self._failed = True
            self._total += index
            return (False, False, index, self._total)
        self._pending = pending
        self._total += len(chunk)
        return (True, not pending, len(chunk), self._total)


def parse_header(buffer: Any, offset: int = 0) -> tuple[bool, int, int, bool, int, bytes | None, int] | None:
    """Parse the frame header at ``buffer[offset:]`` (RFC 6455 §5.2).

    Args:
        buffer: any bytes-like object holding (the start of) a frame.
        offset: where the header starts in ``buffer``.

    Returns:
        ``None`` when the header is not complete yet, else the tuple
        ``(fin, rsv, opcode, masked, payload_length, mask_key, header_length)``
        where ``rsv`` is the three RSV bits as an int 0-7 (RSV1 = 4) and
        ``mask_key`` is the 4-byte key or ``None``.

    Raises:
        ProtocolError: a reserved opcode, a fragmented or over-125-byte
            control frame, or a 64-bit length with its top bit set.
        ValueError: ``offset`` is negative.
        TypeError: ``buffer`` is not bytes-like.
    """
    view = _byte_view(buffer)
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    available = len(view) - offset
    if available < 2:
        return None
    b0 = view[offset]
    b1 = view[offset + 1]
    fin = True if b0 & 0x80 else False
    rsv = (b0 >> 4) & 0x07
    opcode = b0 & 0x0F
    masked = True if b1 & 0x80 else False
    length = b1 & 0x7F
    if opcode not in _KNOWN_OPCODES:
        raise ProtocolError(f"reserved opcode {opcode:#x}")
    if opcode >= 0x8:
        if not fin:
            raise ProtocolError("fragmented control frame")
        if length > 125:
            raise ProtocolError("control frame payload over 125 bytes")
    # RFC 6455 §5.2: payload len 126 -> next 2 bytes, 127 -> next 8.
    header_length = 2
    if length == 126:
        header_length = 4
        if available < 4:
            return None
        length = int.from_bytes(view[offset + 2 : offset + 4], "big")
    elif length == 127:
        header_length = 10
        if available < 10:
            return None
        length = int.from_bytes(view[offset + 2 : offset + 10], "big")
        if length > _MAX_LENGTH:
            raise ProtocolError("64-bit payload length with the most significant bit set")
    mask_key = None
    if masked:
        if available < header_length + 4:
            return None
        mask_key = view[offset + header_length : offset + header_length + 4].tobytes()
        header_length += 4
    return (fin, rsv, opcode, masked, length, mask_key, header_length)


def frame_header(opcode: int, length: int, *, fin: bool = True, rsv: int = 0, mask_key: Any = None) -> bytes:
    """Build the header of a frame whose payload is ``length`` bytes long.

    Use it for scatter-gather sends: write the header and the (masked)
    payload as two buffers, never concatenated.

    Args:
        opcode: the frame's opcode, 0-15 (reserved ones are allowed).
        length: the payload length in bytes.
        fin: whether this is the final frame of its message.
        rsv: the RSV bits as an int 0-7 (RSV1 = 4).
        mask_key: the 4-byte masking key for a client frame, else ``None``.
            The payload must then be masked with it by the caller.

    Returns:
        The 2 to 14 header bytes.

    Raises:
        ValueError: an argument is out of range, or a control frame
            (opcode >= 8) is not final or longer than 125 bytes.
    """
    if not 0 <= opcode <= 15:
        raise ValueError(f"opcode must be in 0-15, got {opcode}")
    if not 0 <= rsv <= 7:
        raise ValueError(f"rsv must be in 0-7, got {rsv}")
    if not 0 <= length <= _MAX_LENGTH:
        raise ValueError(f"payload length out of range: {length}")
    if opcode >= 0x8 and (length > 125 or not fin):
        raise ValueError("control frames must be final and at most 125 bytes")
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if mask_key is not None else 0
    if length < 126:
        header = bytes((b0, mask_bit | length))
    elif length < 65536:
        header = bytes((b0, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((b0, mask_bit | 127)) + length.to_bytes(8, "big")
    if mask_key is not None:
        header += _key_bytes(mask_key)
    return header


def build_frame(opcode: int, payload: Any, *, fin: bool = True, rsv: int = 0, mask_key: Any = None) -> bytes:
    """Build a whole frame: header plus (masked, if ``mask_key``) payload.

    Args:
        opcode: see :func:`frame_header`.
        payload: any bytes-like object.
        fin: see :func:`frame_header`.
        rsv: see :func:`frame_header`.
        mask_key: see :func:`frame_header`; the payload is masked with it.

    Returns:
        The frame as ``bytes``.

    Raises:
        ValueError: as :func:`frame_header`.
        TypeError: ``payload`` or ``mask_key`` is not bytes-like.
    """
    data = bytes(memoryview(payload))
    header = frame_header(opcode, len(data), fin=fin, rsv=rsv, mask_key=mask_key)
    if mask_key is not None:
        data = _xor(data, header[-4:], 0)
    return header + data


class Frame:
    """One parsed, unmasked frame; immutable.

    Args:
        opcode: the frame's opcode (an int; compare with ``wsfast.Opcode``).
        payload: the unmasked payload, ``bytes``.
        fin: whether this is the final frame of its message.
        rsv: the RSV bits as an int 0-7 (RSV1 = 4).

    Raises:
        TypeError: ``payload`` is not ``bytes``, or ``opcode`` or ``rsv``
            is not an integer.
    """

    __slots__ = ("_opcode", "_payload", "_fin", "_rsv")

    def __init__(self, opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> None:
        if type(payload) is not bytes:
            raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
        self._opcode = operator.index(opcode)
        self._payload = payload
        self._fin = True if fin else False
        self._rsv = operator.index(rsv)

    @property
    def opcode(self) -> int:
        """The frame's opcode."""
        return self._opcode

    @property
    def payload(self) -> bytes:
        """The unmasked payload."""
        return self._payload

    @property
    def fin(self) -> bool:
        """Whether this is the final frame of its message."""
        return self._fin

    @property
    def rsv(self) -> int:
        """The RSV bits as an int 0-7."""
        return self._rsv

    def __eq__(self, other: object) -> bool:
        try:
            return (self.opcode, self.payload, self.fin, self.rsv) == (
                other.opcode,  # type: ignore[attr-defined]
                other.payload,  # type: ignore[attr-defined]
                other.fin,  # type: ignore[attr-defined]
                other.rsv,  # type: ignore[attr-defined]
            )
        except AttributeError:
            return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Frame(opcode={self.opcode}, payload={self.payload!r}, fin={self.fin}, rsv={self.rsv})"


class FrameParser:
    """Parse a byte stream into unmasked frames, every complete one per call.

    Enforces what RFC 6455 decides at frame level: masked frames from
    clients only, unmasked from servers only (§5.1), no RSV bit outside
    ``rsv_allowed`` (§5.2), the header rules of :func:`parse_header`, and a
    maximum payload size. It does not check message-level rules
    (fragmentation order, UTF-8): that is the protocol layer's job.

    When a violation follows valid frames in the same data, those frames are
    returned first and the violation is kept in :attr:`error` and raised by
    the next call to :meth:`feed`: nothing the peer sent correctly is lost.
    """

    __slots__ = ("_buffer", "_masked", "_max_frame_size", "_rsv_allowed", "_error")

    def __init__(self, *, masked: bool, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE, rsv_allowed: int = 0) -> None:
        """Create a parser for one direction of a connection.

        Args:
            masked: True to require masked frames (a server parsing a
                client's stream), False to require unmasked frames (a client).
            max_frame_size: the largest payload accepted, in bytes; a larger
                frame raises :class:`PayloadTooBig` as soon as its header arrives.
            rsv_allowed: the RSV bits that negotiated extensions allow
                (4 = RSV1, for permessage-deflate).

        Raises:
            ValueError: ``max_frame_size`` is negative or ``rsv_allowed``
                is outside 0-7.
        """
        if max_frame_size < 0:
            raise ValueError(f"max_frame_size must be >= 0, got {max_frame_size}")
        if not 0 <= rsv_allowed <= 7:
            raise ValueError(f"rsv_allowed must be in 0-7, got {rsv_allowed}")
        self._buffer = bytearray()
        self._masked = bool(masked)
        self._max_frame_size = max_frame_size
        self._rsv_allowed = rsv_allowed
        self._error: ProtocolError | None = None

    @property
    def error(self) -> ProtocolError | None:
        """The violation found after the frames last returned, if any."""
        return self._error

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a frame."""
        return len(self._buffer)

    @property
    def rsv_allowed(self) -> int:
        """The RSV bits accepted on incoming frames (settable, 0-7)."""
        return self._rsv_allowed

    @rsv_allowed.setter
    def rsv_allowed(self, value: int) -> None:
        if not 0 <= value <= 7:
            raise ValueError(f"rsv_allowed must be in 0-7, got {value}")
        self._rsv_allowed = value

    def partial(self, start: int | None = 0) -> Frame | None:
        """The frame being received, with the payload bytes that arrived so far.

        Lets a caller act on a long frame before it completes (fail a text
        frame at its first invalid UTF-8 byte, RFC 6455 §8.1).

        Args:
            start: skip the first ``start`` payload bytes (those seen by an
                earlier call); ``None`` for the header alone, which copies
                nothing.

        Returns:
            ``None`` unless a frame's header has arrived and its payload is
            incomplete (and after a violation); else a :class:`Frame` with
            the header's opcode, fin and rsv and the unmasked payload bytes
            from ``start`` on (empty when ``start`` is past them or None).

        Raises:
            ValueError: ``start`` is negative.
        """
        if start is not None and start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        if self._error is not None:
            return None
        header = parse_header(self._buffer)
        if header is None:
            return None
        fin, rsv, opcode, _, _, key, header_length = header
        if start is None:
            return Frame(opcode, b"", fin, rsv)
        payload = bytes(self._buffer[header_length + start :])
        if key is not None:
            payload = _xor(payload, key, start & 3)
        return Frame(opcode, payload, fin, rsv)

    def feed(self, data: Any) -> list[Frame]:
        """Take the next bytes of the stream, return the frames they complete.

        Args:
            data: any bytes-like object; it is not kept after the call.

        Returns:
            Every frame completed by ``data``, in order, payloads unmasked.

        Raises:
            ProtocolError: the stream breaks a frame-level rule (with
                ``code`` 1002), or :class:`PayloadTooBig` (1009). After a
                violation the parser stays failed.
            TypeError: ``data`` is not bytes-like.
        """
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        buffer += _byte_view(data)
        frames: list[Frame] = []
        position = 0
        try:
            while True:
                header = parse_header(buffer, position)
                if header is None:
                    break
                fin, rsv, opcode, masked, length, key, header_length = header
                if masked != self._masked:
                    raise ProtocolError("unmasked client frame" if self._masked else "masked server frame")
                if rsv & ~self._rsv_allowed:
                    raise ProtocolError(f"RSV bits {rsv:#x} set without a negotiated extension")
                if length > self._max_frame_size:
                    raise PayloadTooBig(f"frame of {length} bytes exceeds the limit of {self._max_frame_size}")
                end = position + header_length + length
                if end > len(buffer):
                    break
                payload = bytes(buffer[position + header_length : end])
                if key is not None:
                    payload = _xor(payload, key, 0)
                frames.append(Frame(opcode, payload, fin, rsv))
                position = end
        except ProtocolError as exc:
            self._error = exc
            self._buffer = bytearray()
            if not frames:
                raise
            return frames
        # Amortized O(n): bytearray deletes from the front in place.
        del buffer[:position]
        return frames
