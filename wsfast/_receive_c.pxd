# The C face of _receive_c, for the compiled modules that cimport it.

ctypedef int (*on_message_f)(object target, object message) except -1

cdef Py_ssize_t deliver_whole(data, Py_ssize_t max_size, on_message_f on_message, object target) except -1
