"""The per-message path of a :class:`~wsfast.loop.Stream`, in pure Python.

:class:`StreamCore` holds one socket's write queue and the methods that run
for every message: readiness (``_on_event``), the read into the loop's
buffer, :meth:`~StreamCore.write`, :meth:`~StreamCore.flush` and the
plain-TCP writer; :func:`step` (wait for readiness, call back) and
:func:`flush_all` are the loop's work that runs once per ready socket and
once per stream written, and :class:`LoopCore` the loop's iteration that
calls them.
``_stream_c.pyx`` is the compiled twin, the same code over C fields with
``recv`` and ``writev`` in place of the socket methods; ``wsfast.loop``
picks one (``WSFAST_PURE=1``: this one) and derives ``Stream`` and ``Loop``
from it.
"""

from __future__ import annotations

import collections
import logging
import select
import selectors
import ssl
import time
from typing import TYPE_CHECKING, Any

__all__ = ["LoopCore", "StreamCore", "flush_all", "step"]

logger = logging.getLogger("wsfast.loop")

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
_EPOLLIN = getattr(select, "EPOLLIN", 1)
_EPOLLOUT = getattr(select, "EPOLLOUT", 4)
# sendmsg() takes at most IOV_MAX buffers; 1024 on Linux and macOS.
MAX_IOV = 512
# Bytes handed to one sendmsg()/send() call at most.
MAX_WRITE = 1 << 20
# Up to this many queued bytes are joined and written with one send().
_JOIN_LIMIT = 64 * 1024
RETRY = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def buffer_size(buffer: Any) -> int:
    """The size in bytes of a bytes-like object."""
    return len(buffer) if type(buffer) is bytes else memoryview(buffer).nbytes


def step(epoll: Any, handlers: dict[int, tuple[Any, Any]], loop: Any, timeout: float) -> float:
    """Wait for readiness, set ``loop.now``, call the ready descriptors' callbacks.

    The loop's I/O step: at most ``timeout`` seconds in ``epoll.poll()``
    (< 0: until something is ready), then ``loop.now = time.monotonic()``,
    then ``callback(fileobj, events)`` for each ready descriptor's
    ``handlers[fd] = (fileobj, callback)``, ``events`` made of
    ``EVENT_READ`` and ``EVENT_WRITE`` (errors and hang-ups wake readers
    and writers, as in :mod:`selectors`). A descriptor without a handler
    (unregistered by an earlier callback) is skipped; what a callback raises
    is logged, and the next one runs.

    Returns:
        ``loop.now``.
    """
    ready = epoll.poll(timeout)
    loop.now = now = time.monotonic()
    for fd, flags in ready:
        handler = handlers.get(fd)
        if handler is None:
            continue
        events = (_READ if flags & ~_EPOLLOUT else 0) | (_WRITE if flags & ~_EPOLLIN else 0)
        try:
            handler[1](handler[0], events)
        except Exception:  # noqa: BLE001 - one bad callback must not stop the loop
            logger.exception("error in an I/O callback")
    return now


def flush_all(to_flush: list[Any]) -> None:
    """Empty ``to_flush`` (the same list object stays) and flush each stream
    that was in it, logging what raises: the end of a loop iteration."""
    streams = to_flush[:]
    to_flush.clear()
    for stream in streams:
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - one bad callback must not stop the loop
            logger.exception("error while writing to %r", stream.sock)


class LoopCore:
    """What a loop touches on every iteration, and the iteration itself.

    The subclass provides ``_run_inbox()`` and ``_run_timers()``, called
    only when there is something to run.

    Attributes:
        now: the time of the current iteration (``time.monotonic()``).
        _stopping: set to make :meth:`_run` return after this iteration.
        _timers: the heap of ``(when, sequence, handle)``.
        _inbox: the ``(callback, args)`` given by other threads.
        _to_flush: the streams to write at the end of this iteration.
    """

    def __init__(self) -> None:
        self.now = time.monotonic()
        self._stopping = False
        self._timers: list[tuple[float, int, Any]] = []
        self._inbox: collections.deque[tuple[Any, tuple[Any, ...]]] = collections.deque()
        self._to_flush: list[Any] = []

    if TYPE_CHECKING:  # provided by the subclass

        def _run_inbox(self) -> None: ...
        def _run_timers(self) -> None: ...

    def _run(self, step: Any, table: tuple[Any, dict[int, tuple[Any, Any]]] | None) -> None:
        """Iterate until ``_stopping``: wait for readiness with ``step(loop,
        timeout)`` (not at all with work pending, at most until the next
        timer), then run the inbox, the due timers, and the flush of every
        stream written. ``table`` is the poller's ``(epoll, handlers)``,
        which ``step`` polls (the compiled twin polls it itself), or None.
        """
        timers = self._timers
        inbox = self._inbox
        to_flush = self._to_flush
        monotonic = time.monotonic
        while not self._stopping:
            timeout = -1.0  # until something is ready
            if inbox or to_flush:
                timeout = 0.0
            elif timers:
                # Not max(): a builtin call costs ~130 ns on Python 3.11, every iteration.
                timeout = timers[0][0] - monotonic()
                if timeout < 0.0:
                    timeout = 0.0
            now = step(self, timeout)  # sets self.now before the callbacks run
            if inbox:
                self._run_inbox()
            if timers and timers[0][0] <= now:
                self._run_timers()
            if to_flush:
                flush_all(to_flush)


class StreamCore:
    """A socket's write queue: frames (lists of buffers) written in order.

    The subclass owns the socket and the selector: it sets ``sock``, ``fd``
    and ``on_data`` and provides ``_watch(events)``, ``close()``,
    ``_broken()``, ``_do_handshake()``, ``_flush_tls()`` and
    ``_resume_reading()``, which this class calls when they are needed
    (rarely: never on the path of a message that goes out at once).

    Attributes:
        frame_count: the frames queued (read it, do not set it).
        queued: the bytes waiting to be written.
        head_started: whether the first frame is partly written.
        closed: whether the socket is closed.
        reading: whether the stream reads (``pause_reading``).
    """

    def __init__(self, to_flush: list[Any], read_view: memoryview) -> None:
        # The queue: (buffers, size, droppable) per frame.
        self._frames: collections.deque[tuple[list[Any], int, bool]] = collections.deque()
        self.queued = 0
        self.head_started = False
        self.closed = False
        self.reading = True
        self.fd = -1
        self.sock: Any = None
        self.on_drain: Any = None
        self.on_data: Any = None
        self._view = read_view
        self._to_flush = to_flush
        self._flush_scheduled = False
        self._close_after_flush = False
        self._handshaking = False
        self._tls = False
        self._tls_chunk: bytes | None = None
        self._events = _READ

    if TYPE_CHECKING:  # provided by the subclass

        def _watch(self, events: int) -> None: ...
        def close(self) -> None: ...
        def _broken(self) -> None: ...
        def _flush_tls(self) -> None: ...
        def _do_handshake(self) -> None: ...
        def _resume_reading(self) -> None: ...

    @property
    def frame_count(self) -> int:
        return len(self._frames)

    def pop_frame(self) -> tuple[list[Any], int, bool]:
        """Take the first frame out of the queue: ``(buffers, size, droppable)``.

        Its bytes still count in :attr:`queued`; the caller takes them off as
        it writes them (a TLS stream's chunk).

        Raises:
            IndexError: the queue is empty.
        """
        if not self._frames:
            raise IndexError("pop_frame() from an empty queue")
        return self._frames.popleft()

    def clear_frames(self) -> None:
        """Drop every queued frame; :attr:`queued` becomes 0."""
        self._frames.clear()
        self.queued = 0
        self.head_started = False

    def _on_event(self, sock: Any, mask: int) -> None:
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

    def _read(self) -> None:
        view = self._view
        sock = self.sock
        while self.reading and not self.closed:
            try:
                n = sock.recv_into(view)
            except RETRY:
                return
            except OSError:
                self._broken()
                return
            if not n:
                self._broken()
                return
            self.on_data(view[:n])
            # TLS may hold decrypted bytes that the selector cannot see.
            if not (self._tls and sock.pending()):
                return

    def write(self, buffers: list[Any], *, size: int = -1, droppable: bool = False) -> None:
        """Queue one frame (a list of buffers); it is written at the end of the
        loop iteration, with every other frame queued by then, in one call.

        Args:
            buffers: bytes-like objects, written in order and never copied
                until then; the caller must not modify them meanwhile.
            size: the total size of ``buffers`` in bytes, when the caller
                knows it (else it is computed).
            droppable: whether :meth:`drop_unsent` may discard the frame
                (a published feed message, say) while it is unsent.
        """
        if self.closed or self._close_after_flush:
            return
        if size < 0:
            size = 0
            for buffer in buffers:
                size += len(buffer) if type(buffer) is bytes else memoryview(buffer).nbytes
        self._frames.append((buffers, size, droppable))
        self.queued += size
        # While EVENT_WRITE is watched the socket is full: the loop flushes.
        if not self._flush_scheduled and not self._handshaking and not self._events & _WRITE:
            self._flush_scheduled = True
            self._to_flush.append(self)

    def flush(self) -> None:
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
        if self._frames or self._tls_chunk is not None:
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

    def drop_unsent(self, *, droppable_only: bool = False, limit: int = 0) -> None:
        """Drop queued frames that are not being written, oldest first, while
        more than ``limit`` bytes are queued: only the droppable ones with
        ``droppable_only``, else all. A partly written frame is always kept.
        """
        kept: collections.deque[tuple[list[Any], int, bool]] = collections.deque()
        frames = self._frames
        if self.head_started and frames:
            kept.append(frames.popleft())
        while frames:
            frame = frames.popleft()
            if self.queued > limit and (frame[2] or not droppable_only):
                self.queued -= frame[1]
            else:
                kept.append(frame)
        self._frames = kept

    def _flush_plain(self) -> None:
        frames = self._frames
        while frames:
            buffers: list[Any] = []
            total = 0
            joined = self.queued <= _JOIN_LIMIT
            if joined:
                # Small writes: one copy into one buffer beats sendmsg's setup.
                for frame in frames:
                    buffers.extend(frame[0])
                total = self.queued
            else:
                for frame in frames:
                    for buffer in frame[0]:
                        buffers.append(buffer)
                        if len(buffers) == MAX_IOV:
                            break
                    total += frame[1]
                    if len(buffers) == MAX_IOV or total >= MAX_WRITE:
                        break
                if len(buffers) == MAX_IOV:
                    total = sum(buffer_size(buffer) for buffer in buffers)
            try:
                sent = self.sock.send(b"".join(buffers)) if joined else self.sock.sendmsg(buffers)
            except RETRY:
                return
            except OSError:
                self._broken()
                return
            self._consume(sent)
            if sent < total:
                return

    def _consume(self, sent: int) -> None:
        """Drop ``sent`` written bytes from the front of the queue."""
        if sent == self.queued:  # the usual case: everything went out
            self.clear_frames()
            return
        self.queued -= sent
        frames = self._frames
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
                if sent >= len(first):
                    sent -= len(first)
                    rest.pop(0)
                else:
                    rest[0] = first[sent:]
                    sent = 0
            frames[0] = (rest, sum(buffer_size(buffer) for buffer in rest), droppable)
            self.head_started = True
