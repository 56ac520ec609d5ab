"""The per-message path of a Stream, compiled: the twin of ``_stream_py.py``.

The same methods over C fields. A plain-TCP read is one ``recv`` into the
loop's buffer; the plain-TCP writer hands the queued buffers to one
``writev`` (no join, no ``socket.send`` call, no list of buffers) and
consumes what was written in C.
"""

from collections import deque

import logging
import ssl

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.errno cimport EAGAIN, EINTR, errno


cdef extern from "<errno.h>":
    int EWOULDBLOCK


cdef extern from "<sys/socket.h>" nogil:
    ssize_t recv(int fd, void *buf, size_t n, int flags)


cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len
    ssize_t writev(int fd, const iovec *iov, int iovcnt)


DEF MAX_IOV = 512
cdef Py_ssize_t MAX_WRITE = 1 << 20
cdef int _READ = 1
cdef int _WRITE = 2
cdef int _EPOLLIN = 0x001
cdef int _EPOLLOUT = 0x004
_RETRY = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
logger = logging.getLogger("wsfast.loop")


cdef inline Py_ssize_t _size(object buffer) except -1:
    if type(buffer) is bytes:
        return PyBytes_GET_SIZE(buffer)
    return memoryview(buffer).nbytes


def dispatch(list ready, dict handlers):
    """Call the callback of every ready file descriptor: the loop's I/O step.

    See ``wsfast._stream_py.dispatch``, the pure-Python twin.
    """
    cdef int flags, events
    cdef tuple handler
    for pair in ready:
        fd, flags = <tuple>pair
        handler = handlers.get(fd)
        if handler is None:
            continue
        events = (_READ if flags & ~_EPOLLOUT else 0) | (_WRITE if flags & ~_EPOLLIN else 0)
        try:
            handler[1](handler[0], events)
        except Exception:
            logger.exception("error in an I/O callback")


def flush_all(list to_flush):
    """Empty ``to_flush`` and flush each stream that was in it.

    See ``wsfast._stream_py.flush_all``, the pure-Python twin.
    """
    cdef list streams = to_flush[:]
    del to_flush[:]
    for stream in streams:
        try:
            stream.flush()
        except Exception:
            logger.exception("error while writing to %r", stream.sock)


def queue_shared(list receivers, list frame, Py_ssize_t size, Py_ssize_t limit):
    """Queue one prebuilt frame for every receiver that can take it as it is.

    See ``wsfast._stream_py.queue_shared``, the pure-Python twin.
    """
    cdef list rest = []
    cdef StreamCore core
    for receiver in receivers:
        stream = receiver.stream
        protocol = receiver.protocol
        if protocol.buffered_amount or not isinstance(stream, StreamCore):
            rest.append(receiver)
            continue
        core = <StreamCore>stream
        if core.queued > limit or not protocol.can_send_prebuilt():
            rest.append(receiver)
        else:
            core._push(frame, size, True)
    return rest


cdef class StreamCore:
    """A socket's write queue: frames (lists of buffers) written in order.

    See ``wsfast._stream_py.StreamCore``, the pure-Python twin.
    """

    def __init__(self, list to_flush, read_view):
        self.frames = deque()
        self.queued = 0
        self.head_started = False
        self.closed = False
        self.reading = True
        self.fd = -1
        self.sock = None
        self.on_drain = None
        self.on_data = None
        self._view = read_view
        self._read_bytes = read_view.obj
        self._to_flush = to_flush
        self._flush_scheduled = False
        self._close_after_flush = False
        self._handshaking = False
        self._tls = False
        self._tls_chunk = None
        self._events = _READ

    def _on_event(self, sock, int mask):
        """The selector's callback: ``mask`` holds EVENT_READ and EVENT_WRITE."""
        if self._handshaking:
            self._do_handshake()
            return
        if mask & _WRITE:
            self.flush()
        # Paused, a read event is an error or a hang-up: the write side, always
        # watched then (the queue is not empty), sees it and closes.
        if mask & _READ and self.reading and not self.closed:
            self._read()

    def _read(self):
        if self._tls:
            self._read_tls()
            return
        cdef char *buffer = PyByteArray_AS_STRING(self._read_bytes)
        cdef size_t size = PyByteArray_GET_SIZE(self._read_bytes)  # _view is all of it
        cdef Py_ssize_t n
        # Non-blocking: releasing the GIL would cost more than the call.
        n = recv(self.fd, buffer, size, 0)
        if n < 0:
            if errno == EAGAIN or errno == EWOULDBLOCK or errno == EINTR:
                return
            self._broken()
        elif n == 0:
            self._broken()
        else:
            self.on_data(self._view[:n])

    cdef _read_tls(self):
        view = self._view
        sock = self.sock
        while self.reading and not self.closed:
            try:
                n = sock.recv_into(view)
            except _RETRY:
                return
            except OSError:
                self._broken()
                return
            if not n:
                self._broken()
                return
            self.on_data(view[:n])
            # TLS may hold decrypted bytes that the selector cannot see.
            if not sock.pending():
                return

    def write(self, list buffers, *, Py_ssize_t size=-1, bint droppable=False):
        """Queue one frame (a list of buffers); see the twin's docstring."""
        if size < 0:
            size = 0
            for buffer in buffers:
                size += _size(buffer)
        self._push(buffers, size, droppable)

    cdef _push(self, list buffers, Py_ssize_t size, bint droppable):
        if self.closed or self._close_after_flush:
            return
        self.frames.append((buffers, size, droppable))
        self.queued += size
        # While EVENT_WRITE is watched the socket is full: the loop flushes.
        if not self._flush_scheduled and not self._handshaking and not self._events & _WRITE:
            self._flush_scheduled = True
            self._to_flush.append(self)

    def flush(self):
        """Write what the socket takes now; watch for writability if some is left."""
        self._flush_scheduled = False
        if self.closed or self._handshaking:
            return
        if self._tls:
            self._flush_tls()
        else:
            self._flush_plain()
        if self.closed:
            return
        if self.frames or self._tls_chunk is not None:
            self._watch(_READ | _WRITE)
            return
        if self._close_after_flush:
            self.close()
            return
        if not self.reading:
            self._resume_reading()
        elif self._events != _READ:
            self._watch(_READ)
        if self.on_drain is not None:
            self.on_drain()

    def drop_unsent(self, *, bint droppable_only=False, Py_ssize_t limit=0):
        """Drop queued frames that are not being written; see the twin's docstring."""
        kept = deque()
        frames = self.frames
        if self.head_started and frames:
            kept.append(frames.popleft())
        while frames:
            frame = frames.popleft()
            if self.queued > limit and (frame[2] or not droppable_only):
                self.queued -= <Py_ssize_t>frame[1]
            else:
                kept.append(frame)
        self.frames = kept

    def _flush_plain(self):
        cdef iovec iov[MAX_IOV]
        cdef Py_buffer views[MAX_IOV]
        cdef int count, held, i
        cdef Py_ssize_t total, sent
        cdef bint full
        while self.frames:
            count = 0
            held = 0
            total = 0
            full = False
            try:
                for frame in self.frames:
                    for buffer in <list>frame[0]:
                        if type(buffer) is bytes:
                            iov[count].iov_base = PyBytes_AS_STRING(buffer)
                            iov[count].iov_len = PyBytes_GET_SIZE(buffer)
                        else:
                            PyObject_GetBuffer(buffer, &views[held], PyBUF_SIMPLE)
                            iov[count].iov_base = views[held].buf
                            iov[count].iov_len = views[held].len
                            held += 1
                        total += iov[count].iov_len
                        count += 1
                        if count == MAX_IOV:
                            full = True
                            break
                    if full or total >= MAX_WRITE:
                        break
                sent = writev(self.fd, iov, count)  # non-blocking: the GIL is kept
            finally:
                for i in range(held):
                    PyBuffer_Release(&views[i])
            if sent < 0:
                if errno == EAGAIN or errno == EWOULDBLOCK or errno == EINTR:
                    return
                self._broken()
                return
            self._consume(sent)
            if sent < total:
                return

    cdef _consume(self, Py_ssize_t sent):
        """Drop ``sent`` written bytes from the front of the queue."""
        cdef Py_ssize_t size, length
        if sent == self.queued:  # the usual case: everything went out
            self.frames.clear()
            self.queued = 0
            self.head_started = False
            return
        self.queued -= sent
        frames = self.frames
        while sent:
            buffers, size, droppable = frames[0]
            if sent >= size:
                frames.popleft()
                sent -= size
                self.head_started = False
                continue
            # A partly written frame: keep what is left of it, uncopied.
            rest = list(buffers)
            while sent:
                first = memoryview(rest[0]).cast("B")
                length = len(first)
                if sent >= length:
                    sent -= length
                    rest.pop(0)
                else:
                    rest[0] = first[sent:]
                    sent = 0
            size = 0
            for buffer in rest:
                size += _size(buffer)
            frames[0] = (rest, size, droppable)
            self.head_started = True
