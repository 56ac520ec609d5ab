# The C face of _stream_c.StreamCore, for the compiled modules that cimport it.

from cpython.ref cimport PyObject


cdef struct Frame:
    PyObject *buffers  # the frame's list of buffers: a reference the queue owns
    Py_ssize_t size
    bint droppable


# A compiled on_data: on_read(target, data, size) over the bytes of one read.
ctypedef int (*on_read_f)(object target, const unsigned char *data, Py_ssize_t size) except -1


cdef class StreamCore:
    # The queue: frame_count frames from _ring[_head], in a C array of _capacity.
    cdef Frame *_ring
    cdef Py_ssize_t _head
    cdef Py_ssize_t _capacity
    cdef readonly Py_ssize_t frame_count
    cdef public Py_ssize_t queued
    cdef public bint head_started
    cdef public bint closed
    cdef public bint reading
    cdef public int fd
    cdef public object sock
    cdef public object on_drain
    cdef public object on_data
    cdef object _view
    cdef bytearray _read_bytes  # the buffer under _view
    cdef public list _to_flush
    cdef public bint _flush_scheduled
    cdef public bint _close_after_flush
    cdef public bint _handshaking
    cdef public bint _tls
    cdef public object _tls_chunk
    cdef public int _events
    # The compiled face of on_data, used while on_data is _on_read_for.
    cdef on_read_f _on_read
    cdef object _on_read_target
    cdef object _on_read_for

    cdef _handle(self, int mask)
    cdef _read_once(self)
    cdef _read_tls(self)
    cdef _flush(self)
    cdef _flush_plain(self)
    cdef int _push(self, list buffers, Py_ssize_t size, bint droppable) except -1
    cdef int _grow(self) except -1
    cdef void _drop_front(self, Py_ssize_t count) noexcept
    cdef _consume(self, Py_ssize_t sent)
    cdef set_on_read(self, on_read_f on_read, object target)


cdef class LoopCore:
    cdef public double now
    cdef public bint _stopping
    cdef public list _timers
    cdef public object _inbox
    cdef public list _to_flush
