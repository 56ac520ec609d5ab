# cython: language_level=3, auto_pickle=False, autotestdict=False
"""Cython kernels: the fast twin of ``wsfast.kernels._py``.

Same names, signatures, results and exceptions; see ``_py.py`` for the
contract of each function. Buffers are read through the buffer protocol with
no copy; bytes and bytearray take a shortcut that skips even that.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBUF_C_CONTIGUOUS, PyObject_GetBuffer, PyBuffer_Release
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_Append
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy

from ..exceptions import PayloadTooBig, ProtocolError

cdef extern from "Python.h":
    # Resizes a bytes object that nothing else references yet (CPython's
    # own idiom for building bytes of an unknown length).
    int _PyBytes_Resize(PyObject **bytes, Py_ssize_t size)

cdef extern from "wsfast_kernels.h":
    void wsf_kernels_init()
    const char *wsf_simd_name()
    void wsf_mask(const uint8_t *src, uint8_t *dst, size_t n, const uint8_t *key, unsigned phase) nogil
    int wsf_utf8_complete(const uint8_t *p, size_t n) nogil
    unsigned wsf_utf8_feed(unsigned state, const uint8_t *p, size_t n, size_t *stop) nogil
    unsigned WSF_ACCEPT
    unsigned WSF_REJECT

wsf_kernels_init()

#: The vector instruction set the kernels dispatched to on this CPU.
SIMD = wsf_simd_name().decode()
DEFAULT_MAX_FRAME_SIZE = 64 * 1024 * 1024

cdef Py_ssize_t MAX_LENGTH = 0x7FFFFFFFFFFFFFFF
# Frames whose payload is larger than this are unmasked straight into their
# final bytes object as the data arrives, instead of being buffered first.
cdef Py_ssize_t STREAM_PAYLOAD_MIN = 65536


cdef struct ReadBuffer:
    const uint8_t *data
    Py_ssize_t size
    bint release
    Py_buffer view


cdef inline int acquire(object obj, ReadBuffer *buf) except -1:
    """Point ``buf`` at the bytes of ``obj``; bytes and bytearray skip the buffer protocol."""
    if type(obj) is bytes:
        buf.data = <const uint8_t *>PyBytes_AS_STRING(obj)
        buf.size = PyBytes_GET_SIZE(obj)
        buf.release = False
    elif type(obj) is bytearray:
        buf.data = <const uint8_t *>PyByteArray_AS_STRING(obj)
        buf.size = PyByteArray_GET_SIZE(obj)
        buf.release = False
    else:
        PyObject_GetBuffer(obj, &buf.view, PyBUF_SIMPLE)
        buf.data = <const uint8_t *>buf.view.buf
        buf.size = buf.view.len
        buf.release = True
    return 0


cdef inline void release(ReadBuffer *buf):
    if buf.release:
        PyBuffer_Release(&buf.view)
        buf.release = False


cdef inline object contiguous(object obj):
    """Return ``obj`` itself, or a contiguous copy when it is a non-contiguous buffer.

    The copy is wrapped in a memoryview so that :func:`acquire` takes it
    through the buffer protocol, whose view keeps it alive until
    :func:`release`: callers pass ``contiguous(x)`` as a temporary.
    """
    if type(obj) is bytes or type(obj) is bytearray:
        return obj
    view = memoryview(obj)
    if view.c_contiguous:
        return obj
    return memoryview(view.tobytes())


cdef inline int read_key(object key, uint8_t *out) except -1:
    cdef ReadBuffer buf
    if type(key) is bytes and PyBytes_GET_SIZE(key) == 4:  # the usual key: skip the buffer protocol
        memcpy(out, PyBytes_AS_STRING(key), 4)
        return 0
    key = contiguous(key)  # held here: bytes are read without a buffer reference
    acquire(key, &buf)
    try:
        if buf.size != 4:
            raise ValueError(f"mask key must be 4 bytes long, got {buf.size}")
        memcpy(out, buf.data, 4)
    finally:
        release(&buf)
    return 0


cdef inline unsigned read_phase(object offset) except 4:
    cdef long long value = offset
    if value < 0:
        raise ValueError(f"offset must be >= 0, got {value}")
    return <unsigned>(value & 3)


def mask(data, key, offset=0):
    """See ``wsfast.kernels._py.mask``."""
    cdef uint8_t k[4]
    cdef ReadBuffer buf
    cdef unsigned phase
    read_key(key, k)
    phase = read_phase(offset)
    data = contiguous(data)  # held here: bytes are read without a buffer reference
    acquire(data, &buf)
    try:
        result = PyBytes_FromStringAndSize(NULL, buf.size)
        wsf_mask(buf.data, <uint8_t *>PyBytes_AS_STRING(result), buf.size, k, phase)
    finally:
        release(&buf)
    return result


def mask_into(buffer, key, offset=0):
    """See ``wsfast.kernels._py.mask_into``."""
    cdef uint8_t k[4]
    cdef Py_buffer view
    cdef unsigned phase
    cdef uint8_t *data
    cdef Py_ssize_t size
    read_key(key, k)
    phase = read_phase(offset)
    if type(buffer) is bytearray:
        data = <uint8_t *>PyByteArray_AS_STRING(buffer)
        size = PyByteArray_GET_SIZE(buffer)
        wsf_mask(data, data, size, k, phase)
        return (phase + size) & 3
    try:
        PyObject_GetBuffer(buffer, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS)
    except BufferError as exc:
        if memoryview(buffer).readonly:
            raise TypeError(
                f"mask_into() needs a writable buffer, got read-only {type(buffer).__name__}"
            ) from exc
        raise TypeError("mask_into() needs a C-contiguous buffer") from exc
    try:
        wsf_mask(<uint8_t *>view.buf, <uint8_t *>view.buf, view.len, k, phase)
        size = view.len
    finally:
        PyBuffer_Release(&view)
    return (phase + size) & 3


def validate_utf8(data):
    """See ``wsfast.kernels._py.validate_utf8``."""
    cdef ReadBuffer buf
    cdef int ok
    if type(data) is bytes:  # no buffer to release: the shortest path
        ok = wsf_utf8_complete(<const uint8_t *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        return True if ok else False
    data = contiguous(data)  # held here: bytes are read without a buffer reference
    acquire(data, &buf)
    try:
        ok = wsf_utf8_complete(buf.data, buf.size)
    finally:
        release(&buf)
    return True if ok else False


cdef class Utf8Validator:
    """See ``wsfast.kernels._py.Utf8Validator``."""

    cdef unsigned _state
    cdef Py_ssize_t _total

    def __cinit__(self):
        self._state = WSF_ACCEPT
        self._total = 0

    def __init__(self):
        pass  # refuses arguments, as the pure twin does (__cinit__ alone ignores them)

    def reset(self):
        """See ``wsfast.kernels._py.Utf8Validator.reset``."""
        self._state = WSF_ACCEPT
        self._total = 0

    def validate(self, data):
        """See ``wsfast.kernels._py.Utf8Validator.validate``."""
        cdef ReadBuffer buf
        cdef size_t stop
        cdef unsigned state
        data = contiguous(data)  # held here: bytes are read without a buffer reference
        acquire(data, &buf)
        try:
            if self._state == WSF_REJECT:
                return (False, False, 0, self._total)
            state = wsf_utf8_feed(self._state, buf.data, buf.size, &stop)
        finally:
            release(&buf)
        self._state = state
        self._total += <Py_ssize_t>stop
        if state == WSF_REJECT:
            return (False, False, <Py_ssize_t>stop, self._total)
        return (True, state == WSF_ACCEPT, <Py_ssize_t>stop, self._total)


# RFC 6455 §5.2: opcodes 0x3-0x7 and 0xB-0xF are reserved.
cdef inline bint known_opcode(int opcode):
    return opcode <= 2 or 8 <= opcode <= 10


cdef struct Header:
    bint fin
    int rsv
    int opcode
    bint masked
    Py_ssize_t length
    uint8_t key[4]
    Py_ssize_t header_length


cdef inline Py_ssize_t header_size(const uint8_t *p, Py_ssize_t available):
    """The full header length announced by the bytes at ``p`` (2 while unknown)."""
    cdef Py_ssize_t size = 2
    if available < 2:
        return 2
    if (p[1] & 0x7F) == 126:
        size = 4
    elif (p[1] & 0x7F) == 127:
        size = 10
    if p[1] & 0x80:
        size += 4
    return size


cdef int read_header(const uint8_t *p, Py_ssize_t available, Header *h) except -1:
    """Decode the header at ``p``. Returns 1 when complete, 0 when more bytes are needed."""
    cdef uint8_t b0, b1
    cdef uint64_t length
    cdef Py_ssize_t header_length = 2
    if available < 2:
        return 0
    b0 = p[0]
    b1 = p[1]
    h.fin = (b0 & 0x80) != 0
    h.rsv = (b0 >> 4) & 0x07
    h.opcode = b0 & 0x0F
    h.masked = (b1 & 0x80) != 0
    length = b1 & 0x7F
    if not known_opcode(h.opcode):
        raise ProtocolError(f"reserved opcode {h.opcode:#x}")
    if h.opcode >= 8:
        if not h.fin:
            raise ProtocolError("fragmented control frame")
        if length > 125:
            raise ProtocolError("control frame payload over 125 bytes")
    # RFC 6455 §5.2: payload len 126 -> next 2 bytes, 127 -> next 8.
    if length == 126:
        header_length = 4
        if available < 4:
            return 0
        length = (<uint64_t>p[2] << 8) | p[3]
    elif length == 127:
        header_length = 10
        if available < 10:
            return 0
        length = ((<uint64_t>p[2] << 56) | (<uint64_t>p[3] << 48) | (<uint64_t>p[4] << 40)
                  | (<uint64_t>p[5] << 32) | (<uint64_t>p[6] << 24) | (<uint64_t>p[7] << 16)
                  | (<uint64_t>p[8] << 8) | <uint64_t>p[9])
        if length >> 63:
            raise ProtocolError("64-bit payload length with the most significant bit set")
    if h.masked:
        if available < header_length + 4:
            return 0
        memcpy(h.key, p + header_length, 4)
        header_length += 4
    h.length = <Py_ssize_t>length
    h.header_length = header_length
    return 1


def parse_header(buffer, Py_ssize_t offset=0):
    """See ``wsfast.kernels._py.parse_header``."""
    cdef ReadBuffer buf
    cdef Header h
    cdef int complete
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    buffer = contiguous(buffer)  # held here: bytes are read without a buffer reference
    acquire(buffer, &buf)
    try:
        complete = read_header(buf.data + offset, buf.size - offset, &h) if offset < buf.size else 0
    finally:
        release(&buf)
    if not complete:
        return None
    key = PyBytes_FromStringAndSize(<char *>h.key, 4) if h.masked else None
    return (h.fin, h.rsv, h.opcode, h.masked, h.length, key, h.header_length)


cdef bytes make_header(int opcode, object length, bint fin, int rsv, object mask_key, uint8_t *key_out):
    cdef uint8_t header[14]
    cdef Py_ssize_t n
    cdef Py_ssize_t size
    cdef uint8_t mask_bit
    cdef int i
    if not 0 <= opcode <= 15:
        raise ValueError(f"opcode must be in 0-15, got {opcode}")
    if not 0 <= rsv <= 7:
        raise ValueError(f"rsv must be in 0-7, got {rsv}")
    if not 0 <= length <= MAX_LENGTH:
        raise ValueError(f"payload length out of range: {length}")
    size = length
    if opcode >= 8 and (size > 125 or not fin):
        raise ValueError("control frames must be final and at most 125 bytes")
    header[0] = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if mask_key is not None else 0
    if size < 126:
        header[1] = mask_bit | size
        n = 2
    elif size < 65536:
        header[1] = mask_bit | 126
        header[2] = (size >> 8) & 0xFF
        header[3] = size & 0xFF
        n = 4
    else:
        header[1] = mask_bit | 127
        for i in range(8):
            header[2 + i] = (size >> (56 - 8 * i)) & 0xFF
        n = 10
    if mask_key is not None:
        read_key(mask_key, key_out)
        memcpy(header + n, key_out, 4)
        n += 4
    return PyBytes_FromStringAndSize(<char *>header, n)


def frame_header(int opcode, length, *, bint fin=True, int rsv=0, mask_key=None):
    """See ``wsfast.kernels._py.frame_header``."""
    cdef uint8_t key[4]
    return make_header(opcode, length, fin, rsv, mask_key, key)


def build_frame(int opcode, payload, *, bint fin=True, int rsv=0, mask_key=None):
    """See ``wsfast.kernels._py.build_frame``."""
    cdef uint8_t key[4]
    cdef ReadBuffer buf
    cdef Py_ssize_t hlen
    cdef char *out
    payload = contiguous(payload)  # held here: bytes are read without a buffer reference
    acquire(payload, &buf)
    try:
        header = make_header(opcode, buf.size, fin, rsv, mask_key, key)
        hlen = PyBytes_GET_SIZE(header)
        frame = PyBytes_FromStringAndSize(NULL, hlen + buf.size)
        out = PyBytes_AS_STRING(frame)
        memcpy(out, PyBytes_AS_STRING(header), hlen)
        if mask_key is not None:
            wsf_mask(buf.data, <uint8_t *>out + hlen, buf.size, key, 0)
        else:
            memcpy(out + hlen, buf.data, buf.size)
    finally:
        release(&buf)
    return frame


cdef class Frame:
    """See ``wsfast.kernels._py.Frame``."""

    cdef readonly int opcode
    cdef readonly bytes payload
    cdef readonly bint fin
    cdef readonly int rsv

    def __init__(self, int opcode, bytes payload not None, bint fin=True, int rsv=0):
        self.opcode = opcode
        self.payload = payload
        self.fin = fin
        self.rsv = rsv

    def __eq__(self, other):
        try:
            return (self.opcode, self.payload, self.fin, self.rsv) == (
                other.opcode, other.payload, other.fin, other.rsv)
        except AttributeError:
            return NotImplemented

    __hash__ = None

    def __repr__(self):
        return f"Frame(opcode={self.opcode}, payload={self.payload!r}, fin={self.fin}, rsv={self.rsv})"


cdef inline Frame new_frame(int opcode, bytes payload, bint fin, int rsv):
    cdef Frame frame = Frame.__new__(Frame)
    frame.opcode = opcode
    frame.payload = payload
    frame.fin = fin
    frame.rsv = rsv
    return frame


cdef class FrameParser:
    """See ``wsfast.kernels._py.FrameParser``.

    Complete frames are parsed straight from the caller's buffer; only a
    frame cut by the end of a read is kept, in a small bytearray. A large
    frame is unmasked chunk by chunk directly into its final payload object,
    which grows with what arrives (never to more than twice that, nor past
    the announced length), so every payload byte is copied exactly once and
    a header alone reserves nothing.
    """

    cdef bytearray _buffer
    cdef bint _masked
    cdef Py_ssize_t _max_frame_size
    cdef int _rsv_allowed
    cdef object _error
    # The large frame being received, if any: its header, a bytes object
    # owned here alone (so that it can be resized) or NULL, its size and
    # how much of it is filled.
    cdef Header _header
    cdef PyObject *_payload
    cdef Py_ssize_t _capacity
    cdef Py_ssize_t _filled

    def __init__(self, *, masked, Py_ssize_t max_frame_size=DEFAULT_MAX_FRAME_SIZE, int rsv_allowed=0):
        if max_frame_size < 0:
            raise ValueError(f"max_frame_size must be >= 0, got {max_frame_size}")
        if not 0 <= rsv_allowed <= 7:
            raise ValueError(f"rsv_allowed must be in 0-7, got {rsv_allowed}")
        self._buffer = bytearray()
        self._masked = True if masked else False
        self._max_frame_size = max_frame_size
        self._rsv_allowed = rsv_allowed
        self._error = None
        self.drop_payload()

    def __dealloc__(self):
        self.drop_payload()

    @property
    def error(self):
        return self._error

    @property
    def buffered(self):
        cdef Py_ssize_t size = PyByteArray_GET_SIZE(self._buffer)
        if self._payload != NULL:
            size += self._header.header_length + self._filled
        return size

    @property
    def rsv_allowed(self):
        return self._rsv_allowed

    @rsv_allowed.setter
    def rsv_allowed(self, int value):
        if not 0 <= value <= 7:
            raise ValueError(f"rsv_allowed must be in 0-7, got {value}")
        self._rsv_allowed = value

    def partial(self, start=0):
        """See ``wsfast.kernels._py.FrameParser.partial``."""
        cdef Header h
        cdef Py_ssize_t size
        cdef const uint8_t *q
        cdef bint header_only = start is None
        cdef Py_ssize_t first = 0 if header_only else start
        if first < 0:
            raise ValueError(f"start must be >= 0, got {first}")
        if self._payload != NULL:
            h = self._header
            if header_only:
                return new_frame(h.opcode, b"", h.fin, h.rsv)
            q = <const uint8_t *>PyBytes_AS_STRING(<object>self._payload)
            size = self._filled
            first = min(first, size)
            return new_frame(h.opcode, PyBytes_FromStringAndSize(<char *>q + first, size - first), h.fin, h.rsv)
        size = PyByteArray_GET_SIZE(self._buffer)
        q = <const uint8_t *>PyByteArray_AS_STRING(self._buffer)
        if self._error is not None or not read_header(q, size, &h):
            return None
        if header_only:
            return new_frame(h.opcode, b"", h.fin, h.rsv)
        q += h.header_length
        size -= h.header_length
        first = min(first, size)
        payload = PyBytes_FromStringAndSize(NULL, size - first)
        if h.masked:
            wsf_mask(q + first, <uint8_t *>PyBytes_AS_STRING(payload), size - first, h.key, first & 3)
        else:
            memcpy(PyBytes_AS_STRING(payload), q + first, size - first)
        return new_frame(h.opcode, payload, h.fin, h.rsv)

    cdef int check(self, Header *h) except -1:
        if h.masked != self._masked:
            raise ProtocolError("unmasked client frame" if self._masked else "masked server frame")
        if h.rsv & ~self._rsv_allowed:
            raise ProtocolError(f"RSV bits {h.rsv:#x} set without a negotiated extension")
        if h.length > self._max_frame_size:
            raise PayloadTooBig(f"frame of {h.length} bytes exceeds the limit of {self._max_frame_size}")
        return 0

    cdef void drop_payload(self):
        Py_XDECREF(self._payload)
        self._payload = NULL
        self._capacity = 0
        self._filled = 0

    cdef Py_ssize_t fill_payload(self, const uint8_t *p, Py_ssize_t n) except -1:
        """Unmask up to ``n`` bytes into the large frame being received; return how many were taken."""
        cdef Py_ssize_t take = self._header.length - self._filled
        cdef Py_ssize_t capacity
        cdef uint8_t *out
        if take > n:
            take = n
        if self._filled + take > self._capacity:
            # Doubling keeps the copies of realloc amortized O(1) per byte.
            capacity = min(max(self._filled + take, 2 * self._capacity), self._header.length)
            if _PyBytes_Resize(&self._payload, capacity) < 0:
                self._capacity = 0  # _PyBytes_Resize freed it and set NULL
                self._filled = 0
                return -1
            self._capacity = capacity
        out = <uint8_t *>PyBytes_AS_STRING(<object>self._payload) + self._filled
        if self._header.masked:
            wsf_mask(p, out, take, self._header.key, self._filled & 3)
        else:
            memcpy(out, p, take)
        self._filled += take
        return take

    cdef Frame finish_payload(self):
        payload = <bytes>self._payload  # a new reference; drop_payload releases ours
        self.drop_payload()
        return new_frame(self._header.opcode, payload, self._header.fin, self._header.rsv)

    cdef int start_payload(self, const uint8_t *p, Py_ssize_t n) except -1:
        """Begin a large frame whose header is in ``self._header``, with ``n`` payload bytes at ``p``."""
        cdef Py_ssize_t capacity = min(max(n, 4096), self._header.length)
        payload = PyBytes_FromStringAndSize(NULL, capacity)
        self.drop_payload()
        Py_INCREF(payload)
        self._payload = <PyObject *>payload
        self._capacity = capacity
        self.fill_payload(p, n)
        return 0

    def feed(self, data):
        """See ``wsfast.kernels._py.FrameParser.feed``."""
        cdef ReadBuffer buf
        cdef list frames = []
        if self._error is not None:
            raise self._error
        data = contiguous(data)  # held here: bytes are read without a buffer reference
        acquire(data, &buf)
        try:
            self.parse(buf.data, buf.size, frames)
        except ProtocolError as exc:
            self._error = exc
            self._buffer = bytearray()
            self.drop_payload()
            if not frames:
                raise
        finally:
            release(&buf)
        return frames

    cdef int parse(self, const uint8_t *p, Py_ssize_t n, list frames) except -1:
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t total, take, size
        cdef Header h
        cdef bytes payload
        cdef const uint8_t *q
        # 1. A large frame in progress takes the front of the data.
        if self._payload != NULL:
            pos = self.fill_payload(p, n)
            if self._filled < self._header.length:
                return 0
            PyList_Append(frames, self.finish_payload())
        # 2. A frame cut by the previous read: complete it in the small buffer.
        while PyByteArray_GET_SIZE(self._buffer):
            size = PyByteArray_GET_SIZE(self._buffer)
            q = <const uint8_t *>PyByteArray_AS_STRING(self._buffer)
            if not read_header(q, size, &h):
                take = min(n - pos, header_size(q, size) - size)
                self._buffer += p[pos:pos + take]
                pos += take
                if pos == n and not read_header(<const uint8_t *>PyByteArray_AS_STRING(self._buffer),
                                                PyByteArray_GET_SIZE(self._buffer), &h):
                    return 0
                continue
            self.check(&h)
            total = h.header_length + h.length
            if h.length > STREAM_PAYLOAD_MIN:
                self._header = h
                self.start_payload(q + h.header_length, size - h.header_length)
                self._buffer = bytearray()
                pos += self.fill_payload(p + pos, n - pos)
                if self._filled < h.length:
                    return 0
                PyList_Append(frames, self.finish_payload())
                continue
            take = min(n - pos, total - size)
            self._buffer += p[pos:pos + take]
            pos += take
            if PyByteArray_GET_SIZE(self._buffer) < total:
                return 0
            q = <const uint8_t *>PyByteArray_AS_STRING(self._buffer)
            payload = PyBytes_FromStringAndSize(NULL, h.length)
            if h.masked:
                wsf_mask(q + h.header_length, <uint8_t *>PyBytes_AS_STRING(payload), h.length, h.key, 0)
            else:
                memcpy(PyBytes_AS_STRING(payload), q + h.header_length, h.length)
            PyList_Append(frames, new_frame(h.opcode, payload, h.fin, h.rsv))
            self._buffer = bytearray()
        # 3. The hot loop: whole frames straight from the caller's buffer.
        while pos < n:
            if not read_header(p + pos, n - pos, &h):
                break
            self.check(&h)
            total = h.header_length + h.length
            if n - pos < total:
                if h.length > STREAM_PAYLOAD_MIN:
                    self._header = h
                    self.start_payload(p + pos + h.header_length, n - pos - h.header_length)
                    return 0
                break
            payload = PyBytes_FromStringAndSize(NULL, h.length)
            if h.masked:
                wsf_mask(p + pos + h.header_length, <uint8_t *>PyBytes_AS_STRING(payload), h.length, h.key, 0)
            else:
                memcpy(PyBytes_AS_STRING(payload), p + pos + h.header_length, h.length)
            PyList_Append(frames, new_frame(h.opcode, payload, h.fin, h.rsv))
            pos += total
        if pos < n:
            self._buffer = bytearray(p[pos:n])
        return 0
