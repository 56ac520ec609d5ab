"""The selectors-based WebSocket server: echo, chat rooms and binary feeds.

One :class:`~wsfast.loop.Loop` serves every connection of a process. Each
read is fed whole to the connection's sans-IO :class:`~wsfast.Connection`,
whose frame parser handles every complete frame of it in one kernel call;
replies are queued per connection and written with ``sendmsg``, header and
payload apart. A published message is framed once and the same buffers are
queued for every subscriber.
"""

from __future__ import annotations

import logging
import signal
import socket
import ssl as ssl_module
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .events import Closed, Event, HandshakeFailed, HttpRequest, Opened, Pong
from .exceptions import ConnectionClosed
from .extensions import PerMessageDeflate
from .frames import CloseCode, Opcode, frame_header
from .handshake import Request, Response, ServerHandshake
from .kernels import PURE
from .loop import Loop, Stream, TimerHandle, queue_shared
from .protocol import DEFAULT_MAX_MESSAGE_SIZE, Connection, Role, State, _byte_buffer

if TYPE_CHECKING or PURE:
    from ._receive_py import deliver_whole_messages
else:
    try:
        from ._receive_c import deliver_whole_messages
    except ImportError:
        from ._receive_py import deliver_whole_messages

__all__ = ["Handler", "Server", "ServerConnection"]

logger = logging.getLogger("wsfast.server")

_BINARY = Opcode.BINARY.value
_TEXT = Opcode.TEXT.value
_OPEN = State.OPEN


class Handler:
    """Application callbacks; subclass and override what you need.

    Every callback runs in the server's loop thread and must not block.
    """

    def on_open(self, ws: ServerConnection) -> None:
        """The handshake is done: ``ws`` is OPEN."""

    def on_message(self, ws: ServerConnection, message: str | bytes) -> None:
        """A whole message arrived: ``str`` for text, ``bytes`` for binary."""

    def on_close(self, ws: ServerConnection, code: int, reason: str) -> None:
        """The connection is over (1006 when it was lost without a close)."""

    def on_error(self, ws: ServerConnection, error: BaseException) -> None:
        """A callback raised ``error``; the connection is closed with 1011."""
        logger.error("handler error on %s", ws, exc_info=error)


class ServerConnection:
    """One client of a :class:`Server`, as the handler sees it (``ws``).

    Attributes:
        request: the handshake request (``path``, ``query``, ``headers``).
        remote_address: the client's ``(host, port)``.
        subprotocol: the negotiated subprotocol, or ``None``.
        topics: the topics this client is subscribed to.
    """

    def __init__(self, server: Server, sock: socket.socket, address: Any) -> None:
        self.server = server
        self.remote_address = address
        self.request: Request | None = None
        self.topics: set[str] = set()
        self.protocol = Connection(
            Role.SERVER,
            handshake=server.handshake,
            max_message_size=server.max_message_size,
        )
        self.stream = Stream(server.loop, sock, on_data=self._on_data, on_close=self._on_stream_closed)
        self._opened = False
        self._closed = False
        self.last_seen = server.loop.now
        self.connected_at = server.loop.now
        self._ping_sent_at: float | None = None
        self._close_timer: TimerHandle | None = None

    def __repr__(self) -> str:
        path = self.request.path if self.request else "?"
        return f"<ServerConnection {self.remote_address} {path} state={self.ready_state}>"

    # --- the handler's API -------------------------------------------------------

    @property
    def ready_state(self) -> int:
        """0 CONNECTING, 1 OPEN, 2 CLOSING, 3 CLOSED, as ``WebSocket.readyState``."""
        return State.CLOSED.value if self.stream.closed else self.protocol.state.value

    @property
    def buffered_amount(self) -> int:
        """Bytes queued for this client and not yet written to the socket."""
        return self.stream.queued

    @property
    def subprotocol(self) -> str | None:
        return self.protocol.subprotocol

    def send(self, message: str | Any) -> None:
        """Send a text message (``str``) or a binary one (any bytes-like object).

        A binary payload is queued as is, without a copy (memoryviews and
        numpy arrays included): do not modify it until it is written.

        Raises:
            ConnectionClosed: the connection is not OPEN.
        """
        protocol = self.protocol
        stream = self.stream
        if stream.queued + protocol.buffered_amount > self.server.write_limit:
            self.server._admit(self)
        if protocol.can_send_prebuilt():
            # The common case, framed here without the sans-IO send path;
            # what the protocol queued before (a pong) goes out first.
            if protocol.buffered_amount:
                stream.write(protocol.data_to_send())
            if type(message) is str:
                payload: Any = message.encode("utf-8")
                opcode = _TEXT
            else:
                payload = _byte_buffer(message)
                opcode = _BINARY
            header = frame_header(opcode, len(payload))
            stream.write([header, payload], size=len(header) + len(payload))
            return
        if type(message) is str:
            protocol.send_text(message)
        else:
            protocol.send_binary(message)
        self._flush_protocol()

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping (at most 125 bytes of payload)."""
        self.protocol.send_ping(payload)
        self._flush_protocol()

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake; the TCP connection closes when it completes
        (or after the server's ``close_timeout``)."""
        if self.protocol.state is State.CONNECTING:
            self.abort()
            return
        self.protocol.close(code, reason)
        self._flush_protocol()
        self._abort_after_close_timeout()

    def abort(self) -> None:
        """Close the TCP connection at once, dropping queued data."""
        self.stream.close()

    def _close_transport(self) -> None:
        """Read nothing more; close the TCP connection once what is queued (a
        close frame last) is written, or abort it after ``close_timeout``."""
        self.stream.close_after_flush()
        self._abort_after_close_timeout()

    def _abort_after_close_timeout(self) -> None:
        if self._close_timer is None and not self.stream.closed:
            self._close_timer = self.server.loop.call_later(self.server.close_timeout, self.abort)

    def subscribe(self, topic: str) -> None:
        """Receive what :meth:`Server.publish` sends to ``topic``."""
        self.topics.add(topic)
        self.server._topics.setdefault(topic, set()).add(self)

    def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic``."""
        self.topics.discard(topic)
        subscribers = self.server._topics.get(topic)
        if subscribers is not None:
            subscribers.discard(self)
            if not subscribers:
                del self.server._topics[topic]

    # --- driven by the loop ----------------------------------------------------

    def _on_data(self, data: memoryview) -> None:
        self.last_seen = self.server.loop.now
        self._ping_sent_at = None
        protocol = self.protocol
        limit = protocol.whole_message_limit()
        if limit is not None:
            # Whole messages go straight to the handler; the protocol gets the rest.
            taken = deliver_whole_messages(data, limit, self._deliver)
            if taken < len(data):
                self._dispatch(protocol.receive_data(data[taken:]))
            elif protocol.buffered_amount or protocol.should_close_transport:
                self._flush_protocol()
        else:
            self._dispatch(protocol.receive_data(data))
        # Replies, pongs and close echoes count against write_limit alike:
        # read no more from a client whose queue is over it until it drains.
        if self.stream.queued > self.server.write_limit:
            self.stream.pause_reading()

    def _deliver(self, message: str | bytes) -> bool:
        """One message of the fast path to the handler; whether to go on with it."""
        try:
            self.server.handler.on_message(self, message)
        except ConnectionClosed:
            pass  # the handler raced a close: nothing to report
        except Exception as exc:  # noqa: BLE001 - reported to the handler
            self._handler_failed(exc)
        return self.protocol.state is _OPEN

    def _on_stream_closed(self) -> None:
        if not self._closed:
            self._dispatch(self.protocol.receive_eof())
        self._release()

    def _release(self) -> None:
        """Forget this connection everywhere (idempotent)."""
        if self._close_timer is not None:
            self._close_timer.cancel()
        for topic in list(self.topics):
            self.unsubscribe(topic)
        self.server._forget(self)

    def _flush_protocol(self) -> None:
        protocol = self.protocol
        if protocol.buffered_amount:
            self.stream.write(protocol.data_to_send())
        if protocol.should_close_transport:
            self._close_transport()

    def _dispatch(self, events: list[Event]) -> None:
        handler = self.server.handler
        for event in events:
            kind = type(event)
            try:
                if kind is bytes or kind is str:
                    handler.on_message(self, event)  # type: ignore[arg-type]
                elif kind is Opened:
                    self._open(event)  # type: ignore[arg-type]
                elif kind is Closed:
                    self._finish(event)  # type: ignore[arg-type]
                elif kind is HttpRequest:
                    self._answer_http(event.request)  # type: ignore[union-attr]
                elif kind is HandshakeFailed:
                    logger.info("handshake from %s failed: %s", self.remote_address, event.error)  # type: ignore[union-attr]
                elif kind is Pong:
                    pass
            except ConnectionClosed:
                pass  # the handler raced a close: nothing to report
            except Exception as exc:  # noqa: BLE001 - reported to the handler
                self._handler_failed(exc)
        self._flush_protocol()

    def _open(self, event: Opened) -> None:
        self.request = event.request
        self._opened = True
        self.server._opened(self)
        self.server.handler.on_open(self)

    def _answer_http(self, request: Request) -> None:
        try:
            response = self.server.http_handler(request)
        except Exception as exc:
            self.protocol.send_response(Response.plain(500, "Internal Server Error"))
            self.server.handler.on_error(self, exc)
            return
        if response is None:
            response = Response.plain(404, "Not Found")
        self.protocol.send_response(response)

    def _finish(self, event: Closed) -> None:
        if self._closed:
            return
        self._closed = True
        self._release()
        if self._opened:
            self.server.handler.on_close(self, event.code, event.reason)

    def _handler_failed(self, exc: Exception) -> None:
        try:
            self.server.handler.on_error(self, exc)
        finally:
            if self.protocol.state is State.OPEN:
                self.protocol.close(CloseCode.INTERNAL_ERROR, "internal error")


class _DecoratedHandler(Handler):
    """A :class:`Handler` assembled from ``@server.on_*`` decorators."""

    def __init__(self) -> None:
        self.callbacks: dict[str, Callable[..., None]] = {}

    def on_open(self, ws: ServerConnection) -> None:
        if "on_open" in self.callbacks:
            self.callbacks["on_open"](ws)

    def on_message(self, ws: ServerConnection, message: str | bytes) -> None:
        if "on_message" in self.callbacks:
            self.callbacks["on_message"](ws, message)

    def on_close(self, ws: ServerConnection, code: int, reason: str) -> None:
        if "on_close" in self.callbacks:
            self.callbacks["on_close"](ws, code, reason)

    def on_error(self, ws: ServerConnection, error: BaseException) -> None:
        if "on_error" in self.callbacks:
            self.callbacks["on_error"](ws, error)
        else:
            super().on_error(ws, error)


def default_http_handler(request: Request) -> Response | None:
    """Answer ``/healthz``; anything else is a 404."""
    if request.path == "/healthz":
        return Response.plain(200, "ok")
    return None


class Server:
    """A WebSocket server on one selector loop.

    Give it a :class:`Handler` subclass instance, or use the decorators::

        server = wsfast.Server(port=8765)

        @server.on_message
        def echo(ws, message):
            ws.send(message)

        server.serve_forever()
    """

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        ssl: ssl_module.SSLContext | None = None,
        origins: Iterable[str] | None = None,
        subprotocols: Sequence[str] = (),
        compression: PerMessageDeflate | bool = False,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
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
    ) -> None:
        """Args:
        handler: the application callbacks (or use the ``on_*`` decorators).
        host, port: where to listen; port 0 picks a free port (see :attr:`port`).
        ssl: a server-side ``SSLContext`` for wss://.
        origins: the allowed ``Origin`` values (403 otherwise); ``None`` allows all.
        subprotocols: the subprotocols supported, in order of preference.
        compression: True or a :class:`PerMessageDeflate` to offer
            permessage-deflate; False to refuse it.
        max_message_size: the largest message accepted (1009 beyond).
        max_connections: connections beyond this are answered 503.
        write_limit: the bytes queued for one client beyond which it is a
            slow consumer.
        slow_consumer: ``"close"``: close a slow consumer with 1008;
            ``"drop"``: drop its oldest queued published messages.
        ping_interval: seconds between heartbeat pings (``None``: no pings).
        ping_timeout: close (1011) a client silent this long after a ping.
        handshake_timeout: drop a client whose handshake takes longer.
        idle_timeout: close (1001) a client silent this long (``None``: never).
        close_timeout: abort a connection whose close takes longer.
        http_handler: answers plain HTTP requests (return ``None`` for 404).
        reuse_port: set ``SO_REUSEPORT`` so several processes share the port.
        backlog: the listen backlog.
        sock: an already bound, listening socket to use instead.

        Raises:
            ValueError: an argument is out of range.
        """
        if slow_consumer not in ("close", "drop"):
            raise ValueError(f"slow_consumer must be 'close' or 'drop', not {slow_consumer!r}")
        if write_limit <= 0 or max_connections <= 0 or max_message_size <= 0:
            raise ValueError("write_limit, max_connections and max_message_size must be > 0")
        self.handler: Handler = handler if handler is not None else _DecoratedHandler()
        if compression is True:
            compression = PerMessageDeflate()
        self.handshake = ServerHandshake(
            origins=origins,
            subprotocols=subprotocols,
            extensions=[compression] if compression else [],
        )
        self.ssl = ssl
        self.max_message_size = max_message_size
        self.max_connections = max_connections
        self.write_limit = write_limit
        self.slow_consumer = slow_consumer
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.close_timeout = close_timeout
        self.http_handler = http_handler
        self.loop = Loop()
        self.connections: set[ServerConnection] = set()
        #: The OPEN connections, in the order they opened.
        self.clients: dict[ServerConnection, None] = {}
        self._topics: dict[str, set[ServerConnection]] = {}
        self._shutting_down = False
        self._listener = sock if sock is not None else self._listen(host, port, reuse_port, backlog)
        self._listener.setblocking(False)
        self.loop.selector.register(self._listener, 1, self._accept)
        self._tick_handle = self.loop.call_later(self._tick_period(), self._tick)

    # --- decorators --------------------------------------------------------------

    def _decorator(self, name: str, function: Callable[..., None]) -> Callable[..., None]:
        if not isinstance(self.handler, _DecoratedHandler):
            raise TypeError("this server has a Handler instance: override its methods instead")
        self.handler.callbacks[name] = function
        return function

    def on_open(self, function: Callable[[ServerConnection], None]) -> Callable[[ServerConnection], None]:
        """Decorator: call ``function(ws)`` when a client connects."""
        return self._decorator("on_open", function)

    def on_message(self, function: Callable[[ServerConnection, Any], None]) -> Callable[[ServerConnection, Any], None]:
        """Decorator: call ``function(ws, message)`` for each message."""
        return self._decorator("on_message", function)

    def on_close(
        self, function: Callable[[ServerConnection, int, str], None]
    ) -> Callable[[ServerConnection, int, str], None]:
        """Decorator: call ``function(ws, code, reason)`` when a client leaves."""
        return self._decorator("on_close", function)

    def on_error(
        self, function: Callable[[ServerConnection, BaseException], None]
    ) -> Callable[[ServerConnection, BaseException], None]:
        """Decorator: call ``function(ws, error)`` when a callback raises."""
        return self._decorator("on_error", function)

    # --- properties --------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port actually listened on."""
        return int(self._listener.getsockname()[1])

    @property
    def host(self) -> str:
        return str(self._listener.getsockname()[0])

    # --- publishing ----------------------------------------------------------------

    def publish(self, topic: str, data: str | Any) -> int:
        """Send ``data`` to every client subscribed to ``topic``; thread-safe.

        The frame is built once and its buffers shared by every subscriber
        (clients with compression get their own compressed copy).

        Returns:
            The number of clients the message was queued for (0 when called
            from another thread: the loop queues it later).
        """
        if not self.loop.in_loop_thread():
            self.loop.call_soon_threadsafe(self.publish, topic, data)
            return 0
        subscribers = self._topics.get(topic)
        if not subscribers:
            return 0
        return self._fan_out(list(subscribers), data)

    def broadcast(self, data: str | Any) -> int:
        """Send ``data`` to every OPEN client; thread-safe like :meth:`publish`."""
        if not self.loop.in_loop_thread():
            self.loop.call_soon_threadsafe(self.broadcast, data)
            return 0
        return self._fan_out(list(self.clients), data)

    def _fan_out(self, receivers: list[ServerConnection], data: str | Any) -> int:
        payload: Any
        if type(data) is str:
            opcode, payload = _TEXT, data.encode("utf-8")
        else:
            opcode, payload = _BINARY, _byte_buffer(data)
        header = frame_header(opcode, len(payload))
        # The common case in one compiled loop; the rest one by one below.
        others = queue_shared(receivers, [header, payload], len(header) + len(payload), self.write_limit)
        count = len(receivers) - len(others)
        for ws in others:
            protocol = ws.protocol
            if protocol.buffered_amount:
                ws._flush_protocol()  # keep the order of earlier sends
            if not self._admit(ws):
                continue
            if protocol.can_send_prebuilt():
                ws.stream.write([header, payload], droppable=True)
            elif protocol.state is State.OPEN:
                # Compressed or mid-fragment: framed for this client alone.
                if type(data) is str:
                    protocol.send_text(data)
                else:
                    protocol.send_binary(payload)
                output = protocol.data_to_send()
                ws.stream.write(output, droppable=protocol.messages_are_independent)
            else:
                continue
            count += 1
        return count

    def _admit(self, ws: ServerConnection) -> bool:
        """Apply the slow-consumer policy before one more message is queued.

        The backlog is checked *before* queueing, so one message larger than
        ``write_limit`` still goes to a client that keeps up, and a client's
        queue never exceeds ``write_limit`` plus one message.

        Returns:
            Whether ``ws`` is still OPEN and may be sent to.
        """
        stream = ws.stream
        if stream.queued + ws.protocol.buffered_amount <= self.write_limit:
            return ws.protocol.state is _OPEN
        if self.slow_consumer == "drop":
            stream.drop_unsent(droppable_only=True, limit=self.write_limit)
            if stream.queued <= self.write_limit:
                return ws.protocol.state is State.OPEN
        logger.info("closing slow consumer %s (%d bytes queued)", ws, stream.queued)
        # The close frame must not wait behind the backlog: drop what has
        # not started, then close (a partly written frame is finished first).
        stream.drop_unsent()
        if ws.protocol.state is State.OPEN:
            ws.close(CloseCode.POLICY_VIOLATION, "slow consumer")
        ws._close_transport()
        return False

    # --- thread-safe scheduling ------------------------------------------------------

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` in the loop thread; callable from any thread."""
        self.loop.call_soon_threadsafe(callback, *args)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` in the loop after ``delay`` seconds (loop thread only)."""
        return self.loop.call_later(delay, callback, *args)

    # --- running ---------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` (or SIGINT/SIGTERM in the main thread)."""
        restore = self._install_signal_handlers()
        try:
            self.loop.run()
        finally:
            for signum, previous in restore:
                signal.signal(signum, previous)
            self._close_everything()

    def start(self) -> threading.Thread:
        """Serve in a daemon thread; returns it (stop with :meth:`shutdown`)."""
        thread = threading.Thread(target=self.serve_forever, name="wsfast-server", daemon=True)
        thread.start()
        return thread

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop gracefully; callable from any thread or a signal handler.

        Stops accepting, closes every client with 1001 (going away) after what
        is queued for it, waits up to ``timeout`` (default: ``close_timeout``)
        for the closing handshakes, then aborts the rest and stops the loop.
        """
        self.loop.call_soon_threadsafe(self._begin_shutdown, self.close_timeout if timeout is None else timeout)

    def _begin_shutdown(self, timeout: float) -> None:
        if self._shutting_down:
            return
        self._shutting_down = True
        logger.info("shutting down: closing %d connections", len(self.connections))
        self._stop_listening()
        for ws in list(self.connections):
            if ws.protocol.state is State.OPEN:
                ws.close(CloseCode.GOING_AWAY, "server shutting down")
            elif ws.protocol.state is State.CONNECTING:
                ws.abort()
        self._stop_when_idle()
        self.loop.call_later(timeout, self.loop.stop)

    def _stop_when_idle(self) -> None:
        if not self.connections:
            self.loop.stop()

    def _install_signal_handlers(self) -> list[tuple[int, Any]]:
        if threading.current_thread() is not threading.main_thread():
            return []
        restore: list[tuple[int, Any]] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            restore.append((signum, signal.getsignal(signum)))
            signal.signal(signum, lambda *_: self.shutdown())
        return restore

    def _close_everything(self) -> None:
        for ws in list(self.connections):
            ws.abort()
        self._stop_listening()
        self._tick_handle.cancel()
        self.loop.close()

    # --- connections -------------------------------------------------------------

    def _listen(self, host: str, port: int, reuse_port: bool, backlog: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(backlog)
        except OSError:
            sock.close()
            raise
        return sock

    def _stop_listening(self) -> None:
        if self._listener.fileno() >= 0:
            try:
                self.loop.selector.unregister(self._listener)
            except (KeyError, ValueError):
                pass
            self._listener.close()

    def _accept(self, listener: socket.socket, mask: int) -> None:
        for _ in range(64):
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.warning("accept failed: %s", exc)
                return
            if len(self.connections) >= self.max_connections:
                self._refuse(sock)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl is not None:
                sock = self.ssl.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            self.connections.add(ServerConnection(self, sock, address))

    def _refuse(self, sock: socket.socket) -> None:
        """Answer 503 to a connection over ``max_connections``, best effort."""
        try:
            sock.setblocking(False)
            if self.ssl is None:
                sock.send(Response.plain(503, "Service Unavailable: too many connections").serialize())
        except OSError:
            pass
        sock.close()

    def _opened(self, ws: ServerConnection) -> None:
        self.clients[ws] = None

    def _forget(self, ws: ServerConnection) -> None:
        self.connections.discard(ws)
        self.clients.pop(ws, None)
        if self._shutting_down:
            self._stop_when_idle()

    # --- timers ------------------------------------------------------------------

    def _tick_period(self) -> float:
        periods = [1.0, self.handshake_timeout / 4, self.ping_timeout / 4]
        if self.ping_interval:
            periods.append(self.ping_interval / 4)
        if self.idle_timeout:
            periods.append(self.idle_timeout / 4)
        return max(0.01, min(periods))

    def _tick(self) -> None:
        """Enforce handshake, heartbeat and idle timeouts."""
        now = self.loop.now
        for ws in list(self.connections):
            state = ws.protocol.state
            if state is State.CONNECTING:
                if now - ws.connected_at > self.handshake_timeout:
                    ws.abort()
            elif state is State.OPEN:
                silent = now - ws.last_seen
                if ws._ping_sent_at is not None and now - ws._ping_sent_at > self.ping_timeout:
                    ws.close(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                elif self.idle_timeout and silent > self.idle_timeout:
                    ws.close(CloseCode.GOING_AWAY, "idle timeout")
                elif self.ping_interval and ws._ping_sent_at is None and silent > self.ping_interval:
                    ws._ping_sent_at = now
                    ws.ping(b"wsfast")
        self._tick_handle = self.loop.call_later(self._tick_period(), self._tick)
