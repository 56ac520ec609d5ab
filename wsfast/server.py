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
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .backplane import Backplane, HistoryOptions, Position, Recovery, Relay, Stamp, from_url
from .events import Closed, Event, HandshakeFailed, HttpRequest, Opened, Pong
from .exceptions import ConnectionClosed
from .extensions import PerMessageDeflate
from .frames import OP_BINARY, OP_TEXT, CloseCode, frame_header
from .handshake import Request, Response, ServerHandshake
from .keepalive import Keepalive, check_keepalive
from .kernels import PURE
from .loop import Loop, Stream, TimerHandle
from .protocol import DEFAULT_MAX_MESSAGE_SIZE, Connection, Role, State, _byte_buffer

if TYPE_CHECKING or PURE:
    from ._connection_py import ConnectionCore, queue_shared
else:
    try:
        from ._connection_c import ConnectionCore, queue_shared
    except ImportError:
        from ._connection_py import ConnectionCore, queue_shared

__all__ = ["Handler", "Server", "ServerConnection"]

logger = logging.getLogger("wsfast.server")

#: Seconds during which further refused handshakes from one client address
#: are not logged again.
REFUSAL_LOG_INTERVAL = 60.0
# The client addresses whose refusals are remembered at most.
_REFUSALS_REMEMBERED = 1024

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


class ServerConnection(ConnectionCore):
    """One client of a :class:`Server`, as the handler sees it (``ws``).

    Its per-message methods (``send``, and the receive path to
    :meth:`Handler.on_message`) come from ``ConnectionCore``: compiled when
    the extension is built, else pure Python.

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
        self.connected_at = server.loop.now
        #: The heartbeat: when data last came, when the last ping went.
        self.keepalive = Keepalive(server.ping_interval, server.ping_timeout, server.loop.now)
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
                once the missed messages are queued, or recovery proved
                impossible (the client is subscribed either way).
        """
        self.topics.add(topic)
        self.server._relay.subscribe(self, topic, since, on_recovery)

    def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic``."""
        self.topics.discard(topic)
        subscribers = self.server._topics.get(topic)
        if subscribers is not None:
            subscribers.discard(self)
            if not subscribers:
                del self.server._topics[topic]
        self.server._relay.unsubscribed(self, topic)

    # --- driven by the loop ----------------------------------------------------

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
                    self.server._log_refusal(self, event.error)  # type: ignore[union-attr, arg-type]
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


def _check_address(host: object, port: object) -> None:
    """Refuse a ``host`` or ``port`` that ``bind`` would refuse with an obscure error."""
    if not isinstance(host, str):
        raise ValueError(f"host must be a str (an address or a name), not {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int from 0 to 65535 (0 picks a free port), not {port!r}")


def default_http_handler(request: Request) -> Response | None:
    """Answer ``/healthz``; anything else is a 404."""
    if request.path == "/healthz":
        return Response.plain(200, "ok")
    return None


def handshake_policy(
    *,
    origins: Iterable[str] | None,
    subprotocols: Sequence[str],
    compression: PerMessageDeflate | bool,
    slow_consumer: str,
    limits: tuple[int, int, int],
    require_origin: bool = False,
) -> ServerHandshake:
    """Check a server's options and build its handshake; shared by every server.

    Args:
        limits: ``(write_limit, max_connections, max_message_size)``.
        require_origin: refuse (403) requests without an ``Origin`` header.

    Raises:
        ValueError: an option is out of range (the message names it).
    """
    if slow_consumer not in ("close", "drop"):
        raise ValueError(f"slow_consumer must be 'close' or 'drop', not {slow_consumer!r}")
    if min(limits) <= 0:
        raise ValueError(f"write_limit, max_connections and max_message_size must be > 0, got {limits}")
    if compression is True:
        compression = PerMessageDeflate()
    return ServerHandshake(
        origins=origins,
        require_origin=require_origin,
        subprotocols=subprotocols,
        extensions=[compression] if compression else [],
    )


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
        require_origin: bool = False,
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
        backplane: str | Backplane | None = None,
    ) -> None:
        """Create the server, bound and listening (``serve_forever()`` or ``start()`` runs it).

        Args:
            handler: the application callbacks (or use the ``on_*`` decorators).
            host, port: where to listen; port 0 picks a free port (see :attr:`port`).
            ssl: a server-side ``SSLContext`` for wss://.
            origins: the allowed ``Origin`` values (403 otherwise); ``None`` allows all.
                A request without ``Origin`` (a client that is not a browser) is
                accepted unless ``require_origin`` is set.
            require_origin: refuse (403) requests without an ``Origin`` header.
            subprotocols: the subprotocols supported, in order of preference.
            compression: True or a :class:`PerMessageDeflate` to offer
                permessage-deflate; False to refuse it.
            max_message_size: the largest message accepted (1009 beyond).
            max_connections: connections beyond this are answered 503.
            write_limit: the bytes queued for one client beyond which it is a
                slow consumer (fixed for the server's life: ``write_limit``
                is read-only).
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
            backplane: carry topics to every node on it: a URL
                (``redis://host:port/db``, see :class:`~wsfast.backplane.RedisBackplane`)
                or a :class:`~wsfast.backplane.Backplane`; ``None``: this process only.

        Raises:
            ValueError: an argument is out of range (the message names it).
            OSError: ``host:port`` cannot be listened on (the message names it).
        """
        if sock is None:
            _check_address(host, port)
        check_keepalive(ping_interval, ping_timeout)
        self.handshake = handshake_policy(
            origins=origins,
            require_origin=require_origin,
            subprotocols=subprotocols,
            compression=compression,
            slow_consumer=slow_consumer,
            limits=(write_limit, max_connections, max_message_size),
        )
        self.handler: Handler = handler if handler is not None else _DecoratedHandler()
        self.ssl = ssl
        self.max_message_size = max_message_size
        self.max_connections = max_connections
        self._write_limit = write_limit
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
        # When a refused handshake of each client address was last logged.
        self._refusals: dict[str, float] = {}
        self._listener = sock if sock is not None else self._listen(host, port, reuse_port, backlog)
        self._listener.setblocking(False)
        self.loop.selector.register(self._listener, 1, self._accept)
        self._tick_handle = self.loop.call_later(self._tick_period(), self._tick)
        if isinstance(backplane, str):
            backplane = from_url(backplane)
        self._relay = Relay(self.loop, self._topics, self._fan_out, backplane)

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
    def write_limit(self) -> int:
        """The bytes queued for one client beyond which it is a slow consumer."""
        return self._write_limit

    @property
    def port(self) -> int:
        """The port actually listened on."""
        return int(self._listener.getsockname()[1])

    @property
    def host(self) -> str:
        return str(self._listener.getsockname()[0])

    @property
    def url(self) -> str:
        """The ``ws://`` (or ``wss://``) URL listened on, like ``ws://127.0.0.1:8765/``."""
        host = self.host
        if ":" in host:
            host = f"[{host}]"
        return f"{'wss' if self.ssl is not None else 'ws'}://{host}:{self.port}/"

    # --- publishing ----------------------------------------------------------------

    @property
    def backplane(self) -> Backplane | None:
        """The backplane given to the constructor (``None``: this process only)."""
        return self._relay.backplane if self._relay.distributed else None

    def enable_history(self, topic: str, size: int, *, ttl: float | None = None, stamp: Stamp | None = None) -> None:
        """Keep the last ``size`` messages of ``topic``, for ``ws.subscribe(topic, since=...)``.

        Each message then gets a :class:`~wsfast.backplane.Position`, assigned
        by the backplane (in memory without one). Call before publishing, on
        every node, in the loop thread or before serving.

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
        self._relay.histories[topic] = (HistoryOptions(size, ttl), stamp)

    def publish(self, topic: str, data: str | Any) -> int:
        """Send ``data`` to every client subscribed to ``topic``; thread-safe.

        The frame is built once and its buffers shared by every subscriber
        (clients with compression get their own compressed copy).

        With a backplane, every node attached to it sends ``data`` to its own
        subscribers, framing it once.

        Returns:
            The number of local clients the message was queued for; 0 when
            called from another thread, and for a topic with history (it is
            delivered once its history keeps it).
        """
        if not self.loop.in_loop_thread():
            self.loop.call_soon_threadsafe(self.publish, topic, data)
            return 0
        if self._relay.wants(topic):
            return self._relay.publish(topic, data)
        subscribers = self._topics.get(topic)
        if not subscribers:
            return 0
        return self._fan_out(subscribers, data)

    def broadcast(self, data: str | Any) -> int:
        """Send ``data`` to every OPEN client; thread-safe like :meth:`publish`."""
        if not self.loop.in_loop_thread():
            self.loop.call_soon_threadsafe(self.broadcast, data)
            return 0
        return self._fan_out(self.clients, data)

    def _fan_out(self, receivers: Collection[ServerConnection], data: str | Any) -> int:
        """Queue ``data`` for each of ``receivers``; how many it was queued for.

        ``receivers`` may be the server's own dict of clients or a topic's
        set: ``queue_shared`` walks it without a copy (nothing it does can
        change it), and returns the clients it leaves in a list, handled
        below, where a close may change the originals.
        """
        payload: Any
        if type(data) is str:
            opcode, payload = OP_TEXT, data.encode("utf-8")
        else:
            opcode, payload = OP_BINARY, _byte_buffer(data)
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
        """Serve until :meth:`shutdown` (or SIGINT/SIGTERM in the main thread).

        Logs (``wsfast.server``, INFO) a line when it starts listening and
        one when it stops. Run in the main thread of a program that has
        configured no logging (a script), it calls
        ``logging.basicConfig(level=logging.INFO)`` first, so that these
        lines and the warnings are seen; a program that serves from a thread
        of its own (:meth:`start`) keeps its logging as it set it.
        """
        if threading.current_thread() is threading.main_thread() and not logging.getLogger().hasHandlers():
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
        restore = self._install_signal_handlers()
        logger.info("listening on %s", self.url)
        try:
            self.loop.run()
        finally:
            for signum, previous in restore:
                signal.signal(signum, previous)
            self._close_everything()
            logger.info("stopped")

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
        self._relay.backplane.close()
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
        except OSError as exc:
            sock.close()
            if exc.errno is None:
                raise
            raise type(exc)(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
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

    def _log_refusal(self, ws: ServerConnection, error: Exception) -> None:
        """Log a refused handshake as a warning, once per client address per
        :data:`REFUSAL_LOG_INTERVAL` (the others at DEBUG)."""
        address = ws.remote_address
        host = str(address[0]) if isinstance(address, tuple) else str(address)
        now = self.loop.now
        last = self._refusals.get(host)
        if last is not None and now - last < REFUSAL_LOG_INTERVAL:
            logger.debug("refused a handshake from %s: %s", host, error)
            return
        if len(self._refusals) >= _REFUSALS_REMEMBERED:
            self._refusals = {h: t for h, t in self._refusals.items() if now - t < REFUSAL_LOG_INTERVAL}
            if len(self._refusals) >= _REFUSALS_REMEMBERED:
                self._refusals.clear()
        self._refusals[host] = now
        logger.warning(
            "refused a handshake from %s: %s (further refusals from %s are not logged for %g s)",
            host,
            error,
            host,
            REFUSAL_LOG_INTERVAL,
        )

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
                keepalive = ws.keepalive
                if keepalive.expired(now):
                    ws.close(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                elif self.idle_timeout and now - keepalive.last_seen > self.idle_timeout:
                    ws.close(CloseCode.GOING_AWAY, "idle timeout")
                elif keepalive.ping_due(now):
                    ws.ping(b"wsfast")
        self._tick_handle = self.loop.call_later(self._tick_period(), self._tick)
