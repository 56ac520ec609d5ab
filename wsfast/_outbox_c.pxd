# The C face of _outbox_c.Outbox, for the compiled modules that cimport it.


cdef class Outbox:
    cdef public list buffers
    cdef public Py_ssize_t buffered
    cdef public unsigned long long version
