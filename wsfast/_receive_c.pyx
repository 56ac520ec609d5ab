"""Whole messages straight from a read, compiled: the twin of ``_receive_py.py``.

``deliver_whole`` (``_receive_c.pxd``) is the same scan for compiled
callers, with a C function as the callback: no Python call per message.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport uint8_t, uint64_t


cdef extern from "wsfast_kernels.h":
    void wsf_kernels_init()
    void wsf_mask(const uint8_t *src, uint8_t *dst, size_t n, const uint8_t *key, unsigned phase) nogil


wsf_kernels_init()


def deliver_whole_messages(data, Py_ssize_t max_size, on_message):
    """Hand each whole message at the start of ``data`` to ``on_message``.

    See ``wsfast._receive_py.deliver_whole_messages``, the pure-Python twin.
    """
    cdef Py_buffer view
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        return deliver_whole(<const uint8_t *>view.buf, view.len, max_size, _call, on_message)
    finally:
        PyBuffer_Release(&view)


cdef int _call(object on_message, object message) except -1:
    return 1 if on_message(message) else 0


cdef Py_ssize_t deliver_whole(
    const uint8_t *p, Py_ssize_t size, Py_ssize_t max_size, on_message_f on_message, object target
) except -1:
    """``deliver_whole_messages()`` over the ``size`` bytes at ``p`` (which
    must stay valid meanwhile), calling ``on_message(target, message)``: 1 to
    go on, 0 to stop after this message."""
    cdef Py_ssize_t position = 0, start, header
    cdef uint64_t length
    cdef uint8_t b0, b1
    while size - position >= 6:
        start = position
        b0 = p[position]
        b1 = p[position + 1]
        # FIN, no RSV bit, text or binary; masked.
        if (b0 != 0x81 and b0 != 0x82) or not b1 & 0x80:
            break
        length = b1 & 0x7F
        header = 2
        if length == 126:
            if size - position < 8:
                break
            length = (<uint64_t>p[position + 2] << 8) | p[position + 3]
            header = 4
            if length < 126:
                break
        elif length == 127:
            if size - position < 14:
                break
            length = 0
            for i in range(8):
                length = (length << 8) | p[position + 2 + i]
            header = 10
            if length < 65536 or length >> 63:
                break
        if length > <uint64_t>max_size or <uint64_t>(size - position - header - 4) < length:
            break
        payload = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>length)
        wsf_mask(p + position + header + 4, <uint8_t *>PyBytes_AS_STRING(payload), length,
                 p + position + header, 0)
        if b0 == 0x81:
            try:
                message = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(payload), <Py_ssize_t>length, NULL)
            except UnicodeDecodeError:
                break  # the protocol fails the connection (1007)
        else:
            message = payload
        position = start + header + 4 + <Py_ssize_t>length
        if not on_message(target, message):
            break
    return position
