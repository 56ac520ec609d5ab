"""The asyncio WebSocket server: :func:`serve`.

It takes the options of :class:`wsfast.Server` and checks them the same way
(:func:`wsfast.server.handshake_policy`). The handler is either an
``async def handler(ws)``, run as one task per connection, or a
:class:`wsfast.Handler` whose callbacks run in the loop with no task per
message. A published message is framed once for all its subscribers.

With ``backplane=``, topics reach every node on it (``wsfast.aio`` nodes and
:class:`wsfast.Server` nodes alike) through the same
:class:`~wsfast.backplane.Relay` and backplane code as :class:`wsfast.Server`'s,
run on the asyncio loop (see ``wsfast/aio/_backplane.py``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

from ..backplane import Backplane, HistoryOptions, Position, Recovery, Relay, Stamp, from_url
from ..events import Closed, HandshakeFailed, Opened
from ..exceptions import ConnectionClosed
from ..extensions import PerMessageDeflate
from ..frames import CloseCode, frame_header
from ..handshake import Request, Response, ServerHandshake
from ..protocol import DEFAULT_MAX_MESSAGE_SIZE, Role, State
from ..protocol import Connection as Protocol
from ..server import Handler, default_http_handler, handshake_policy
from ._backplane import AsyncioLoop
from .connection import DEFAULT_MAX_QUEUE, Connection, encode_message

__all__ = ["AsyncHandler", "Server", "ServerConnection", "serve"]

logger = logging.getLogger("wsfast.aio.server")

#: ``async def handler(ws)``: serves one connection, which closes (1000) when it returns.
AsyncHandler = Callable[["ServerConnection"], Awaitable[None]]


class ServerConnection(Connection):
    """One client of a :class:`Server`: what the handler receives as ``ws``.

    Attributes:
        server: the server it belongs to.
        topics: the topics it is subscribed to.
    """

    def __init__(self, server: Server) -> None:
        protocol = Protocol(Role.SERVER, handshake=server.handshake, max_message_size=server.max_message_size)
        super().__init__(
            protocol, max_queue=server.max_queue, write_limit=server.write_limit, close_timeout=server.close_timeout
        )
        self.server = server
        self.topics: set[str] = set()
        self._opened = False
        self._task: asyncio.Task[None] | None = None
        #: The loop's clock when a heartbeat ping was sent with no data received since, else ``None``.
        self.ping_sent_at: float | None = None
        self._handshake_timer: asyncio.TimerHandle | None = None

    def send(self, message: str | Any) -> Awaitable[None]:
        """Send a text (``str``) or binary (any bytes-like) message; write it now.

        A client more than ``write_limit`` bytes behind gets the server's
        ``slow_consumer`` policy first. See :meth:`Connection.send`.
        """
        if self._writing_paused:  # the transport holds more than write_limit
            self.server._admit(self)
        return super().send(message)

    def _cork(self, frame: bytes) -> None:
        """Hold a published frame until the server writes every held frame, once per loop iteration.

        A burst of published messages then costs one write per client, not one per message.
        """
        if not self._corked:
            self.server._corked.append(self)
        self._corked.append(frame)

    def subscribe(
        self,
        topic: str,
        *,
        since: Position | None = None,
        on_recovery: Callable[[Recovery], None] | None = None,
    ) -> None:
        """Receive what :meth:`Server.publish` sends to ``topic``, on any node.

        Args:
            topic: the topic.
            since: the position of the last message the client saw (a topic
                with history, see :meth:`Server.enable_history`): first send
                every message published after it, in order, then the live ones.
            on_recovery: called with the :class:`~wsfast.backplane.Recovery`
                once the missed messages are written, or recovery proved
                impossible (the client is subscribed either way).
        """
        self.topics.add(topic)
        self.server._started_relay().subscribe(self, topic, since, on_recovery)

    def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic``."""
        self.topics.discard(topic)
        server = self.server
        subscribers = server._topics.get(topic)
        if subscribers is not None:
            subscribers.discard(self)
            if not subscribers:
                del server._topics[topic]
        if server._relay is not None:
            server._relay.unsubscribed(self, topic)

    # --- driven by the transport -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        server = self.server
        if len(server.connections) >= server.max_connections:
            self.transport.write(Response.plain(503, "Service Unavailable: too many connections").serialize())
            transport.close()
            return
        server.connections.add(self)
        self._handshake_timer = self._loop.call_later(server.handshake_timeout, self._handshake_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._corked.clear()
        super().connection_lost(exc)
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        for topic in list(self.topics):
            self.unsubscribe(topic)
        self.server._forget(self)

    def _handshake_timed_out(self) -> None:
        if self.protocol.state is State.CONNECTING:
            self.transport.abort()

    def _on_open(self, event: Opened) -> None:
        super()._on_open(event)
        self._opened = True
        server = self.server
        server.clients[self] = None
        if server._callbacks is not None:
            self._call(server._callbacks.on_open, self)
        else:
            assert server._coroutine is not None
            self._task = self._loop.create_task(self._run(server._coroutine))
            server._tasks.add(self._task)
            self._task.add_done_callback(server._tasks.discard)

    def _on_message(self, message: str | bytes) -> None:
        callbacks = self.server._callbacks
        if callbacks is None:
            super()._on_message(message)
        else:
            self._call(callbacks.on_message, self, message)

    def _on_closed(self, event: Closed) -> None:
        super()._on_closed(event)
        self.server.clients.pop(self, None)
        callbacks = self.server._callbacks
        if self._opened and callbacks is not None:
            self._call(callbacks.on_close, self, event.code, event.reason)

    def _on_http_request(self, request: Request) -> None:
        try:
            response = self.server.http_handler(request)
        except Exception:
            logger.exception("http_handler failed on %s", request.target)
            response = Response.plain(500, "Internal Server Error")
        self.protocol.send_response(response if response is not None else Response.plain(404, "Not Found"))

    def _on_handshake_failed(self, event: HandshakeFailed) -> None:
        logger.info("handshake from %s failed: %s", self.remote_address, event.error)

    # --- the handler ---------------------------------------------------------------

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        """Run a :class:`wsfast.Handler` callback; one that raises closes the connection (1011)."""
        try:
            callback(*args)
        except ConnectionClosed:
            pass  # the callback raced a close: nothing to report
        except Exception as exc:  # noqa: BLE001 - reported to the handler
            assert self.server._callbacks is not None
            try:
                self.server._callbacks.on_error(self, exc)  # type: ignore[arg-type]
            finally:
                if self.protocol.state is State.OPEN:
                    self.close(CloseCode.INTERNAL_ERROR, "internal error")

    async def _run(self, handler: AsyncHandler) -> None:
        """Serve the connection with ``handler``, then close it: 1000, or 1011 if it raised."""
        try:
            await handler(self)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("handler failed on %s", self)
            await self.close(CloseCode.INTERNAL_ERROR, "internal error")
        else:
            await self.close()


class Server:
    """An asyncio WebSocket server; create it with :func:`serve`.

    Attributes:
        clients: the OPEN connections, in the order they opened.
        connections: every connection, handshake included.
    """

    def __init__(
        self,
        handler: AsyncHandler | Handler,
        host: str = "127.0.0.1",
        port: int = 8765,
        *,
        ssl: ssl_module.SSLContext | None = None,
        origins: Iterable[str] | None = None,
        subprotocols: Sequence[str] = (),
        compression: PerMessageDeflate | bool = False,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_connections: int = 10000,
        write_limit: int = 4 * 1024 * 1024,
        slow_consumer: str = "close",
        ping_interval: float | None = 20.0,
        ping_timeout: float = 20.0,
        handshake_timeout: float = 10.0,
        idle_timeout: float | None = None,
        close_timeout: float = 5.0,
        http_handler: Callable[[Request], Response | None] = default_http_handler,
        reuse_port: bool = False,
        backlog: int = 1024,
        sock: socket.socket | None = None,
        backplane: str | Backplane | None = None,
    ) -> None:
        """Take the options of :class:`wsfast.Server`, and these.

        Args:
            handler: ``async def handler(ws)`` or a :class:`wsfast.Handler`.
            max_queue: messages received and held for ``recv()`` (async
                handlers) before reading from that client pauses.
            backplane: carry topics to every node on it, as for
                :class:`wsfast.Server`: a URL (``redis://host:port/db``, see
                :class:`~wsfast.backplane.RedisBackplane`) or a
                :class:`~wsfast.backplane.Backplane`; ``None``: this process
                only. It runs on the asyncio loop from :meth:`start` on, and
                is closed by :meth:`close`.

        Raises:
            ValueError: an option is out of range, or the backplane URL is invalid.
            TypeError: ``handler`` is neither callable nor a Handler.
        """
        self.handshake: ServerHandshake = handshake_policy(
            origins=origins,
            subprotocols=subprotocols,
            compression=compression,
            slow_consumer=slow_consumer,
            limits=(write_limit, max_connections, max_message_size),
        )
        if max_queue <= 0:
            raise ValueError(f"max_queue must be > 0, got {max_queue}")
        self._callbacks: Handler | None = None
        self._coroutine: AsyncHandler | None = None
        if isinstance(handler, Handler):
            self._callbacks = handler
        elif callable(handler):
            self._coroutine = handler
        else:
            raise TypeError(f"handler must be an async function or a wsfast.Handler, not {handler!r}")
        self.ssl = ssl
        self.max_message_size = max_message_size
        self.max_queue = max_queue
        self.max_connections = max_connections
        self.write_limit = write_limit
        self.slow_consumer = slow_consumer
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.close_timeout = close_timeout
        self.http_handler = http_handler
        self.connections: set[ServerConnection] = set()
        self.clients: dict[ServerConnection, None] = {}
        self._topics: dict[str, set[ServerConnection]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._corked: list[ServerConnection] = []
        self._address = (host, port)
        self._reuse_port = reuse_port
        self._backlog = backlog
        self._sock = sock
        self._listener: asyncio.Server | None = None
        self._heartbeat: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._backplane = from_url(backplane) if isinstance(backplane, str) else backplane
        self._histories: dict[str, tuple[HistoryOptions, Stamp | None]] = {}
        # Made by start(): the backplane connects on the running loop.
        self._bridge: AsyncioLoop | None = None
        self._relay: Relay[ServerConnection] | None = None

    # --- lifetime --------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening (``async with serve(...)`` does it)."""
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            self._listener = await loop.create_server(
                lambda: ServerConnection(self), sock=self._sock, ssl=self.ssl, backlog=self._backlog
            )
        else:
            self._listener = await loop.create_server(
                lambda: ServerConnection(self),
                *self._address,
                ssl=self.ssl,
                reuse_port=self._reuse_port or None,
                backlog=self._backlog,
            )
        self._heartbeat = loop.call_later(self._tick_period(), self._tick)
        self._bridge = AsyncioLoop()
        self._relay = Relay(self._bridge.as_loop(), self._topics, self._fan_out, self._backplane)
        self._relay.histories = self._histories

    def _started_relay(self) -> Relay[ServerConnection]:
        if self._relay is None:
            raise RuntimeError("the server is not started: use 'async with serve(...)'")
        return self._relay

    def close(self) -> None:
        """Start shutting down: stop listening and close every client (1001) after its queued data."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._shutdown())
            self._closing.add_done_callback(lambda _: self._closed.set())

    async def wait_closed(self) -> None:
        """Wait until the server is shut down (by :meth:`close`) and every connection is gone."""
        await self._closed.wait()
        assert self._closing is not None
        await self._closing  # its exception, if any

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
        await self.wait_closed()

    async def _shutdown(self) -> None:
        try:
            await self._close_connections()
        finally:
            if self._relay is not None:
                self._relay.backplane.close()
            if self._bridge is not None:
                self._bridge.close()

    async def _close_connections(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self._listener is not None:
            self._listener.close()
        for ws in list(self.connections):
            ws.close(CloseCode.GOING_AWAY, "server shutting down")
        waits = [ws.wait_closed() for ws in list(self.connections)]
        if waits:
            # Each close aborts on its own after close_timeout.
            await asyncio.gather(*waits)
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=self.close_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._listener is not None:
            await self._listener.wait_closed()

    # --- properties ------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port listened on (the one picked when asked for port 0)."""
        return int(self._sockname()[1])

    @property
    def host(self) -> str:
        """The address listened on."""
        return str(self._sockname()[0])

    def _sockname(self) -> Any:
        if self._listener is None or not self._listener.sockets:
            raise RuntimeError("the server is not listening: use 'async with serve(...)'")
        return self._listener.sockets[0].getsockname()

    # --- publishing --------------------------------------------------------------------

    @property
    def backplane(self) -> Backplane | None:
        """The backplane given to :func:`serve` (``None``: this process only)."""
        return self._backplane

    def enable_history(self, topic: str, size: int, *, ttl: float | None = None, stamp: Stamp | None = None) -> None:
        """Keep the last ``size`` messages of ``topic``, for ``ws.subscribe(topic, since=...)``.

        As :meth:`wsfast.Server.enable_history`: each message then gets a
        :class:`~wsfast.backplane.Position`, assigned by the backplane (in
        memory without one). Call before publishing, on every node.

        Args:
            topic: the topic.
            size: how many messages to keep, >= 1.
            ttl: forget the history (and start a new epoch) this many seconds
                after the last publish; ``None``: never.
            stamp: ``stamp(position, data) -> data``: what clients receive,
                so that they learn each message's position.

        Raises:
            ValueError: ``size`` or ``ttl`` is out of range.
        """
        self._histories[topic] = (HistoryOptions(size, ttl), stamp)

    def publish(self, topic: str, data: str | Any) -> int:
        """Send ``data`` to every client subscribed to ``topic``, on every node of the backplane.

        The frame is built once and written as is to every subscriber
        (clients with compression get their own compressed copy). Call it in
        the loop's thread.

        Returns:
            The number of local clients the message was written to; 0 for a
            topic with history (it is delivered once its history keeps it).

        Raises:
            RuntimeError: the server is not started, and has a backplane or
                keeps the history of ``topic``.
        """
        if self._backplane is not None or topic in self._histories:
            return self._started_relay().publish(topic, data)
        subscribers = self._topics.get(topic)
        return self._fan_out(list(subscribers), data) if subscribers else 0

    def broadcast(self, data: str | Any) -> int:
        """Send ``data`` to every OPEN client; see :meth:`publish`."""
        return self._fan_out(list(self.clients), data)

    def _fan_out(self, receivers: list[ServerConnection], data: str | Any) -> int:
        opcode, payload = encode_message(data)
        frame = frame_header(opcode, len(payload)) + payload
        if receivers and not self._corked:
            asyncio.get_running_loop().call_soon(self._uncork)
        count = 0
        for ws in receivers:
            if not self._admit(ws):
                continue
            protocol = ws.protocol
            if protocol.can_send_prebuilt():
                if protocol.buffered_amount:
                    ws._flush()  # keep the order of earlier sends
                ws._cork(frame)
            else:
                ws.send(data)  # compressed or mid-fragment: framed for this client
            count += 1
        return count

    def _uncork(self) -> None:
        """Write the frames published during this loop iteration, one write per client."""
        corked, self._corked = self._corked, []
        for ws in corked:
            if ws._corked:
                ws._uncork()

    def _admit(self, ws: ServerConnection) -> bool:
        """Apply the slow-consumer policy before one more message is written to ``ws``.

        asyncio cannot take back what a transport holds, so ``"drop"`` drops
        the new message, and ``"close"`` queues the close (1008) behind the
        backlog, bounded by ``close_timeout``.

        Returns:
            Whether ``ws`` is OPEN and may be sent to.
        """
        if ws.protocol.state is not State.OPEN:
            return False
        if ws.transport.get_write_buffer_size() <= self.write_limit:
            return True
        if self.slow_consumer == "close":
            logger.info("closing slow consumer %s", ws)
            ws.close(CloseCode.POLICY_VIOLATION, "slow consumer")
        return False

    def _forget(self, ws: ServerConnection) -> None:
        self.connections.discard(ws)
        self.clients.pop(ws, None)

    # --- heartbeats and timeouts -------------------------------------------------------

    def _tick_period(self) -> float:
        periods = [1.0, self.ping_timeout / 4]
        periods += [period / 4 for period in (self.ping_interval, self.idle_timeout) if period]
        return max(0.01, min(periods))

    def _tick(self) -> None:
        """Ping clients silent for ``ping_interval``; close the unresponsive and the idle."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for ws in list(self.clients):
            if ws.protocol.state is not State.OPEN:
                continue
            if ws.ping_sent_at is not None and ws.last_seen >= ws.ping_sent_at:
                ws.ping_sent_at = None  # the client answered (uvloop's clock ticks in ms: >=)
            if ws.ping_sent_at is not None and now - ws.ping_sent_at > self.ping_timeout:
                ws.close(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
            elif self.idle_timeout and now - ws.last_seen > self.idle_timeout:
                ws.close(CloseCode.GOING_AWAY, "idle timeout")
            elif self.ping_interval and ws.ping_sent_at is None and now - ws.last_seen > self.ping_interval:
                ws.ping_sent_at = now
                ws.protocol.send_ping(b"wsfast")
                ws._flush()
        self._heartbeat = loop.call_later(self._tick_period(), self._tick)


def serve(handler: AsyncHandler | Handler, host: str = "127.0.0.1", port: int = 8765, **options: Any) -> Server:
    """Serve WebSocket connections on asyncio: ``async with serve(handler, host, port) as server:``.

    ::

        async def echo(ws):
            async for message in ws:
                await ws.send(message)

        async with wsfast.aio.serve(echo, "127.0.0.1", 0) as server:
            await server.wait_closed()

    Leaving the ``async with`` block closes every client with 1001 (going
    away) after what is queued for it, waits for the handlers, and stops
    listening.

    Args:
        handler: ``async def handler(ws)`` (one task per connection) or a
            :class:`wsfast.Handler` (callbacks, no task per message).
        host, port: where to listen; port 0 picks a free port (see :attr:`Server.port`).
        options: the keyword arguments of :class:`Server` (those of :class:`wsfast.Server`, and ``max_queue``).

    Returns:
        The server; it listens once entered (or after ``await server.start()``).
    """
    return Server(handler, host, port, **options)
