"""The blocking client: :func:`connect` and the :class:`ClientConnection` it returns."""

from __future__ import annotations

import collections
import socket
import ssl as ssl_module
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..events import Closed, Event, HandshakeFailed, Opened
from ..exceptions import ConnectionClosed
from ..extensions import PerMessageDeflate
from ..frames import CloseCode
from ..handshake import Response
from ..keepalive import Keepalive, check_keepalive
from ..protocol import DEFAULT_MAX_MESSAGE_SIZE, Connection, State
from .opening import client_protocol, connection_error, tls_context

__all__ = ["ClientConnection", "connect"]

#: The most one read takes, into the connection's reused receive buffer.
_READ_SIZE = 262144


class ClientConnection:
    """A blocking WebSocket client connection; create it with :func:`connect`.

    Not thread-safe: use it from one thread (or guard it yourself). Its
    heartbeat, when it has one, runs while :meth:`recv` waits.
    """

    def __init__(
        self, sock: socket.socket, protocol: Connection, *, close_timeout: float, keepalive: Keepalive | None = None
    ) -> None:
        self.sock = sock
        self.protocol = protocol
        self.close_timeout = close_timeout
        #: The heartbeat (``connect(ping_interval=...)``), or ``None``.
        self.keepalive = keepalive
        self.response: Response | None = None
        self._messages: collections.deque[str | bytes] = collections.deque()
        self._closed_event: Closed | None = None
        # Reads land here: a new 256 KiB bytes object per read cost an mmap
        # and an munmap each (the protocol keeps nothing of what it is fed).
        self._buffer = bytearray(_READ_SIZE)
        self._view = memoryview(self._buffer)
        # The socket's timeout, set only when it changes: each settimeout()
        # is a system call.
        self._timeout = sock.gettimeout()

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
                tell how; 1011 when the server left a heartbeat ping
                unanswered); messages received before the close come first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._messages:
            if self._closed_event is not None:
                raise ConnectionClosed(self._closed_event.code, self._closed_event.reason)
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            heartbeat = self._heartbeat()
            if self._closed_event is not None:
                continue  # the heartbeat gave up on the server
            if heartbeat is not None and (remaining is None or heartbeat < remaining):
                try:
                    self._receive(heartbeat, "a message")
                except TimeoutError:
                    pass  # time for the heartbeat, not the end of the caller's wait
                continue
            self._receive(remaining, "a message")
        return self._messages.popleft()

    def _heartbeat(self) -> float | None:
        """Ping a quiet server, or give up on a silent one; return the seconds
        until the heartbeat needs to run again (``None``: never)."""
        keepalive = self.keepalive
        if keepalive is None or self.protocol.state is not State.OPEN:
            return None
        now = time.monotonic()
        if keepalive.expired(now):
            # The server is gone: do not wait for a closing handshake.
            self._closed_event = Closed(CloseCode.INTERNAL_ERROR, "keepalive ping timeout", False)
            self.sock.close()
            return None
        if keepalive.ping_due(now):
            self.protocol.send_ping(b"wsfast")
            self._flush()
        when = keepalive.next_check()
        return None if when is None else max(0.0, when - now)

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
        n = self._read(timeout, waiting_for)
        if n and self.keepalive is not None:
            self.keepalive.last_seen = time.monotonic()
        events = self.protocol.receive_data(self._view[:n]) if n else self.protocol.receive_eof()
        for event in events:
            kind = type(event)
            if kind is str or kind is bytes:
                self._messages.append(event)  # type: ignore[arg-type]
            elif kind is Closed:
                self._closed_event = event  # type: ignore[assignment]
        self._flush()
        return events

    def _read(self, timeout: float | None, waiting_for: str) -> int:
        """Read once into the receive buffer; return the byte count, 0 at the end or on an error.

        Waiting as long as it takes (``timeout`` None) is done in waits of
        ``close_timeout``, the timeout that sending uses: the socket then
        stays in one mode, instead of two system calls per message to
        switch it between blocking and timeout mode.
        """
        wait = self.close_timeout if timeout is None and self.close_timeout > 0 else timeout
        self._set_timeout(wait)
        while True:
            try:
                return self.sock.recv_into(self._buffer)
            except (TimeoutError, BlockingIOError):  # a zero timeout makes the socket non-blocking
                if timeout is not None or wait is None:
                    raise TimeoutError(f"timed out waiting for {waiting_for}") from None
            except OSError:
                return 0

    def _set_timeout(self, timeout: float | None) -> None:
        if timeout != self._timeout:
            self.sock.settimeout(timeout)
            self._timeout = timeout

    def _flush(self) -> None:
        output = self.protocol.data_to_send()
        if not output:
            return
        self._set_timeout(self.close_timeout)
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
    ping_interval: float | None = None,
    ping_timeout: float = 10.0,
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
        ping_interval: while :meth:`~ClientConnection.recv` waits, ping a
            server silent this many seconds (``None``: never).
        ping_timeout: close the connection (``recv`` raises
            ``ConnectionClosed`` with 1011) when the server sends nothing
            this many seconds after a ping.

    Raises:
        InvalidHandshake: the server refused (``status``, ``reason``).
        TimeoutError: the connection or the handshake took too long.
        OSError: the TCP (or TLS) connection failed; the message names the URL
            (``ConnectionRefusedError``, ``socket.gaierror``... as raised by
            ``socket``).
    """
    check_keepalive(ping_interval, ping_timeout)
    protocol, handshake = client_protocol(
        url,
        origin=origin,
        subprotocols=subprotocols,
        extra_headers=extra_headers,
        compression=compression,
        max_message_size=max_message_size,
    )
    context = tls_context(ssl, handshake.secure)
    deadline = time.monotonic() + open_timeout
    try:
        sock = socket.create_connection((handshake.host, handshake.port), timeout=open_timeout)
    except OSError as exc:
        raise connection_error(url, exc) from exc
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=handshake.host)
        client = ClientConnection(sock, protocol, close_timeout=close_timeout)
        client._handshake(deadline)
        if ping_interval is not None:
            client.keepalive = Keepalive(ping_interval, ping_timeout, time.monotonic())
    except BaseException:
        sock.close()
        raise
    return client
