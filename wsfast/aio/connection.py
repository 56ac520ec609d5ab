"""One WebSocket connection on an asyncio transport, server or client side.

:class:`Connection` is the only place where asyncio drives the sans-IO
:class:`wsfast.Connection`: bytes from ``data_received`` go in, events come
out, and what the protocol queues is written to the transport. A compiled
per-connection core can replace the protocol here without touching the
server, the client or the application's API.
"""

from __future__ import annotations

import asyncio
import collections
import os
from collections.abc import AsyncIterator, Awaitable, Generator
from typing import Any

from ..events import Closed, Event, HandshakeFailed, HttpRequest, Opened, Pong
from ..exceptions import ConnectionClosed
from ..frames import OP_BINARY, OP_TEXT, CloseCode, frame_header
from ..handshake import Request
from ..protocol import Connection as Protocol
from ..protocol import State, _byte_buffer

__all__ = ["DEFAULT_MAX_QUEUE", "Connection", "encode_message"]

#: Received messages held for ``recv()`` before reading pauses.
DEFAULT_MAX_QUEUE = 16

# Closes after which ``async for message in ws`` ends instead of raising.
_NORMAL_CLOSES = frozenset((CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.NO_STATUS_RCVD))


def encode_message(message: str | Any) -> tuple[int, Any]:
    """The opcode and payload of a message: UTF-8 for a ``str``, the flat buffer of anything else."""
    if type(message) is str:
        return OP_TEXT, message.encode("utf-8")
    return OP_BINARY, _byte_buffer(message)


class _Done:
    """An awaitable that is already complete: what ``send`` returns when writing is not paused."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # a generator that stops at once


_DONE = _Done()


class Connection(asyncio.Protocol):
    """A WebSocket connection driven by asyncio; see :class:`~wsfast.aio.ServerConnection`
    and :class:`~wsfast.aio.ClientConnection`.

    Received messages wait in a queue of at most ``max_queue`` messages (plus
    those of one read) for :meth:`recv`; reading pauses while it is full.
    Sends are written at once; the awaitable they return waits while the
    transport holds more than ``write_limit`` bytes.
    """

    def __init__(self, protocol: Protocol, *, max_queue: int, write_limit: int, close_timeout: float) -> None:
        if max_queue <= 0:
            raise ValueError(f"max_queue must be > 0, got {max_queue}")
        if write_limit <= 0:
            raise ValueError(f"write_limit must be > 0, got {write_limit}")
        self.protocol = protocol
        self.max_queue = max_queue
        self.write_limit = write_limit
        self.close_timeout = close_timeout
        #: The handshake request (sent by a client, received by a server).
        self.request: Request | None = None
        #: The peer's ``(host, port)``.
        self.remote_address: Any = None
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self._loop = asyncio.get_running_loop()
        self._messages: collections.deque[str | bytes] = collections.deque()
        self._recv_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        # Frames held back to be written together at the end of the loop
        # iteration (see ServerConnection.cork); written before anything else.
        self._corked: list[Any] = []
        self._pings: dict[bytes, tuple[asyncio.Future[float], float]] = {}
        self._closed: Closed | None = None
        self._lost = self._loop.create_future()
        self._close_timer: asyncio.TimerHandle | None = None
        #: The loop's clock when data last arrived (heartbeats use it).
        self.last_seen = self._loop.time()

    def __repr__(self) -> str:
        path = self.request.path if self.request else "?"
        return f"<{type(self).__name__} {self.remote_address} {path} state={self.ready_state}>"

    # --- the application's API ----------------------------------------------------

    @property
    def ready_state(self) -> int:
        """0 CONNECTING, 1 OPEN, 2 CLOSING, 3 CLOSED, as ``WebSocket.readyState``."""
        return State.CLOSED.value if self._lost.done() else self.protocol.state.value

    @property
    def subprotocol(self) -> str | None:
        """The negotiated subprotocol, or ``None``."""
        return self.protocol.subprotocol

    @property
    def close_code(self) -> int | None:
        """The close code once the connection is closed (1006 when it was lost)."""
        return self._closed.code if self._closed else None

    @property
    def close_reason(self) -> str | None:
        """The close reason once the connection is closed."""
        return self._closed.reason if self._closed else None

    def send(self, message: str | Any) -> Awaitable[None]:
        """Send a text (``str``) or binary (any bytes-like) message; write it now.

        The returned awaitable waits while the transport is above
        ``write_limit`` (``await ws.send(message)`` is backpressure); a
        callback that does not await it only queues the message.

        Raises:
            ConnectionClosed: the connection is not OPEN.
            TypeError: ``message`` is neither ``str`` nor bytes-like.
        """
        protocol = self.protocol
        if self._corked:
            self._uncork()
        if protocol.can_send_prebuilt() and not protocol.buffered_amount:
            # The common case on a server: framed here, one write, no copy
            # of a large payload (writelines hands both buffers over).
            opcode, payload = encode_message(message)
            header = frame_header(opcode, len(payload))
            if len(payload) < 4096:
                self.transport.write(header + payload)
            else:
                self.transport.writelines((header, payload))
        else:
            if type(message) is str:
                protocol.send_text(message)
            else:
                protocol.send_binary(message)
            self.transport.writelines(protocol.data_to_send())
        return self._drained()

    async def recv(self, timeout: float | None = None) -> str | bytes:
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Cancelling a ``recv`` loses no message and leaves the connection usable.

        Args:
            timeout: seconds to wait; ``None`` waits as long as it takes.

        Raises:
            TimeoutError: no message within ``timeout``.
            ConnectionClosed: the connection closed (messages received before
                the close come first).
            RuntimeError: another task is already waiting in ``recv``.
        """
        messages = self._messages
        while not messages:
            if self._closed is not None:
                raise ConnectionClosed(self._closed.code, self._closed.reason)
            if self._recv_waiter is not None:
                raise RuntimeError("another task is already waiting for the next message")
            waiter = self._recv_waiter = self._loop.create_future()
            try:
                if timeout is None:
                    await waiter
                else:
                    await asyncio.wait_for(waiter, timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(f"no message within {timeout} seconds") from None
            finally:
                self._recv_waiter = None
        message = messages.popleft()
        if self._reading_paused and len(messages) <= self.max_queue // 2:
            self._reading_paused = False
            self.transport.resume_reading()
        return message

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        """Iterate over messages; ends on a normal close (1000, 1001, 1005).

        Raises:
            ConnectionClosed: the connection closed with any other code.
        """
        while True:
            try:
                yield await self.recv()
            except ConnectionClosed as exc:
                if exc.code in _NORMAL_CLOSES:
                    return
                raise

    async def ping(self, payload: bytes | None = None) -> float:
        """Send a ping and wait for its pong.

        Args:
            payload: at most 125 bytes; a random 4-byte one by default.

        Returns:
            The round-trip time in seconds.

        Raises:
            ConnectionClosed: the connection closed before the pong.
            ValueError: ``payload`` is already in flight in another ping.
        """
        payload = os.urandom(4) if payload is None else bytes(payload)
        if payload in self._pings:
            raise ValueError(f"a ping with payload {payload!r} is already waiting for its pong")
        self.protocol.send_ping(payload)
        self._flush()
        pong = self._loop.create_future()
        self._pings[payload] = (pong, self._loop.time())
        try:
            rtt: float = await pong
            return rtt
        finally:
            self._pings.pop(payload, None)

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> Awaitable[None]:
        """Start the closing handshake now; the awaitable waits for its end.

        The TCP connection is aborted if the handshake takes longer than
        ``close_timeout``. Closing a closed connection does nothing.

        Raises:
            ValueError: the code may not be sent or the reason is too long.
        """
        if self.protocol.state is State.CONNECTING:
            self.transport.abort()
        elif not self._lost.done():
            self.protocol.close(code, reason)
            self._flush()
            if self._close_timer is None and not self._lost.done():
                self._close_timer = self._loop.call_later(self.close_timeout, self.transport.abort)
        return self.wait_closed()

    def wait_closed(self) -> Awaitable[None]:
        """An awaitable that completes when the TCP connection is closed."""
        return asyncio.shield(self._lost)

    def abort(self) -> None:
        """Close the TCP connection at once, dropping what is queued."""
        if self.transport is not None:
            self.transport.abort()

    # --- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = transport  # type: ignore[assignment]
        self.remote_address = transport.get_extra_info("peername")
        self.transport.set_write_buffer_limits(high=self.write_limit)
        self._flush()  # a client's request

    def data_received(self, data: bytes) -> None:
        self.last_seen = self._loop.time()
        self._handle(self.protocol.receive_data(data))

    def eof_received(self) -> None:
        self._handle(self.protocol.receive_eof())

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closed is None:
            self._handle(self.protocol.receive_eof())
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._writing_paused = False
        self._wake_writers()
        if not self._lost.done():
            self._lost.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_writers()

    # --- the protocol's events -----------------------------------------------------

    def _handle(self, events: list[Event]) -> None:
        """Act on the protocol's events, then write what it queued."""
        for event in events:
            kind = type(event)
            if kind is str or kind is bytes:
                self._on_message(event)  # type: ignore[arg-type]
            elif kind is Pong:
                self._on_pong(event.payload)  # type: ignore[union-attr]
            elif kind is Opened:
                self._on_open(event)  # type: ignore[arg-type]
            elif kind is Closed:
                self._on_closed(event)  # type: ignore[arg-type]
            elif kind is HttpRequest:
                self._on_http_request(event.request)  # type: ignore[union-attr]
            elif kind is HandshakeFailed:
                self._on_handshake_failed(event)  # type: ignore[arg-type]
        self._flush()

    def _on_message(self, message: str | bytes) -> None:
        """Queue a message for :meth:`recv`; pause reading when the queue is full."""
        self._messages.append(message)
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if not self._reading_paused and len(self._messages) >= self.max_queue:
            self._reading_paused = True
            self.transport.pause_reading()

    def _on_pong(self, payload: bytes) -> None:
        """RFC 6455 §5.5.3: a pong answers its ping and every ping sent before it."""
        if payload not in self._pings:
            return
        now = self._loop.time()
        for key, (pong, sent_at) in list(self._pings.items()):
            if not pong.done():
                pong.set_result(now - sent_at)
            del self._pings[key]
            if key == payload:
                break

    def _on_open(self, event: Opened) -> None:
        self.request = event.request

    def _on_closed(self, event: Closed) -> None:
        self._closed = event
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        for pong, _ in self._pings.values():
            if not pong.done():
                pong.set_exception(ConnectionClosed(event.code, event.reason))
        self._pings.clear()

    def _on_http_request(self, request: Request) -> None:
        """A plain HTTP request; only a server gets one."""

    def _on_handshake_failed(self, event: HandshakeFailed) -> None:
        """The opening handshake failed; the protocol queued the answer."""

    # --- writing --------------------------------------------------------------------

    def _flush(self) -> None:
        protocol = self.protocol
        if self._corked:
            self._uncork()
        if protocol.buffered_amount:
            self.transport.writelines(protocol.data_to_send())
        if protocol.should_close_transport and not self.transport.is_closing():
            self.transport.close()

    def _uncork(self) -> None:
        corked, self._corked = self._corked, []
        if not self.transport.is_closing():
            self.transport.write(b"".join(corked) if len(corked) > 1 else corked[0])

    def _drained(self) -> Awaitable[None]:
        if not self._writing_paused:
            return _DONE
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        return waiter

    def _wake_writers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
