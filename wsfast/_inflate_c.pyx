"""permessage-deflate's decoder over zlib's C API: the twin of ``_inflate_py.py``.

Same class, methods, results and exceptions; see ``_inflate_py.py`` for the
contract. The payload is read in place and the ``00 00 ff ff`` tail fed
from a constant, so nothing is joined; the output grows in place in its
final object (a ``bytes`` owned here, or the caller's ``bytearray``), never
past one byte over the message's limit, so a zip bomb costs about the limit.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport memset

from .exceptions import PayloadTooBig, ProtocolError

cdef extern from "Python.h":
    # Resizes a bytes object that nothing else references yet.
    int _PyBytes_Resize(PyObject **bytes, Py_ssize_t size)

cdef extern from "zlib.h":
    ctypedef struct z_stream:
        unsigned char *next_in  # z_const: const only with ZLIB_CONST
        unsigned int avail_in
        unsigned char *next_out
        unsigned int avail_out
        const char *msg
    int inflateInit2(z_stream *strm, int window_bits)
    int inflate(z_stream *strm, int flush)
    int inflateReset(z_stream *strm)
    int inflateEnd(z_stream *strm)
    enum:
        Z_OK
        Z_STREAM_END
        Z_BUF_ERROR
        Z_MEM_ERROR
        Z_SYNC_FLUSH

# RFC 7692 §7.2.1: the sync flush's empty stored block, which the sender dropped.
cdef const unsigned char *EMPTY_BLOCK_TAIL = <const unsigned char *>b"\x00\x00\xff\xff"
cdef Py_ssize_t NO_LIMIT = 0x7FFFFFFFFFFFFFFF
# zlib counts in unsigned ints: at most this much in or out per call.
cdef Py_ssize_t STEP = 1 << 30


cdef struct Output:
    PyObject *bytes       # a bytes object referenced here alone, or NULL
    PyObject *array       # the caller's bytearray (borrowed), or NULL
    Py_ssize_t start      # the bytearray's length before this call
    Py_ssize_t used
    Py_ssize_t capacity
    Py_ssize_t limit      # the budget plus one: reaching it means too big


cdef inline unsigned char *output_data(Output *out):
    if out.array != NULL:
        return <unsigned char *>PyByteArray_AS_STRING(<object>out.array) + out.start
    return <unsigned char *>PyBytes_AS_STRING(<object>out.bytes)


cdef int grow(Output *out, Py_ssize_t wanted) except -1:
    """Make room for at least ``wanted`` bytes (doubling, never past the limit)."""
    cdef Py_ssize_t capacity = max(wanted, 2 * out.capacity)
    if capacity > out.limit:
        capacity = out.limit
    if out.array != NULL:
        PyByteArray_Resize(<object>out.array, out.start + capacity)
    elif out.bytes == NULL:
        result = PyBytes_FromStringAndSize(NULL, capacity)
        Py_INCREF(result)
        out.bytes = <PyObject *>result
    elif _PyBytes_Resize(&out.bytes, capacity) < 0:
        return -1  # it freed the object and set NULL
    out.capacity = capacity
    return 0


cdef class Inflater:
    """See ``wsfast._inflate_py.Inflater``."""

    cdef z_stream _stream
    cdef bint _started  # inflateInit2 done: zlib state allocated on first use
    cdef int _window_bits
    cdef bint _no_context_takeover
    cdef Py_ssize_t _message_size

    def __init__(self, int window_bits, no_context_takeover):
        if not 8 <= window_bits <= 15:
            raise ValueError(f"window_bits must be between 8 and 15, got {window_bits}")
        self._window_bits = window_bits
        self._no_context_takeover = True if no_context_takeover else False
        self._message_size = 0

    def __dealloc__(self):
        if self._started:
            inflateEnd(&self._stream)

    def message(self, data, Py_ssize_t max_size, bint text):
        """See ``wsfast._inflate_py.Inflater.message``."""
        cdef const char *p
        payload = self.run(data, True, max_size, None)
        if not text:
            return payload
        p = PyBytes_AS_STRING(payload)
        return PyUnicode_DecodeUTF8(p, len(payload), NULL)

    def decompress(self, data, bint final, max_size, bytearray out):
        """See ``wsfast._inflate_py.Inflater.decompress``."""
        return self.run(data, final, -1 if max_size is None else max_size, out)

    def reset(self):
        """See ``wsfast._inflate_py.Inflater.reset``."""
        if self._started:
            inflateReset(&self._stream)
        self._message_size = 0

    cdef bytes run(self, data, bint final, Py_ssize_t max_size, bytearray array):
        """Inflate ``data`` (and the tail if ``final``); ``max_size`` -1 is no limit."""
        cdef Py_buffer view
        cdef Output out
        cdef Py_ssize_t budget
        memset(&out, 0, sizeof(Output))
        out.limit = NO_LIMIT
        if max_size >= 0:
            budget = max(max_size - self._message_size, 0)
            out.limit = budget + 1
        if array is not None:
            out.array = <PyObject *>array
            out.start = PyByteArray_GET_SIZE(array)
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            if not self._started:
                self.start()
            # Room enough for zlib's fast loop to run to the end (it needs 258
            # bytes of room), for the usual ratios; shrunk to fit at the end.
            grow(&out, max(4 * view.len, 16384))
            self.feed(<const unsigned char *>view.buf, view.len, &out, max_size)
            if final:
                self.feed(EMPTY_BLOCK_TAIL, 4, &out, max_size)
        except BaseException:
            self.reset()
            Py_XDECREF(out.bytes)
            out.bytes = NULL
            raise
        finally:
            PyBuffer_Release(&view)
            if out.array != NULL:
                PyByteArray_Resize(array, out.start + out.used)
        self._message_size += out.used
        if final:
            self._message_size = 0
            if self._no_context_takeover:
                inflateReset(&self._stream)
        if out.array != NULL:
            return b""
        try:
            if _PyBytes_Resize(&out.bytes, out.used) < 0:
                out.bytes = NULL
                raise MemoryError()
            return <bytes>out.bytes
        finally:
            Py_XDECREF(out.bytes)

    cdef int start(self) except -1:
        memset(&self._stream, 0, sizeof(z_stream))
        if inflateInit2(&self._stream, -self._window_bits) != Z_OK:
            raise MemoryError("zlib could not allocate an inflater")
        self._started = True
        return 0

    cdef int feed(self, const unsigned char *p, Py_ssize_t n, Output *out, Py_ssize_t max_size) except -1:
        """Inflate all of ``p[:n]`` into ``out``, a new stream after each BFINAL block."""
        cdef z_stream *stream = &self._stream
        cdef Py_ssize_t chunk, room
        cdef int status
        while True:
            if out.used == out.capacity:
                grow(out, 0)
            chunk = min(n, STEP)
            room = min(out.capacity - out.used, STEP)
            stream.next_in = <unsigned char *>p
            stream.avail_in = <unsigned int>chunk
            stream.next_out = output_data(out) + out.used
            stream.avail_out = <unsigned int>room
            status = inflate(stream, Z_SYNC_FLUSH)
            p += chunk - stream.avail_in
            n -= chunk - stream.avail_in
            out.used += room - stream.avail_out
            if out.used == out.limit:
                out.used -= 1  # what the caller's bytearray keeps: never a byte past the limit
                raise PayloadTooBig(f"compressed message decompresses to more than {max_size} bytes")
            if status == Z_STREAM_END:
                # RFC 7692 §7.2.3.4: a BFINAL block ends zlib's stream, not the
                # message; what follows is decoded as the start of a new one.
                inflateReset(stream)
                if n == 0:
                    return 0
            elif status == Z_OK or status == Z_BUF_ERROR:
                if n == 0 and stream.avail_out != 0:
                    return 0  # all input taken, all output out
            elif status == Z_MEM_ERROR:
                raise MemoryError("zlib ran out of memory while inflating")
            else:
                reason = f": {stream.msg.decode(errors='replace')}" if stream.msg != NULL else ""
                raise ProtocolError(
                    f"invalid compressed data: Error {status} while decompressing data{reason}", code=1007
                )
