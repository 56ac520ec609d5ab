# The C face of _receive_c, for the compiled modules that cimport it.

from libc.stdint cimport uint8_t

ctypedef int (*on_message_f)(object target, object message) except -1

cdef Py_ssize_t deliver_whole(
    const uint8_t *p, Py_ssize_t size, Py_ssize_t max_size, on_message_f on_message, object target
) except -1
