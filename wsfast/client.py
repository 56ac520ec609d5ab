"""Clients: a blocking one (:func:`connect`) and the browser's API (:class:`WebSocket`).

Both drive the sans-IO :class:`~wsfast.Connection` with the Cython kernels
underneath. :func:`connect` uses a plain blocking socket in the caller's
thread; :class:`WebSocket` runs on a selector :class:`~wsfast.loop.Loop`
(its own thread, or one the caller runs) and adds what the browser lacks:
automatic reconnection with backoff and a heartbeat.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import functools
import logging
import random
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .events import Closed, Event, HandshakeFailed, Opened
from .exceptions import ConnectionClosed
from .extensions import PerMessageDeflate
from .frames import CloseCode
from .handshake import ClientHandshake, Response
from .loop import Loop, Stream, TimerHandle
from .protocol import DEFAULT_MAX_MESSAGE_SIZE, Connection, Role, State

__all__ = [
    "ClientConnection",
    "CloseEvent",
    "ErrorEvent",
    "MessageEvent",
    "Reconnect",
    "ReconnectEvent",
    "WebSocket",
    "connect",
]

logger = logging.getLogger("wsfast.client")


def _client_protocol(
    url: str,
    *,
    origin: str | None,
    subprotocols: Sequence[str],
    extra_headers: Iterable[tuple[str, str]],
    compression: PerMessageDeflate | bool,
    max_message_size: int,
) -> tuple[Connection, ClientHandshake]:
    if compression is True:
        compression = PerMessageDeflate()
    handshake = ClientHandshake(
        url,
        origin=origin,
        subprotocols=subprotocols,
        extensions=[compression] if compression else [],
        extra_headers=extra_headers,
    )
    return Connection(Role.CLIENT, handshake=handshake, max_message_size=max_message_size), handshake


def _tls_context(ssl: ssl_module.SSLContext | None, secure: bool) -> ssl_module.SSLContext | None:
    if not secure:
        if ssl is not None:
            raise ValueError("an ssl context was given for a ws:// URL: use wss://")
        return None
    return ssl if ssl is not None else ssl_module.create_default_context()


# --- the blocking client ----------------------------------------------------------


class ClientConnection:
    """A blocking WebSocket client connection; create it with :func:`connect`.

    Not thread-safe: use it from one thread (or guard it yourself).
    """

    def __init__(self, sock: socket.socket, protocol: Connection, *, close_timeout: float) -> None:
        self.sock = sock
        self.protocol = protocol
        self.close_timeout = close_timeout
        self.response: Response | None = None
        self._messages: collections.deque[str | bytes] = collections.deque()
        self._closed_event: Closed | None = None

    # --- opening -------------------------------------------------------------

    def _handshake(self, deadline: float) -> None:
        self._flush()
        while self.protocol.state is State.CONNECTING:
            for event in self._receive(max(0.0, deadline - time.monotonic()), "the opening handshake"):
                if isinstance(event, HandshakeFailed):
                    raise event.error
                if isinstance(event, Opened):
                    self.response = event.response

    # --- the API ---------------------------------------------------------------

    @property
    def subprotocol(self) -> str | None:
        """The negotiated subprotocol, or ``None``."""
        return self.protocol.subprotocol

    @property
    def state(self) -> State:
        return self.protocol.state

    def send(self, message: str | Any) -> None:
        """Send a text (``str``) or binary (any bytes-like) message.

        Raises:
            ConnectionClosed: the connection is closing or closed.
        """
        if type(message) is str:
            self.protocol.send_text(message)
        else:
            self.protocol.send_binary(message)
        self._flush()

    def recv(self, timeout: float | None = None) -> str | bytes:
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Args:
            timeout: seconds to wait; ``None`` waits as long as it takes.

        Raises:
            TimeoutError: no message within ``timeout``.
            ConnectionClosed: the connection closed (``code`` and ``reason``
                tell how); messages received before the close come first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._messages:
            if self._closed_event is not None:
                raise ConnectionClosed(self._closed_event.code, self._closed_event.reason)
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._receive(remaining, "a message")
        return self._messages.popleft()

    def __iter__(self) -> Iterator[str | bytes]:
        """Iterate over messages until the connection closes normally."""
        while True:
            try:
                yield self.recv()
            except ConnectionClosed as exc:
                if exc.code in (CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.NO_STATUS_RCVD):
                    return
                raise

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping; the pong is handled by the protocol."""
        self.protocol.send_ping(payload)
        self._flush()

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Perform the closing handshake (bounded by ``close_timeout``) and close the socket."""
        deadline = time.monotonic() + self.close_timeout
        try:
            if self.protocol.state is State.OPEN:
                self.protocol.close(code, reason)
                self._flush()
            # Wait for the server's close frame, then for it to close TCP first.
            while self._closed_event is None or not self.protocol.should_close_transport:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._receive(remaining, "the closing handshake")
        except (TimeoutError, OSError):
            pass
        finally:
            self.sock.close()

    def __enter__(self) -> ClientConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- I/O -------------------------------------------------------------------

    def _receive(self, timeout: float | None, waiting_for: str) -> list[Event]:
        """Read once (waiting at most ``timeout``) and process the events."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(262144)
        except (TimeoutError, BlockingIOError):  # a zero timeout makes the socket non-blocking
            raise TimeoutError(f"timed out waiting for {waiting_for}") from None
        except OSError:
            data = b""
        events = self.protocol.receive_data(data) if data else self.protocol.receive_eof()
        for event in events:
            kind = type(event)
            if kind is str or kind is bytes:
                self._messages.append(event)  # type: ignore[arg-type]
            elif kind is Closed:
                self._closed_event = event  # type: ignore[assignment]
        self._flush()
        return events

    def _flush(self) -> None:
        output = self.protocol.data_to_send()
        if not output:
            return
        self.sock.settimeout(self.close_timeout)
        try:
            if isinstance(self.sock, ssl_module.SSLSocket):
                self.sock.sendall(b"".join(output))
            else:
                for buffer in output:
                    self.sock.sendall(buffer)
        except OSError as exc:
            if self.protocol.state is State.OPEN:
                raise ConnectionClosed(CloseCode.ABNORMAL_CLOSURE, str(exc)) from exc


def connect(
    url: str,
    *,
    subprotocols: Sequence[str] = (),
    origin: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
    compression: PerMessageDeflate | bool = False,
    ssl: ssl_module.SSLContext | None = None,
    open_timeout: float = 10.0,
    close_timeout: float = 5.0,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> ClientConnection:
    """Open a WebSocket connection and return a blocking client.

    ::

        with wsfast.connect("ws://127.0.0.1:8765/") as ws:
            ws.send("hello")
            print(ws.recv(timeout=5))

    Args:
        url: ``ws://`` or ``wss://`` URL.
        subprotocols: subprotocols to offer, in order of preference.
        origin: the ``Origin`` header to send.
        extra_headers: more request headers (authentication, cookies, ...).
        compression: True or a :class:`PerMessageDeflate` to offer compression.
        ssl: the client ``SSLContext`` for ``wss://`` (default: the system's
            trusted CAs, with hostname checking).
        open_timeout: bound on the TCP connection plus the handshake.
        close_timeout: bound on the closing handshake (and on each write).
        max_message_size: the largest message accepted (1009 beyond).

    Raises:
        InvalidHandshake: the server refused (``status``, ``reason``).
        TimeoutError: the connection or the handshake took too long.
        OSError: the TCP (or TLS) connection failed.
    """
    protocol, handshake = _client_protocol(
        url,
        origin=origin,
        subprotocols=subprotocols,
        extra_headers=extra_headers,
        compression=compression,
        max_message_size=max_message_size,
    )
    context = _tls_context(ssl, handshake.secure)
    deadline = time.monotonic() + open_timeout
    sock = socket.create_connection((handshake.host, handshake.port), timeout=open_timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=handshake.host)
        client = ClientConnection(sock, protocol, close_timeout=close_timeout)
        client._handshake(deadline)
    except BaseException:
        sock.close()
        raise
    return client


# --- the browser's API ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MessageEvent:
    """What ``onmessage`` receives: ``data`` is ``str`` for text, else per ``binary_type``."""

    data: Any


@dataclasses.dataclass(frozen=True)
class CloseEvent:
    """What ``onclose`` receives, as the browser's ``CloseEvent``."""

    code: int
    reason: str
    was_clean: bool


@dataclasses.dataclass(frozen=True)
class ErrorEvent:
    """What ``onerror`` receives: the exception behind the failure."""

    error: BaseException


@dataclasses.dataclass(frozen=True)
class ReconnectEvent:
    """What ``onreconnect`` receives before each reconnection attempt."""

    attempt: int
    delay: float


@dataclasses.dataclass(frozen=True)
class Reconnect:
    """Reconnection policy: exponential backoff with jitter, bounded attempts.

    The n-th attempt (from 1) waits ``min(maximum, initial * factor**(n-1))``
    seconds, scaled by a random factor in ``[1 - jitter, 1]`` so that many
    clients do not reconnect in lockstep. A connection that stayed open for
    ``reset_after`` seconds starts again from the first attempt.
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    max_attempts: int | None = None
    reset_after: float = 10.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("need 0 < initial <= maximum and factor >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1 or None")

    def delay(self, attempt: int) -> float:
        """The wait before attempt number ``attempt`` (1-based)."""
        base = min(self.maximum, self.initial * self.factor ** (attempt - 1))
        return base * (1 - self.jitter * random.random())


_loop_lock = threading.Lock()
_shared_loop: Loop | None = None


def _background_loop() -> Loop:
    """The loop thread shared by every :class:`WebSocket` not given a loop."""
    global _shared_loop
    with _loop_lock:
        if _shared_loop is None:
            loop = Loop()
            threading.Thread(target=loop.run, name="wsfast-client-loop", daemon=True).start()
            _shared_loop = loop
        return _shared_loop


class WebSocket:
    """The browser's ``WebSocket`` in Python, on a selector loop.

    ::

        ws = wsfast.WebSocket(
            "ws://127.0.0.1:8765/",
            reconnect=wsfast.Reconnect(),
            onopen=lambda event: ws.send("hello"),
            onmessage=lambda event: print(event.data),
            onclose=lambda event: print("closed", event.code, event.reason),
        )

    Pass the callbacks to the constructor: the connection starts at once in
    the loop's thread, so a callback assigned afterwards (``ws.onopen = ...``,
    as in JavaScript) can miss an event that comes first. Assigning later is
    fine for what happens later.

    Callbacks run in the loop's thread: a background thread shared by all
    WebSockets, unless a :class:`~wsfast.loop.Loop` you run is passed as
    ``loop``. ``send`` and ``close`` may be called from any thread.

    Attributes:
        onopen, onmessage, onclose, onerror: callbacks taking one event
            (``None``, :class:`MessageEvent`, :class:`CloseEvent`,
            :class:`ErrorEvent`); ``onreconnect`` takes a :class:`ReconnectEvent`.
        binary_type: ``"bytes"`` (default), ``"bytearray"`` or ``"memoryview"``:
            the type of binary ``MessageEvent.data``.
    """

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3

    def __init__(
        self,
        url: str,
        protocols: Sequence[str] = (),
        *,
        loop: Loop | None = None,
        reconnect: Reconnect | None = None,
        ping_interval: float | None = None,
        ping_timeout: float = 10.0,
        origin: str | None = None,
        extra_headers: Iterable[tuple[str, str]] = (),
        compression: PerMessageDeflate | bool = False,
        ssl: ssl_module.SSLContext | None = None,
        open_timeout: float = 10.0,
        close_timeout: float = 5.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        onopen: Callable[[None], None] | None = None,
        onmessage: Callable[[MessageEvent], None] | None = None,
        onclose: Callable[[CloseEvent], None] | None = None,
        onerror: Callable[[ErrorEvent], None] | None = None,
        onreconnect: Callable[[ReconnectEvent], None] | None = None,
    ) -> None:
        self.url = url
        self.onopen = onopen
        self.onmessage = onmessage
        self.onclose = onclose
        self.onerror = onerror
        self.onreconnect = onreconnect
        self.binary_type = "bytes"
        self.reconnect = reconnect
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self._options = dict(
            origin=origin,
            subprotocols=tuple(protocols),
            extra_headers=tuple(extra_headers),
            compression=compression,
            max_message_size=max_message_size,
        )
        self._ssl = ssl
        self._loop = loop if loop is not None else _background_loop()
        self._protocol: Connection | None = None
        self._stream: Stream | None = None
        self._ready_state = self.CONNECTING
        self._user_closed = False
        self._attempt = 0
        self._opened_at = 0.0
        self._open_timer: TimerHandle | None = None
        self._heartbeat_timer: TimerHandle | None = None
        self._retry_timer: TimerHandle | None = None
        self._error_reported = False
        self._last_seen = 0.0
        self._ping_sent_at: float | None = None
        self._pending_sends = 0
        # Validate the URL now, in the caller's thread.
        _client_protocol(url, **self._options)  # type: ignore[arg-type]
        self._loop.call_soon_threadsafe(self._start)

    # --- the browser's API ---------------------------------------------------------

    @property
    def ready_state(self) -> int:
        """0 CONNECTING, 1 OPEN, 2 CLOSING, 3 CLOSED (CONNECTING while reconnecting)."""
        return self._ready_state

    @property
    def buffered_amount(self) -> int:
        """Bytes passed to :meth:`send` and not yet handed to the network."""
        stream = self._stream
        return self._pending_sends + (stream.queued if stream is not None else 0)

    @property
    def protocol(self) -> str:
        """The negotiated subprotocol, ``""`` when none (as in the browser)."""
        return (self._protocol.subprotocol if self._protocol else None) or ""

    def send(self, data: str | Any) -> None:
        """Queue a message: ``str`` as text, any bytes-like object as binary.

        Raises:
            ConnectionClosed: the WebSocket is not OPEN (the browser throws
                only while CONNECTING; sends after close are dropped there).
        """
        if self._ready_state != self.OPEN:
            raise ConnectionClosed(CloseCode.ABNORMAL_CLOSURE, "the WebSocket is not open")
        payload: Any
        if isinstance(data, str):
            payload, size = data, len(data.encode())
        else:
            # From another thread, copy: the caller may reuse its buffer
            # before the loop gets to send it.
            payload = data if self._loop.in_loop_thread() else bytes(memoryview(data))
            size = memoryview(payload).nbytes
        self._pending_sends += size
        self._call(self._send, payload, size)

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the connection (and stop reconnecting).

        Raises:
            ValueError: the code may not be sent or the reason is too long.
        """
        if code != CloseCode.NORMAL_CLOSURE and not 3000 <= code <= 4999:
            raise ValueError("the browser's close() takes 1000 or 3000-4999")
        if len(reason.encode()) > 123:
            raise ValueError("close reason over 123 bytes")
        self._user_closed = True
        self._call(self._close, code, reason)

    # --- loop side -------------------------------------------------------------------

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        if self._loop.in_loop_thread():
            callback(*args)
        else:
            self._loop.call_soon_threadsafe(callback, *args)

    def _start(self) -> None:
        if self._user_closed:
            return
        self._ready_state = self.CONNECTING
        self._error_reported = False
        protocol, handshake = _client_protocol(self.url, **self._options)  # type: ignore[arg-type]
        self._protocol = protocol
        try:
            context = _tls_context(self._ssl, handshake.secure)
            address = socket.getaddrinfo(handshake.host, handshake.port, type=socket.SOCK_STREAM)[0]
            sock = socket.socket(address[0], socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            error = sock.connect_ex(address[4])
            if error not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                sock.close()
                raise OSError(error, f"connect to {handshake.host}:{handshake.port} failed")
        except (OSError, ValueError) as exc:
            self._failed(exc)
            return
        self._opened_at = 0.0
        self._open_timer = self._loop.call_later(self.open_timeout, self._open_timed_out, protocol)

        def connected(fileobj: Any, mask: int) -> None:
            self._loop.selector.unregister(sock)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                sock.close()
                self._failed(OSError(error, f"connect to {handshake.host}:{handshake.port} failed"))
                return
            tls_sock = sock
            if context is not None:
                tls_sock = context.wrap_socket(sock, server_hostname=handshake.host, do_handshake_on_connect=False)
            self._stream = Stream(
                self._loop,
                tls_sock,
                on_data=functools.partial(self._on_data, protocol),
                on_close=functools.partial(self._on_stream_closed, protocol),
                on_ready=self._flush,
            )
            if context is None:
                self._flush()

        self._loop.selector.register(sock, 2, connected)

    def _open_timed_out(self, protocol: Connection) -> None:
        if self._protocol is protocol and protocol.state is State.CONNECTING:
            self._abort(TimeoutError("timed out during the opening handshake"))

    def _send(self, data: str | Any, size: int) -> None:
        protocol = self._protocol
        if protocol is not None and protocol.state is State.OPEN:
            if type(data) is str:
                protocol.send_text(data)
            else:
                protocol.send_binary(data)
            self._flush()
        # else: closed meanwhile, and dropped, as the browser does.
        self._pending_sends -= size  # only now: the bytes are in the stream's queue

    def _cancel_timers(self) -> None:
        for timer in (self._open_timer, self._heartbeat_timer, self._retry_timer):
            if timer is not None:
                timer.cancel()
        self._open_timer = self._heartbeat_timer = self._retry_timer = None

    def _close(self, code: int, reason: str) -> None:
        self._cancel_timers()
        protocol = self._protocol
        if protocol is None or self._ready_state == self.CLOSED:
            self._ready_state = self.CLOSED
            return
        if protocol.state is State.CONNECTING:
            self._abort(ConnectionClosed(CloseCode.ABNORMAL_CLOSURE, "closed before the connection opened"))
            return
        self._ready_state = self.CLOSING
        protocol.close(code, reason)
        self._flush()
        if self._stream is not None:
            # Bounded: the stream closes even if the server never answers.
            self._loop.call_later(self.close_timeout, self._stream.close)

    def _error(self, error: BaseException) -> None:
        """Report the failure of the current attempt, once."""
        if not self._error_reported:
            self._error_reported = True
            self._emit(self.onerror, ErrorEvent(error))

    def _abort(self, error: BaseException) -> None:
        self._error(error)
        if self._stream is not None and not self._stream.closed:
            self._stream.close()
        else:
            self._finish(CloseEvent(CloseCode.ABNORMAL_CLOSURE.value, "", False))

    def _flush(self) -> None:
        protocol, stream = self._protocol, self._stream
        if protocol is None or stream is None:
            return
        output = protocol.data_to_send()
        if output:
            stream.write(output)
        if protocol.should_close_transport:
            stream.close_after_flush()

    def _on_data(self, protocol: Connection, data: memoryview) -> None:
        if protocol is not self._protocol:
            return  # a finished connection, lingering until the server closes it
        self._last_seen = self._loop.now
        self._ping_sent_at = None
        self._dispatch(protocol.receive_data(data))

    def _on_stream_closed(self, protocol: Connection) -> None:
        if protocol is self._protocol:
            self._dispatch(protocol.receive_eof())

    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, str):
                self._emit(self.onmessage, MessageEvent(event))
            elif isinstance(event, bytes):
                data: Any = event
                if self.binary_type == "bytearray":
                    data = bytearray(data)
                elif self.binary_type == "memoryview":
                    data = memoryview(data)
                self._emit(self.onmessage, MessageEvent(data))
            elif isinstance(event, Opened):
                self._opened()
            elif isinstance(event, HandshakeFailed):
                # As in the browser: an error, then a close with 1006.
                self._error(event.error)
                self._finish(CloseEvent(CloseCode.ABNORMAL_CLOSURE.value, "", False))
            elif isinstance(event, Closed):
                self._closed(event)
        self._flush()

    def _opened(self) -> None:
        self._ready_state = self.OPEN
        self._opened_at = self._last_seen = self._loop.now
        self._cancel_timers()
        if self.ping_interval:
            self._heartbeat_timer = self._loop.call_later(self.ping_interval / 4, self._heartbeat)
        self._emit(self.onopen, None)

    def _closed(self, event: Closed) -> None:
        self._flush()  # our answer to the server's close, before forgetting the stream
        protocol, stream = self._protocol, self._stream
        if stream is not None and not stream.closed and protocol is not None and not protocol.should_close_transport:
            # RFC 6455 §7.1.1: the server closes TCP first; wait for it, bounded.
            self._loop.call_later(self.close_timeout, stream.close)
        self._finish(CloseEvent(event.code, event.reason, event.clean))

    def _heartbeat(self) -> None:
        protocol = self._protocol
        if protocol is None or protocol.state is not State.OPEN or not self.ping_interval:
            return
        now = self._loop.now
        if self._ping_sent_at is not None and now - self._ping_sent_at > self.ping_timeout:
            self._abort(TimeoutError("no answer to the heartbeat ping"))
            return
        if self._ping_sent_at is None and now - self._last_seen >= self.ping_interval:
            self._ping_sent_at = now
            protocol.send_ping(b"wsfast")
            self._flush()
        self._heartbeat_timer = self._loop.call_later(self.ping_interval / 4, self._heartbeat)

    def _failed(self, error: BaseException) -> None:
        self._error(error)
        self._finish(CloseEvent(CloseCode.ABNORMAL_CLOSURE.value, "", False))

    def _finish(self, event: CloseEvent) -> None:
        if self._ready_state == self.CLOSED and self._protocol is None:
            return
        policy = self.reconnect
        if self._opened_at and self._loop.now - self._opened_at >= (policy.reset_after if policy else 0):
            self._attempt = 0
        self._cancel_timers()
        self._protocol = None
        self._stream = None
        self._ready_state = self.CLOSED
        self._emit(self.onclose, event)
        if policy is None or self._user_closed:
            return
        if event.was_clean and event.code == CloseCode.NORMAL_CLOSURE:
            return  # the server said goodbye on purpose
        self._attempt += 1
        if policy.max_attempts is not None and self._attempt > policy.max_attempts:
            return
        delay = policy.delay(self._attempt)
        self._ready_state = self.CONNECTING
        self._emit(self.onreconnect, ReconnectEvent(self._attempt, delay))
        self._retry_timer = self._loop.call_later(delay, self._start)

    def _emit(self, callback: Callable[[Any], None] | None, event: Any) -> None:
        if callback is None:
            return
        try:
            callback(event)
        except Exception:  # noqa: BLE001 - a callback must not break the loop
            logger.exception("error in a WebSocket callback")
