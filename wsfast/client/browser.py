"""The browser's ``WebSocket`` in Python, on a selector loop, with reconnection and a heartbeat."""

from __future__ import annotations

import collections
import dataclasses
import errno
import functools
import logging
import os
import selectors
import socket
import ssl as ssl_module
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..events import Closed, Event, HandshakeFailed, Opened
from ..exceptions import ConnectionClosed
from ..extensions import PerMessageDeflate
from ..frames import CloseCode
from ..handshake import ClientHandshake
from ..keepalive import Keepalive, check_keepalive
from ..loop import Loop, Stream, TimerHandle
from ..protocol import DEFAULT_MAX_MESSAGE_SIZE, Connection, State
from .opening import client_protocol, connection_error, is_ip_literal, resolve, tls_context
from .reconnect import Reconnect, ReconnectEvent

__all__ = ["CloseEvent", "ErrorEvent", "MessageEvent", "WebSocket"]

logger = logging.getLogger("wsfast.client")


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


@dataclasses.dataclass
class _Opening:
    """One attempt to connect: what to open, the addresses left to try, how it went."""

    protocol: Connection
    handshake: ClientHandshake
    context: ssl_module.SSLContext | None
    addresses: collections.deque[tuple[int, Any]] = dataclasses.field(default_factory=collections.deque)
    #: The socket connecting now, if any.
    sock: socket.socket | None = None
    #: Why the last address failed.
    error: OSError | None = None


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
        ws.run_forever()  # or: with wsfast.WebSocket(...) as ws: ... ws.wait_closed(timeout)

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
        check_keepalive(ping_interval, ping_timeout)
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
        self._opening: _Opening | None = None
        self._stream: Stream | None = None
        self._ready_state = self.CONNECTING
        self._user_closed = False
        self._attempt = 0
        self._opened_at = 0.0
        self._open_timer: TimerHandle | None = None
        self._heartbeat_timer: TimerHandle | None = None
        self._retry_timer: TimerHandle | None = None
        self._error_reported = False
        self._keepalive: Keepalive | None = None
        self._pending_sends = 0
        # Set once closed for good: by close(), or with no reconnection to follow.
        self._done = threading.Event()
        # Validate the URL now, in the caller's thread.
        client_protocol(url, **self._options)  # type: ignore[arg-type]
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

    # --- for scripts ------------------------------------------------------------------

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the WebSocket is closed for good: by :meth:`close`, or by
        the server or the network with no reconnection to follow.

        Args:
            timeout: seconds to wait at most; ``None`` waits as long as it takes.

        Returns:
            Whether it is closed for good (``False``: the timeout came first).

        Raises:
            RuntimeError: called from the loop's own thread (a callback),
                which would wait for itself.
        """
        if self._loop.in_loop_thread() and not self._done.is_set():
            raise RuntimeError("wait_closed() in the WebSocket's loop thread would wait forever")
        return self._done.wait(timeout)

    def run_forever(self) -> None:
        """Block until the WebSocket is closed for good, as a script's last line.

        The callbacks run meanwhile (in the loop's thread). On Ctrl-C it
        closes the connection (bounded by ``close_timeout``), then lets the
        ``KeyboardInterrupt`` through.
        """
        try:
            self.wait_closed()
        except KeyboardInterrupt:
            self.close()
            self.wait_closed(self.close_timeout)
            raise

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close with 1000 and wait for the close (bounded by ``close_timeout``)."""
        self.close()
        self.wait_closed(self.close_timeout)

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
        protocol, handshake = client_protocol(self.url, **self._options)  # type: ignore[arg-type]
        self._protocol = protocol
        try:
            context = tls_context(self._ssl, handshake.secure)
        except ValueError as exc:
            self._failed(exc)
            return
        self._opened_at = 0.0
        self._open_timer = self._loop.call_later(self.open_timeout, self._open_timed_out, protocol)
        opening = self._opening = _Opening(protocol, handshake, context)
        host, port, loop = handshake.host, handshake.port, self._loop

        def addresses() -> list[tuple[int, Any]] | OSError:
            try:
                return resolve(host, port)
            except OSError as exc:
                return exc

        if is_ip_literal(host):
            self._resolved(opening, addresses())
        else:
            # A resolver can take seconds: every WebSocket of the loop would wait.
            thread = threading.Thread(
                target=lambda: loop.call_soon_threadsafe(self._resolved, opening, addresses()),
                name="wsfast-resolver",
                daemon=True,
            )
            thread.start()

    def _resolved(self, opening: _Opening, result: list[tuple[int, Any]] | OSError) -> None:
        if opening is not self._opening:
            return  # closed or timed out meanwhile
        if isinstance(result, OSError):
            self._failed(connection_error(self.url, result))
            return
        opening.addresses.extend(result)
        self._connect_next(opening)

    def _connect_next(self, opening: _Opening) -> None:
        """Connect to the next address of ``opening``; fail once none is left."""
        while opening.addresses:
            family, address = opening.addresses.popleft()
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                error = sock.connect_ex(address)
            except OSError as exc:
                sock.close()
                opening.error = exc
                continue
            if error in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                opening.sock = sock
                self._loop.selector.register(sock, selectors.EVENT_WRITE, functools.partial(self._connected, opening))
                return
            sock.close()
            opening.error = OSError(error, os.strerror(error))
        last = opening.error or OSError(f"{opening.handshake.host} has no address")
        self._failed(connection_error(self.url, last))

    def _connected(self, opening: _Opening, sock: socket.socket, mask: int) -> None:
        self._loop.selector.unregister(sock)
        opening.sock = None
        if opening is not self._opening:
            sock.close()
            return
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            sock.close()
            opening.error = OSError(error, os.strerror(error))
            self._connect_next(opening)
            return
        self._opening = None
        protocol, handshake, context = opening.protocol, opening.handshake, opening.context
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

    def _abandon_opening(self) -> None:
        """Forget the attempt to connect in progress, if any, and its socket."""
        opening, self._opening = self._opening, None
        if opening is not None and opening.sock is not None:
            self._loop.selector.unregister(opening.sock)
            opening.sock.close()
            opening.sock = None

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
            self._ready_state = self.CLOSED  # between two reconnection attempts
            self._done.set()
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
        if self._keepalive is not None:
            self._keepalive.last_seen = self._loop.now
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
        self._opened_at = now = self._loop.now
        self._cancel_timers()
        if self.ping_interval:
            self._keepalive = Keepalive(self.ping_interval, self.ping_timeout, now)
            self._schedule_heartbeat()
        self._emit(self.onopen, None)

    def _closed(self, event: Closed) -> None:
        self._flush()  # our answer to the server's close, before forgetting the stream
        protocol, stream = self._protocol, self._stream
        if stream is not None and not stream.closed and protocol is not None and not protocol.should_close_transport:
            # RFC 6455 §7.1.1: the server closes TCP first; wait for it, bounded.
            self._loop.call_later(self.close_timeout, stream.close)
        self._finish(CloseEvent(event.code, event.reason, event.clean))

    def _schedule_heartbeat(self) -> None:
        keepalive = self._keepalive
        when = keepalive.next_check() if keepalive is not None else None
        if when is not None:
            self._heartbeat_timer = self._loop.call_later(max(0.0, when - self._loop.now), self._heartbeat)

    def _heartbeat(self) -> None:
        protocol, keepalive = self._protocol, self._keepalive
        if protocol is None or protocol.state is not State.OPEN or keepalive is None:
            return
        now = self._loop.now
        if keepalive.expired(now):
            self._abort(TimeoutError("no answer to the heartbeat ping"))
            return
        if keepalive.ping_due(now):
            protocol.send_ping(b"wsfast")
            self._flush()
        self._schedule_heartbeat()

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
        self._abandon_opening()
        self._protocol = None
        self._stream = None
        self._ready_state = self.CLOSED
        self._emit(self.onclose, event)
        if policy is None or self._user_closed:
            self._done.set()
            return
        if event.was_clean and event.code == CloseCode.NORMAL_CLOSURE:
            self._done.set()
            return  # the server said goodbye on purpose
        self._attempt += 1
        if policy.max_attempts is not None and self._attempt > policy.max_attempts:
            self._done.set()
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
