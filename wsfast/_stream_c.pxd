# The C face of _stream_c.StreamCore, for the compiled modules that cimport it.


cdef class StreamCore:
    cdef public object frames
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

    cdef _handle(self, int mask)
    cdef _read_once(self)
    cdef _read_tls(self)
    cdef _flush(self)
    cdef _flush_plain(self)
    cdef _push(self, list buffers, Py_ssize_t size, bint droppable)
    cdef _consume(self, Py_ssize_t sent)


cdef class LoopCore:
    cdef public double now
    cdef public bint _stopping
    cdef public list _timers
    cdef public object _inbox
    cdef public list _to_flush
