"""The per-message path of a Stream, compiled: the twin of ``_stream_py.py``.

The same methods over C fields. The write queue is a C array of frames
(each a reference to its list of buffers, its size and whether it may be
dropped): queueing a frame allocates no Python object. A plain-TCP read is
one ``recv`` into the loop's buffer; the plain-TCP writer hands the queued
buffers to one system call (``send`` of them copied together up to 4 KiB,
where the kernel's ``writev`` costs more than the copy, else ``writev``; no
``socket.send`` call, no list of buffers) and consumes what was written in
C. A loop's whole iteration over epoll (``LoopCore._run``) runs no Python
bytecode of its own.

The queue's references to the buffer lists are invisible to the garbage
collector: a list of buffers (bytes-like objects) does not lead back to
its stream.
"""

import logging
import ssl
from collections import deque

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_CheckSignals
from cpython.list cimport PyList_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from cpython.method cimport PyMethod_Check, PyMethod_GET_FUNCTION, PyMethod_GET_SELF
from libc.errno cimport EAGAIN, EINTR, errno
from libc.math cimport ceil
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy, memmove, strerror
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec


cdef extern from "<errno.h>":
    int EWOULDBLOCK


cdef extern from "Python.h":
    ctypedef struct PyListObject:
        PyObject **ob_item
    void Py_SET_SIZE(object, Py_ssize_t)
    # A tuple's item set without a reference of its own: it steals one.
    void PyTuple_SET_ITEM(object, Py_ssize_t, PyObject *)
    tuple PyTuple_New(Py_ssize_t)


cdef extern from "<sys/socket.h>" nogil:
    ssize_t recv(int fd, void *buf, size_t n, int flags)
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    int MSG_NOSIGNAL


cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        void *ptr
        int fd
        uint32_t u32
        uint64_t u64
    struct epoll_event:
        uint32_t events
        epoll_data_t data
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)


cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len
    ssize_t writev(int fd, const iovec *iov, int iovcnt)


DEF MAX_IOV = 512
# Up to this many bytes in several buffers are copied together and sent with
# send(): for small writes the kernel's writev costs more than the copy.
DEF SMALL_WRITE = 4096
DEF MAX_EVENTS = 1024  # readiness events taken per epoll_wait
DEF FIRST_CAPACITY = 4  # frames a new queue has room for
cdef Py_ssize_t MAX_WRITE = 1 << 20
cdef int _READ = 1
cdef int _WRITE = 2
cdef int _EPOLLIN = 0x001
cdef int _EPOLLOUT = 0x004
_RETRY = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
logger = logging.getLogger("wsfast.loop")
# The callback that step() runs as a C call: a stream's own _on_event (set below).
cdef object _ON_EVENT = None


cdef inline Py_ssize_t _size(object buffer) except -1:
    if type(buffer) is bytes:
        return PyBytes_GET_SIZE(buffer)
    return memoryview(buffer).nbytes


def step(epoll, dict handlers, loop, double timeout):
    """Wait for readiness, set ``loop.now``, call the ready descriptors' callbacks.

    See ``wsfast._stream_py.step``, the pure-Python twin. ``epoll_wait`` is
    called directly into a C array (no list of tuples), and a stream's own
    ``_on_event`` runs as a C call.
    """
    return _step(epoll.fileno(), handlers, loop, timeout)


cdef inline double _monotonic() noexcept:
    """``time.monotonic()``."""
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec + now.tv_nsec * 1e-9


cdef double _step(int epfd, dict handlers, loop, double timeout) except? -1.0:
    """``step()`` on the descriptor of an epoll object."""
    cdef epoll_event events[MAX_EVENTS]
    cdef int n, i
    cdef int ms = -1 if timeout < 0 else <int>ceil(timeout * 1000.0)
    cdef double seconds
    if ms == 0:
        n = epoll_wait(epfd, events, MAX_EVENTS, 0)
    else:
        with nogil:
            n = epoll_wait(epfd, events, MAX_EVENTS, ms)
    if n < 0:
        if errno != EINTR:
            raise OSError(errno, strerror(errno))
        PyErr_CheckSignals()  # runs the Python signal handlers, as epoll.poll() does
        n = 0
    seconds = _monotonic()
    if type(loop) is LoopCore or isinstance(loop, LoopCore):
        (<LoopCore>loop).now = seconds
    else:
        loop.now = seconds
    for i in range(n):
        _call(handlers, events[i].data.fd, events[i].events)
    return seconds


cdef _call(dict handlers, int fd, unsigned int flags):
    cdef object handler = handlers.get(fd)
    if handler is None:
        return  # unregistered by an earlier callback
    # As selectors does: errors and hang-ups wake readers and writers.
    cdef int events = (_READ if flags & ~<unsigned int>_EPOLLOUT else 0) | (
        _WRITE if flags & ~<unsigned int>_EPOLLIN else 0
    )
    callback = (<tuple>handler)[1]
    try:
        if (
            PyMethod_Check(callback)
            and PyMethod_GET_FUNCTION(callback) == <PyObject *>_ON_EVENT
            and isinstance(<object>PyMethod_GET_SELF(callback), StreamCore)
        ):
            (<StreamCore>PyMethod_GET_SELF(callback))._handle(events)
        else:
            callback((<tuple>handler)[0], events)
    except Exception:
        logger.exception("error in an I/O callback")


def flush_all(list to_flush):
    """Empty ``to_flush`` and flush each stream that was in it.

    See ``wsfast._stream_py.flush_all``, the pure-Python twin. The streams
    are flushed in place, then taken off the front of the list, which keeps
    its storage for the next iteration (no copy, no regrowth); streams that
    these flushes queue again stay in it, for the next iteration.
    """
    _flush_all(to_flush)


cdef _flush_all(list to_flush):
    cdef Py_ssize_t i, n = len(to_flush)
    for i in range(n):
        _flush_one(to_flush[i])
    _take_first(to_flush, n)


cdef _flush_one(stream):
    try:
        if isinstance(stream, StreamCore):
            (<StreamCore>stream)._flush()
        else:
            stream.flush()
    except Exception:
        logger.exception("error while writing to %r", stream.sock)


cdef void _take_first(list items, Py_ssize_t n) noexcept:
    """Remove the first ``n`` of ``items``, keeping the list's storage."""
    cdef Py_ssize_t i
    cdef PyObject **first = (<PyListObject *>items).ob_item
    cdef Py_ssize_t left = PyList_GET_SIZE(items) - n
    # The references move to a tuple before they are dropped: whatever
    # dropping one runs sees a consistent list.
    cdef tuple taken = PyTuple_New(n)
    for i in range(n):
        PyTuple_SET_ITEM(taken, i, first[i])  # steals the list's reference
    memmove(first, &first[n], left * sizeof(PyObject *))
    Py_SET_SIZE(items, left)
    del taken


cdef inline char *_gather(const iovec *iov, int count, char *into) noexcept nogil:
    """Copy ``count`` buffers one after another into ``into``; return it."""
    cdef char *end = into
    cdef int i
    for i in range(count):
        memcpy(end, iov[i].iov_base, iov[i].iov_len)
        end += iov[i].iov_len
    return into


cdef class LoopCore:
    """What a loop touches on every iteration, and the iteration itself.

    See ``wsfast._stream_py.LoopCore``, the pure-Python twin.
    """

    def __init__(self):
        self.now = _monotonic()
        self._stopping = False
        self._timers = []
        self._inbox = deque()
        self._to_flush = []

    def _run(self, step, table):
        """Iterate until ``_stopping``; see the twin's docstring. Over epoll
        (``table``), the poll, the time and the callbacks are C calls."""
        cdef list timers = self._timers
        cdef list to_flush = self._to_flush
        cdef object inbox = self._inbox
        cdef dict handlers = None
        cdef int epfd = -1
        cdef double timeout, now
        if table is not None:
            epfd = (<tuple>table)[0].fileno()
            handlers = (<tuple>table)[1]
        while not self._stopping:
            timeout = -1.0  # until something is ready
            if inbox or to_flush:
                timeout = 0.0
            elif timers:
                timeout = <double>(<tuple>timers[0])[0] - _monotonic()
                if timeout < 0.0:
                    timeout = 0.0
            if epfd >= 0:
                now = _step(epfd, handlers, self, timeout)
            else:
                now = step(self, timeout)  # sets self.now before the callbacks run
            if inbox:
                self._run_inbox()
            if timers and <double>(<tuple>timers[0])[0] <= now:
                self._run_timers()
            if to_flush:
                _flush_all(to_flush)


cdef class StreamCore:
    """A socket's write queue: frames (lists of buffers) written in order.

    See ``wsfast._stream_py.StreamCore``, the pure-Python twin.
    """

    def __cinit__(self, *args, **kwargs):
        self._ring = <Frame *>PyMem_Malloc(FIRST_CAPACITY * sizeof(Frame))
        if self._ring is NULL:
            raise MemoryError()
        self._capacity = FIRST_CAPACITY

    def __dealloc__(self):
        self._drop_front(self.frame_count)
        PyMem_Free(self._ring)

    def __init__(self, list to_flush, read_view):
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
        self._on_read = NULL

    cdef set_on_read(self, on_read_f on_read, object target):
        """Read into ``on_read(target, data, size)`` instead of ``on_data(view)``,
        as long as ``on_data`` is the one set now (of which it is the C face)."""
        self._on_read = on_read
        self._on_read_target = target
        self._on_read_for = self.on_data

    def _on_event(self, sock, int mask):
        """The selector's callback: ``mask`` holds EVENT_READ and EVENT_WRITE."""
        self._handle(mask)

    cdef _handle(self, int mask):
        if self._handshaking:
            self._do_handshake()
            return
        if mask & _WRITE:
            self._flush()
        # Paused, a read event is an error or a hang-up: the write side, always
        # watched then (the queue is not empty), sees it and closes.
        if mask & _READ and self.reading and not self.closed:
            self._read_once()

    def _read(self):
        self._read_once()

    cdef _read_once(self):
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
        elif self._on_read is not NULL and self.on_data is self._on_read_for:
            self._on_read(self._on_read_target, <const unsigned char *>buffer, n)
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

    cdef int _push(self, list buffers, Py_ssize_t size, bint droppable) except -1:
        cdef Frame *frame
        if self.closed or self._close_after_flush:
            return 0
        if self._head + self.frame_count == self._capacity:
            self._grow()
        frame = &self._ring[self._head + self.frame_count]
        Py_INCREF(buffers)
        frame.buffers = <PyObject *>buffers
        frame.size = size
        frame.droppable = droppable
        self.frame_count += 1
        self.queued += size
        # While EVENT_WRITE is watched the socket is full: the loop flushes.
        if not self._flush_scheduled and not self._handshaking and not self._events & _WRITE:
            self._flush_scheduled = True
            self._to_flush.append(self)
        return 0

    cdef int _grow(self) except -1:
        """Make room for one more frame at the end of the array."""
        cdef Frame *ring
        if self._head:  # frames were taken from the front: move the rest down
            memmove(self._ring, &self._ring[self._head], self.frame_count * sizeof(Frame))
            self._head = 0
            return 0
        ring = <Frame *>PyMem_Realloc(self._ring, 2 * self._capacity * sizeof(Frame))
        if ring is NULL:
            raise MemoryError()
        self._ring = ring
        self._capacity *= 2
        return 0

    cdef void _drop_front(self, Py_ssize_t count) noexcept:
        """Forget the first ``count`` frames (their bytes are not counted here).

        Dropping a frame's list may free its buffers: bytes and C buffers,
        whose release writes to no stream.
        """
        cdef Py_ssize_t i
        for i in range(self._head, self._head + count):
            Py_DECREF(<object>self._ring[i].buffers)
        self.frame_count -= count
        self._head = self._head + count if self.frame_count else 0

    def pop_frame(self):
        """Take the first frame out of the queue: ``(buffers, size, droppable)``.

        Its bytes still count in :attr:`queued`; the caller takes them off as
        it writes them (a TLS stream's chunk).
        """
        if not self.frame_count:
            raise IndexError("pop_frame() from an empty queue")
        cdef Frame *frame = &self._ring[self._head]
        result = (<object>frame.buffers, frame.size, frame.droppable)
        self._drop_front(1)
        return result

    def clear_frames(self):
        """Drop every queued frame; :attr:`queued` becomes 0."""
        self._drop_front(self.frame_count)
        self.queued = 0
        self.head_started = False

    def flush(self):
        """Write what the socket takes now; watch for writability if some is left."""
        self._flush()

    cdef _flush(self):
        self._flush_scheduled = False
        if self.closed or self._handshaking:
            return
        if self._tls:
            self._flush_tls()
        else:
            self._flush_plain()
        if self.closed:
            return
        if self.frame_count or self._tls_chunk is not None:
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
        cdef Py_ssize_t i, kept = self._head
        cdef Py_ssize_t end = self._head + self.frame_count
        cdef Frame frame
        for i in range(self._head, end):
            frame = self._ring[i]
            if (
                not (i == self._head and self.head_started)
                and self.queued > limit
                and (frame.droppable or not droppable_only)
            ):
                self.queued -= frame.size
                Py_DECREF(<object>frame.buffers)
            else:
                self._ring[kept] = frame
                kept += 1
        self.frame_count = kept - self._head
        if not self.frame_count:
            self._head = 0

    cdef _flush_plain(self):
        cdef iovec iov[MAX_IOV]
        cdef Py_buffer views[MAX_IOV]
        cdef char small[SMALL_WRITE]
        cdef int count, held, i
        cdef Py_ssize_t f, total, sent
        cdef bint full
        while self.frame_count:
            count = 0
            held = 0
            total = 0
            full = False
            try:
                for f in range(self._head, self._head + self.frame_count):
                    for buffer in <list><object>self._ring[f].buffers:
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
                # Non-blocking: the GIL is kept.
                if count == 1:
                    sent = send(self.fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
                elif total <= SMALL_WRITE:
                    sent = send(self.fd, _gather(iov, count, small), total, MSG_NOSIGNAL)
                else:
                    sent = writev(self.fd, iov, count)
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
        cdef Frame *head
        cdef PyObject *written
        if sent == self.queued:  # the usual case: everything went out
            self._drop_front(self.frame_count)
            self.queued = 0
            self.head_started = False
            return
        self.queued -= sent
        while sent:
            size = self._ring[self._head].size
            if sent >= size:
                sent -= size
                self._drop_front(1)
                self.head_started = False
                continue
            # A partly written frame: keep what is left of it, uncopied.
            rest = list(<list><object>self._ring[self._head].buffers)
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
            # The array may have moved while the Python objects above were
            # made: the head is found again, and the old list dropped last.
            head = &self._ring[self._head]
            written = head.buffers
            Py_INCREF(rest)
            head.buffers = <PyObject *>rest
            head.size = size
            self.head_started = True
            Py_DECREF(<object>written)


_ON_EVENT = StreamCore.__dict__["_on_event"]
