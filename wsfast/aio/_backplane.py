"""A backplane on the asyncio loop: the same Redis code as :class:`wsfast.Server`'s, no thread.

A backplane runs on a :class:`wsfast.loop.Loop`: it registers its sockets
with ``loop.selector``, writes through :class:`wsfast.loop.Stream` (which
queues the stream on ``loop._to_flush``, written at the end of the loop
iteration) and sets timers with ``loop.call_later``. :class:`AsyncioLoop`
is that much of a ``Loop`` over the running asyncio loop (``add_reader``,
``add_writer``, ``call_later``; uvloop's too), so one implementation of the
relay and of the Redis client serves both servers. Every socket is
non-blocking and every callback is short: nothing waits on the asyncio loop.

asyncio cannot run code at the end of an iteration: a backplane that writes
to a stream calls :meth:`AsyncioLoop.flush_later` (a ``Loop`` has none),
which writes the queued streams in one ``call_soon`` callback, so the
publishes of one iteration still go out in one system call.
"""

from __future__ import annotations

import asyncio
import logging
import selectors
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from ..loop import Loop, Stream

__all__ = ["AsyncioLoop"]

logger = logging.getLogger("wsfast.aio.server")

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


class _Readiness:
    """``Loop.selector``'s ``register``, ``modify`` and ``unregister`` on asyncio's readers and writers."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._watched: dict[int, int] = {}  # fd -> the events watched

    def register(self, fileobj: Any, events: int, callback: Callable[[Any, int], None]) -> None:
        fd = fileobj.fileno()
        if fd in self._watched:
            raise KeyError(f"{fileobj!r} is registered already")
        self._watched[fd] = 0
        self.modify(fileobj, events, callback)

    def modify(self, fileobj: Any, events: int, callback: Callable[[Any, int], None]) -> None:
        """Watch ``fileobj`` for ``events`` now; 0 watches nothing until the next call."""
        fd = fileobj.fileno()
        watched = self._watched[fd]
        # Added again when watched already: the callback may be another one.
        if events & _READ:
            self._loop.add_reader(fd, callback, fileobj, _READ)
        elif watched & _READ:
            self._loop.remove_reader(fd)
        if events & _WRITE:
            self._loop.add_writer(fd, callback, fileobj, _WRITE)
        elif watched & _WRITE:
            self._loop.remove_writer(fd)
        self._watched[fd] = events

    def unregister(self, fileobj: Any) -> None:
        """Forget ``fileobj`` (before closing it). Raises KeyError if unknown."""
        fd = fileobj.fileno()
        watched = self._watched.pop(fd)
        if watched & _READ:
            self._loop.remove_reader(fd)
        if watched & _WRITE:
            self._loop.remove_writer(fd)

    def close(self) -> None:
        for fd, watched in self._watched.items():
            if watched & _READ:
                self._loop.remove_reader(fd)
            if watched & _WRITE:
                self._loop.remove_writer(fd)
        self._watched.clear()

    def __len__(self) -> int:
        return len(self._watched)


class AsyncioLoop:
    """What a backplane needs of a :class:`wsfast.loop.Loop`, on the running asyncio loop.

    Attributes:
        asyncio_loop: the loop it runs on.
        selector: readiness of the backplane's sockets, as ``Loop.selector``.
        read_view: the receive buffer of the backplane's streams.
    """

    def __init__(self) -> None:
        self.asyncio_loop = asyncio.get_running_loop()
        self.selector = _Readiness(self.asyncio_loop)
        self.read_view = memoryview(bytearray(64 * 1024))
        # Streams with frames to write; each stream holds this very list.
        self._to_flush: list[Stream] = []
        self._flush_handle: asyncio.Handle | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._closed = False

    def as_loop(self) -> Loop:
        """This object, typed as the ``Loop`` it stands in for (``Backplane.attach`` takes one)."""
        return cast("Loop", self)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        """Run ``callback(*args)`` after ``delay`` seconds; the handle has ``cancel()``."""
        if self._closed:
            raise RuntimeError("the backplane's loop is closed")
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            callback(*args)

        handle = self.asyncio_loop.call_later(delay, fire)
        self._timers.add(handle)
        return handle

    def flush_later(self) -> None:
        """Have the queued streams written in a ``call_soon`` callback (one, however many calls)."""
        if self._to_flush and self._flush_handle is None and not self._closed:
            self._flush_handle = self.asyncio_loop.call_soon(self._flush)

    def close(self) -> None:
        """Cancel the timers and stop watching sockets (close the backplane first)."""
        self._closed = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._to_flush.clear()
        if len(self.selector):
            logger.warning("the backplane left %d sockets watched: unwatching them", len(self.selector))
        self.selector.close()

    def _flush(self) -> None:
        self._flush_handle = None
        streams = self._to_flush[:]
        self._to_flush.clear()  # the same list: every stream holds it
        for stream in streams:
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - one bad stream must not stop the others
                logger.exception("error while writing to %r", stream.sock)
        self.flush_later()  # what an on_drain callback wrote meanwhile
