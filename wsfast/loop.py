"""A small selectors event loop, and the non-blocking socket stream it drives.

:class:`Loop` runs callbacks on socket readiness, timers (``call_later``) and
calls from other threads (``call_soon_threadsafe``, woken by a socket pair).
:class:`Stream` owns one non-blocking socket, plain or TLS: it reads into a
shared buffer, and writes a queue of frames with scatter-gather ``sendmsg``,
watching for writability only while something is pending. Its per-message
path (:class:`StreamCore`) and the loop's iteration (:class:`LoopCore`: wait
for readiness, call back, run what is due, flush what was written) are
compiled when the extension is built, else pure Python (``WSFAST_PURE=1``
forces the latter).
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import select
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._stream_py import MAX_WRITE, RETRY
from .kernels import PURE

if TYPE_CHECKING or PURE:
    from ._stream_py import LoopCore, StreamCore, step
else:
    try:
        from ._stream_c import LoopCore, StreamCore, step
    except ImportError:
        from ._stream_py import LoopCore, StreamCore, step

__all__ = ["Loop", "LoopCore", "Poller", "Stream", "StreamCore", "TimerHandle"]

logger = logging.getLogger("wsfast.loop")

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
_EPOLLIN = getattr(select, "EPOLLIN", 1)
_EPOLLOUT = getattr(select, "EPOLLOUT", 4)
# selectors' READ/WRITE bits -> epoll's.
_EPOLL_MASKS = {
    0: 0,  # parked: only errors and hang-ups are reported
    _READ: _EPOLLIN,
    _WRITE: _EPOLLOUT,
    _READ | _WRITE: _EPOLLIN | _EPOLLOUT,
}


class TimerHandle:
    """A callback scheduled by :meth:`Loop.call_later`; :meth:`cancel` to drop it."""

    __slots__ = ("when", "callback", "args", "cancelled")

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Poller:
    """Readiness of file objects, each with its callback: epoll where there is
    one (Linux), else the best of :mod:`selectors`.

    The methods mirror the part of ``selectors.BaseSelector`` the loop uses;
    :meth:`poll` returns ``(fileobj, callback, events)`` triples, with
    ``events`` made of ``EVENT_READ`` and ``EVENT_WRITE``. Going to epoll
    directly saves ``selectors``' key objects on every event and every change
    of interest.
    """

    def __init__(self) -> None:
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._selector = None if self._epoll is not None else selectors.DefaultSelector()
        self._handlers: dict[int, tuple[Any, Callable[[Any, int], None]]] = {}
        # selectors cannot watch for nothing: file objects parked with no
        # events are unregistered from the selector until they want some.
        self._parked: set[Any] = set()

    def register(self, fileobj: Any, events: int, callback: Callable[[Any, int], None]) -> None:
        if self._epoll is None:
            assert self._selector is not None
            self._selector.register(fileobj, events, callback)
            return
        fd = fileobj.fileno()
        self._epoll.register(fd, _EPOLL_MASKS[events])
        self._handlers[fd] = (fileobj, callback)

    def modify(self, fileobj: Any, events: int, callback: Callable[[Any, int], None]) -> None:
        """Watch ``fileobj`` for ``events`` now; 0 parks it (no readiness reported)."""
        if self._epoll is None:
            assert self._selector is not None
            if fileobj in self._parked:
                if events:
                    self._parked.discard(fileobj)
                    self._selector.register(fileobj, events, callback)
            elif events:
                self._selector.modify(fileobj, events, callback)
            else:
                self._selector.unregister(fileobj)
                self._parked.add(fileobj)
            return
        fd = fileobj.fileno()
        self._epoll.modify(fd, _EPOLL_MASKS[events])
        self._handlers[fd] = (fileobj, callback)

    def unregister(self, fileobj: Any) -> None:
        """Forget ``fileobj`` (before closing it). Raises KeyError if unknown."""
        if self._epoll is None:
            assert self._selector is not None
            if fileobj in self._parked:
                self._parked.discard(fileobj)
            else:
                self._selector.unregister(fileobj)
            return
        fd = fileobj.fileno()
        del self._handlers[fd]
        self._epoll.unregister(fd)

    def stepper(self) -> Callable[[Any, float], float]:
        """The loop's I/O step, ``step(loop, timeout) -> loop.now``.

        It waits up to ``timeout`` seconds (< 0: until something is ready),
        sets ``loop.now`` to ``time.monotonic()``, then calls each ready file
        object's callback as ``callback(fileobj, events)``, logging what
        raises. Over epoll it is the stream core's ``step`` (compiled:
        ``epoll_wait`` into a C array, and streams called in C).
        """
        if self._epoll is not None:
            return functools.partial(step, self._epoll, self._handlers)
        return self._select_step

    def epoll_table(self) -> tuple[Any, dict[int, tuple[Any, Callable[[Any, int], None]]]] | None:
        """``(epoll, handlers)``, what the step polls over epoll (``handlers[fd]
        = (fileobj, callback)``), for a compiled loop to poll itself; None over selectors."""
        return None if self._epoll is None else (self._epoll, self._handlers)

    def _select_step(self, loop: Any, timeout: float) -> float:
        assert self._selector is not None
        ready = self._selector.select(None if timeout < 0 else timeout)
        loop.now = now = time.monotonic()
        for key, events in ready:
            try:
                key.data(key.fileobj, events)
            except Exception:  # noqa: BLE001 - one bad callback must not stop the loop
                logger.exception("error in an I/O callback")
        return now

    def poll(self, timeout: float | None) -> list[tuple[Any, Callable[[Any, int], None], int]]:
        if self._epoll is None:
            assert self._selector is not None
            return [(key.fileobj, key.data, mask) for key, mask in self._selector.select(timeout)]
        handlers = self._handlers
        ready = []
        for fd, flags in self._epoll.poll(-1 if timeout is None else timeout):
            handler = handlers.get(fd)
            if handler is not None:
                # As selectors does: errors and hang-ups wake readers and writers.
                events = (_READ if flags & ~_EPOLLOUT else 0) | (_WRITE if flags & ~_EPOLLIN else 0)
                ready.append((handler[0], handler[1], events))
        return ready

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
        elif self._selector is not None:
            self._selector.close()
        self._handlers.clear()
        self._parked.clear()


class Loop(LoopCore):
    """A single-threaded selector loop with timers and a thread-safe inbox.

    ``now``, the timer heap, the inbox and the streams to flush live in
    :class:`LoopCore`, with the iteration that uses them.
    """

    def __init__(self) -> None:
        super().__init__()
        #: Readiness of the loop's sockets: ``register``, ``modify``, ``unregister``.
        self.selector = Poller()
        self._sequence = itertools.count()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self.selector.register(self._wake_reader, _READ, self._drain_wakeups)
        self._thread_id: int | None = None
        #: The receive buffer of every :class:`Stream` of this loop: one
        #: suffices, as a loop reads one socket at a time.
        self.read_view = memoryview(bytearray(256 * 1024))

    # --- scheduling ----------------------------------------------------------

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` in the loop after ``delay`` seconds (loop thread only)."""
        handle = TimerHandle(time.monotonic() + delay, callback, args)
        heapq.heappush(self._timers, (handle.when, next(self._sequence), handle))
        return handle

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` in the loop thread soon; callable from any thread."""
        self._inbox.append((callback, args))
        try:
            self._wake_writer.send(b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # the pair is full: the loop is awake already
        except OSError:
            pass  # closed: the loop is gone

    def flush_soon(self, stream: Stream) -> None:
        """Have ``stream`` write its queue at the end of this iteration (loop thread only).

        Everything a stream is given during one iteration goes out in one
        system call: a burst of published messages, or the replies to every
        frame of a read.
        """
        self._to_flush.append(stream)

    def in_loop_thread(self) -> bool:
        """Whether the caller runs in the loop's thread (or the loop is not running)."""
        return self._thread_id is None or self._thread_id == threading.get_ident()

    def stop(self) -> None:
        """Make :meth:`run` return after the current iteration (any thread)."""
        self._stopping = True
        self.call_soon_threadsafe(lambda: None)

    # --- running -------------------------------------------------------------

    def run(self) -> None:
        """Run until :meth:`stop`."""
        self._stopping = False
        self._thread_id = threading.get_ident()
        try:
            self._run(self.selector.stepper(), self.selector.epoll_table())
        finally:
            self._thread_id = None

    def close(self) -> None:
        """Release the selector and the wake-up sockets."""
        self.selector.close()
        self._wake_reader.close()
        self._wake_writer.close()

    def _drain_wakeups(self, sock: socket.socket, mask: int) -> None:
        try:
            while sock.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _run_inbox(self) -> None:
        inbox = self._inbox
        for _ in range(len(inbox)):
            callback, args = inbox.popleft()
            try:
                callback(*args)
            except Exception:  # noqa: BLE001 - one bad callback must not stop the loop
                logger.exception("error in %r", callback)

    def _run_timers(self) -> None:
        timers = self._timers
        now = time.monotonic()
        while timers and timers[0][0] <= now:
            _, _, handle = heapq.heappop(timers)
            if not handle.cancelled:
                try:
                    handle.callback(*handle.args)
                except Exception:  # noqa: BLE001 - one bad callback must not stop the loop
                    logger.exception("error in timer %r", handle.callback)


class Stream(StreamCore):
    """One non-blocking socket in a :class:`Loop`: reads, queued writes, TLS.

    The owner supplies callbacks: ``on_data(view)`` with each chunk read (a
    memoryview into a shared buffer, valid during the call only),
    ``on_close()`` once the socket is closed for any reason (end of stream,
    error, or a local :meth:`close`), ``on_ready()`` once a TLS handshake (if
    any) is complete, and ``on_drain()`` when the write queue empties.

    Writes are frames: lists of buffers, queued in order and sent with
    ``sendmsg`` (plain TCP) or ``send`` (TLS). :attr:`queued` counts the
    bytes waiting.
    """

    def __init__(
        self,
        loop: Loop,
        sock: socket.socket,
        *,
        on_data: Callable[[memoryview], None],
        on_close: Callable[[], None],
        on_ready: Callable[[], None] = lambda: None,
        on_drain: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(loop._to_flush, loop.read_view)
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.on_data = on_data
        self.on_close = on_close
        self.on_ready = on_ready
        self.on_drain = on_drain
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._handshaking = self._tls
        # OpenSSL must be given the very same bytes again after a WANT_WRITE:
        # a TLS stream moves frames out of the queue into this chunk first
        # (``_tls_chunk``).
        sock.setblocking(False)
        loop.selector.register(sock, _READ, self._on_event)
        if self._tls:
            # A TLS client speaks first (ClientHello): start from the loop,
            # not from here, so callbacks never run inside the constructor.
            loop.call_later(0, self._start_tls)

    # --- writing ---------------------------------------------------------------

    def close_after_flush(self) -> None:
        """Stop reading, and close the socket once the queue is written (at once
        if it is empty): nothing the peer sends now can change the outcome."""
        self._close_after_flush = True
        if not self.frame_count and self._tls_chunk is None:
            self.close()
        else:
            self.pause_reading()

    def pause_reading(self) -> None:
        """Stop reading until the write queue is written out (backpressure on a
        peer that sends faster than it reads; its bytes wait in TCP's buffers)."""
        if self.reading:
            self.reading = False
            self._watch(self._events)

    def _resume_reading(self) -> None:
        self.reading = True
        self._watch(self._events | _READ)
        if self._tls and self.sock.pending():
            # Decrypted bytes the selector cannot see: read them from the loop.
            self.loop.call_later(0, self._read)

    def close(self) -> None:
        """Close the socket now, dropping whatever is queued."""
        if self.closed:
            return
        self.closed = True
        self.clear_frames()
        self._tls_chunk = None
        try:
            self.loop.selector.unregister(self.sock)
        except (KeyError, ValueError):
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.on_close()

    def _flush_tls(self) -> None:
        while self.frame_count or self._tls_chunk is not None:
            if self._tls_chunk is None:
                parts: list[Any] = []
                total = 0
                while self.frame_count and total < MAX_WRITE:
                    buffers, size, _ = self.pop_frame()
                    parts.extend(buffers)
                    total += size
                self._tls_chunk = b"".join(parts)
            chunk = self._tls_chunk
            try:
                sent = self.sock.send(chunk)
            except RETRY:
                return
            except OSError:
                self._broken()
                return
            self.queued -= sent
            self._tls_chunk = chunk[sent:] if sent < len(chunk) else None

    def _watch(self, events: int) -> None:
        if not self.reading and not self._handshaking:
            events &= _WRITE
        if events != self._events and not self.closed:
            self._events = events
            self.loop.selector.modify(self.sock, events, self._on_event)

    # --- reading ---------------------------------------------------------------

    def _start_tls(self) -> None:
        if self._handshaking and not self.closed:
            self._do_handshake()

    def _do_handshake(self) -> None:
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(_READ)
            return
        except ssl.SSLWantWriteError:
            self._watch(_READ | _WRITE)
            return
        except (OSError, ValueError):
            self._broken()
            return
        self._handshaking = False
        self._watch(_READ)
        self.on_ready()
        if self.frame_count:
            self.flush()

    def _broken(self) -> None:
        self.close()
