"""A WebSocket protocol for uvicorn: ``uvicorn app:app --ws wsfast.asgi:UvicornProtocol``.

:class:`UvicornProtocol` implements the interface uvicorn's own
``websockets_sansio_impl`` implements (constructor, ``asyncio.Protocol``
callbacks, ``shutdown``) and speaks ASGI's WebSocket messages to the app,
with the denial-response extension. The frames go through wsfast's sans-IO
:class:`wsfast.Connection` and its compiled kernels.

uvicorn's options are honoured: ``ws_max_size`` (1009 beyond), ``ws_max_queue``
(received messages held for the app before reading pauses),
``ws_ping_interval`` and ``ws_ping_timeout`` (keepalive pings; 1011 on timeout)
and ``ws_per_message_deflate``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import unquote

from uvicorn.config import Config
from uvicorn.protocols.utils import ClientDisconnected, get_local_addr, get_remote_addr, is_ssl
from uvicorn.server import ServerState

from .events import Closed, CloseReceived, Event, Pong
from .exceptions import ConnectionClosed, InvalidHandshake
from .extensions import PerMessageDeflate
from .frames import OP_BINARY, OP_TEXT, CloseCode, frame_header
from .handshake import Accepted, RequestParser, ServerHandshake
from .http11 import Headers, Request, Response, split_list
from .protocol import Connection, Role

__all__ = ["UvicornProtocol"]

_TRACE = 5  # uvicorn.logging.TRACE_LOG_LEVEL


def _latin1_pairs(items: Any) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in items]


class UvicornProtocol(asyncio.Protocol):
    """One WebSocket connection of a uvicorn server, for one ASGI app instance.

    uvicorn's HTTP protocol hands the connection over with
    ``connection_made(transport)`` and ``data_received(request_bytes)``; the
    upgrade is answered when the app sends ``websocket.accept`` (or denied
    with ``websocket.close``, 403, or a ``websocket.http.response.*`` pair).
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.logger = logging.getLogger("uvicorn.error")
        self.root_path = config.root_path
        self.app_state = app_state
        # uvicorn types this set with its own protocol classes only.
        self.connections: set[Any] = server_state.connections
        self.tasks = server_state.tasks
        self.default_headers = server_state.default_headers

        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server: tuple[str, int | None] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme: Literal["ws", "wss"] = "ws"
        self.scope: dict[str, Any] = {}

        # Handshake: the request parser until the request is in, then the
        # negotiated outcome until the app accepts; bytes after the request
        # wait in ``pending`` (reading pauses beyond ws_max_size of them).
        self.parser: RequestParser | None = RequestParser()
        self.accepted: Accepted | None = None
        self.pending = bytearray()
        # uvicorn's own settings for permessage-deflate.
        deflate = [PerMessageDeflate(server_max_window_bits=12, client_max_window_bits=12, mem_level=5)]
        extensions = deflate if config.ws_per_message_deflate else []
        self.handshake = ServerHandshake(extensions=extensions, server_header=None)
        #: The sans-IO connection, once the app accepted.
        self.conn: Connection | None = None

        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.max_queue = max(1, config.ws_max_queue)
        self.read_paused = False
        self.writable = asyncio.Event()
        self.writable.set()
        self.handshake_complete = False
        self.close_sent = False
        self.disconnected = False
        self.close_timer: asyncio.TimerHandle | None = None
        self.close_timeout = 10.0
        self.initial_response: tuple[int, list[tuple[str, str]], bytes] | None = None

        self.ping_interval = config.ws_ping_interval
        self.ping_timeout = config.ws_ping_timeout
        self.ping_timer: asyncio.TimerHandle | None = None
        self.pong_timer: asyncio.TimerHandle | None = None
        self.pending_ping_payload: bytes | None = None
        self.ping_sent_at = 0.0
        self.last_ping_rtt = 0.0

    # --- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connections.add(self)
        self.transport = transport  # type: ignore[assignment]
        self.server = get_local_addr(self.transport)
        self.client = get_remote_addr(self.transport)
        self.scheme = "wss" if is_ssl(self.transport) else "ws"

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_keepalive()
        code = CloseCode.NO_STATUS_RCVD if self.handshake_complete and self.initial_response is None else 1006
        self.queue.put_nowait({"type": "websocket.disconnect", "code": int(code)})
        self.connections.discard(self)
        self.handshake_complete = True
        self.disconnected = True
        self.writable.set()  # a send() waiting for the drain must see the loss
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None
        if exc is None:
            self.transport.close()

    def eof_received(self) -> None:
        pass

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        if self.conn is not None:
            self._handle(self.conn.receive_data(data))
        elif self.parser is not None:
            try:
                request = self.parser.feed(data)
            except InvalidHandshake as exc:
                self._refuse(exc)
                return
            if request is not None:
                self.pending += self.parser.trailing
                self.parser = None
                self.handle_connect(request)
        else:
            self.pending += data
            if len(self.pending) > self.config.ws_max_size and not self.read_paused:
                self.read_paused = True
                self.transport.pause_reading()

    def shutdown(self) -> None:
        """uvicorn is stopping: 1012 (service restart) when open, 500 before the handshake."""
        self.stop_keepalive()
        if self.close_sent:
            if self.close_timer is not None:
                self.close_timer.cancel()
                self.close_timer = None
        elif self.conn is not None:
            self.queue.put_nowait({"type": "websocket.disconnect", "code": int(CloseCode.SERVICE_RESTART)})
            self.conn.close(CloseCode.SERVICE_RESTART)
            self._write()
        else:
            self.send_500_response()
        self.transport.close()

    # --- the handshake ---------------------------------------------------------------

    def handle_connect(self, request: Request) -> None:
        """The upgrade request is in: check it, then hand ``websocket.connect`` to the app."""
        try:
            self.accepted = self.handshake.accept(request)
        except InvalidHandshake as exc:
            self._refuse(exc)
            return
        raw_path, _, query_string = request.target.partition("?")
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": self.root_path,
            "path": self.root_path + unquote(raw_path),
            "raw_path": self.root_path.encode("ascii") + raw_path.encode("ascii"),
            "query_string": query_string.encode("ascii"),
            "headers": [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in request.headers],
            "subprotocols": split_list(request.headers.get_all("Sec-WebSocket-Protocol")),
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def _refuse(self, exc: InvalidHandshake) -> None:
        """A request that is not a valid upgrade: answer its error, the app never sees it."""
        self.handshake_complete = True
        self.close_sent = True
        self.transport.write(ServerHandshake.reject(exc).serialize())
        self.transport.close()

    def _accept(self, message: dict[str, Any]) -> None:
        assert self.accepted is not None
        headers = Headers(self.accepted.response.headers)
        for name, value in _latin1_pairs([*self.default_headers, *message.get("headers", [])]):
            headers.add(name, value)
        subprotocol = message.get("subprotocol")
        if subprotocol:
            headers.add("Sec-WebSocket-Protocol", subprotocol)
        if self.transport.is_closing():
            return
        self.handshake_complete = True
        self.transport.write(Response(101, "Switching Protocols", headers).serialize())
        self.conn = Connection(
            Role.SERVER,
            subprotocol=subprotocol or None,
            extensions=self.accepted.extensions,
            max_message_size=self.config.ws_max_size,
        )
        self.logger.info('%s - "WebSocket %s" [accepted]', self._client_label(), self._path_label())
        self.start_keepalive()
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        if self.pending:
            pending, self.pending = bytes(self.pending), bytearray()
            self._handle(self.conn.receive_data(pending))

    def _deny(self) -> None:
        """``websocket.close`` before ``websocket.accept``: 403."""
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1006})
        self.logger.info('%s - "WebSocket %s" 403', self._client_label(), self._path_label())
        self.close_sent = True
        self.handshake_complete = True
        self.transport.write(Response(403, "Forbidden", Headers([("Connection", "close")])).serialize())
        self.transport.close()

    def _start_response(self, message: dict[str, Any]) -> None:
        status = message["status"]
        if not 100 <= status < 600:
            raise RuntimeError(f"Invalid HTTP status code '{status}' in response.")
        self.logger.info('%s - "WebSocket %s" %d', self._client_label(), self._path_label(), status)
        self.initial_response = (status, _latin1_pairs(message.get("headers", [])), b"")
        self.handshake_complete = True

    def _response_body(self, message: dict[str, Any]) -> None:
        assert self.initial_response is not None
        status, fields, body = self.initial_response
        self.initial_response = (status, fields, body + message.get("body", b""))
        if not message.get("more_body", False):
            self._send_denial()

    def _send_denial(self) -> None:
        """Write the denial response (with what the app sent of its body) and close."""
        assert self.initial_response is not None
        status, fields, body = self.initial_response
        headers = Headers(fields)
        if "Connection" not in headers:
            headers.add("Connection", "close")
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1006})
        self.close_sent = True
        self.transport.write(Response(status, phrase, headers, body).serialize())
        self.transport.close()

    # --- the app -------------------------------------------------------------------

    async def run_asgi(self) -> None:
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if self.initial_response is not None and not self.close_sent:
            self._send_denial()  # the app ended (or failed) before the last body message
        if self.close_timer is None:
            self.transport.close()

    def send_500_response(self) -> None:
        if self.initial_response or self.handshake_complete:
            return
        headers = Headers([("Connection", "close")])
        self.transport.write(Response(500, "Internal Server Error", headers, b"Internal Server Error").serialize())

    async def send(self, message: dict[str, Any]) -> None:
        """ASGI ``send``: waits while the transport's write buffer is over its high-water mark."""
        if not self.writable.is_set():
            await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        kind = message["type"]
        if kind == "websocket.send" and self.conn is not None and not self.close_sent:
            self._send_data(message)  # the hot path first
        elif not self.handshake_complete and self.initial_response is None:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._deny()
            elif kind == "websocket.http.response.start":
                self._start_response(message)
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.accept', 'websocket.close' "
                    f"or 'websocket.http.response.start' but got '{kind}'."
                )
        elif self.initial_response is not None and not self.close_sent:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"Expected ASGI message 'websocket.http.response.body' but got '{kind}'.")
            self._response_body(message)
        elif not self.close_sent and self.conn is not None:
            if kind != "websocket.close":
                raise RuntimeError(f"Expected ASGI message 'websocket.send' or 'websocket.close', but got '{kind}'.")
            self._close(message.get("code", 1000), message.get("reason") or "")
        else:
            raise RuntimeError(f"Unexpected ASGI message '{kind}', after sending 'websocket.close'.")

    def _send_data(self, message: dict[str, Any]) -> None:
        conn = self.conn
        assert conn is not None
        data = message.get("bytes")
        if data is not None:
            opcode = OP_BINARY
        else:
            data = message.get("text")
            if data is None:
                raise RuntimeError("a 'websocket.send' message needs 'bytes' or 'text'")
            opcode = OP_TEXT
        if conn.can_send_prebuilt() and not conn.buffered_amount:
            # Framed here, header and payload in one write: the protocol's
            # send path would queue two buffers for the same bytes.
            payload = data.encode("utf-8") if opcode == OP_TEXT else data
            self.transport.write(frame_header(opcode, len(payload)) + payload)
            return
        try:
            if opcode == OP_TEXT:
                conn.send_text(data)
            else:
                conn.send_binary(data)
        except ConnectionClosed:
            raise ClientDisconnected() from None
        self._write()

    def _close(self, code: int, reason: str) -> None:
        assert self.conn is not None
        if self.transport.is_closing():
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.close(code, reason)
        self._write()
        self.close_sent = True
        if self.read_paused:  # the peer's close frame must get through
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)

    async def receive(self) -> dict[str, Any]:
        """ASGI ``receive``; reading resumes once the app drained half the queue."""
        queue = self.queue
        message = queue.get_nowait() if queue.qsize() else await queue.get()
        if self.read_paused and self.queue.qsize() <= self.max_queue // 2:
            self.read_paused = False
            self.transport.resume_reading()
        return message

    # --- the protocol's events -------------------------------------------------------

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            kind = type(event)
            if kind is str:
                self._deliver({"type": "websocket.receive", "text": event})
            elif kind is bytes:
                self._deliver({"type": "websocket.receive", "bytes": event})
            elif kind is Pong:
                self.handle_pong(event.payload)  # type: ignore[union-attr]
            elif kind is CloseReceived:
                self._close_received(event)  # type: ignore[arg-type]
            elif kind is Closed and event.error is not None:  # type: ignore[union-attr]
                self._failed(event)  # type: ignore[arg-type]
        self._write()

    def _deliver(self, message: dict[str, Any]) -> None:
        if self.close_sent:
            # The app is past `websocket.close`: drop the message, keep
            # reading until the peer's close frame arrives.
            return
        self.queue.put_nowait(message)
        if not self.read_paused and self.queue.qsize() >= self.max_queue:
            self.read_paused = True
            self.transport.pause_reading()

    def _close_received(self, event: CloseReceived) -> None:
        if self.close_sent:
            # The peer answered our close: the closing handshake is complete.
            if self.close_timer is not None:
                self.close_timer.cancel()
                self.close_timer = None
                self._write()
                self.transport.close()
            return
        if not self.transport.is_closing():
            self.queue.put_nowait({"type": "websocket.disconnect", "code": event.code, "reason": event.reason})
            self._write()  # the echoed close
            self.transport.close()

    def _failed(self, event: Closed) -> None:
        """The peer broke the protocol (or a limit): the close frame is queued; tell the app, close."""
        self.queue.put_nowait({"type": "websocket.disconnect", "code": event.code, "reason": event.reason})
        self.close_sent = True
        self._write()
        self.transport.close()

    def _write(self) -> None:
        if self.conn is not None and self.conn.buffered_amount:
            self.transport.write(b"".join(self.conn.data_to_send()))

    # --- keepalive -------------------------------------------------------------------

    def start_keepalive(self) -> None:
        if self.ping_interval is not None and self.ping_interval > 0:
            self.schedule_ping()

    def stop_keepalive(self) -> None:
        for timer in (self.ping_timer, self.pong_timer):
            if timer is not None:
                timer.cancel()
        self.ping_timer = self.pong_timer = None
        self.pending_ping_payload = None

    def schedule_ping(self) -> None:
        assert self.ping_interval is not None
        self.ping_timer = self.loop.call_later(max(0.0, self.ping_interval - self.last_ping_rtt), self.send_ping)

    def send_ping(self) -> None:
        self.ping_timer = None
        if self.close_sent or self.conn is None or self.transport.is_closing():
            return
        # A fresh payload identifies this ping: stale or unsolicited pongs are ignored.
        self.pending_ping_payload = os.urandom(4)
        self.ping_sent_at = self.loop.time()
        self.conn.send_ping(self.pending_ping_payload)
        self._write()
        if self.ping_timeout is not None:
            self.pong_timer = self.loop.call_later(self.ping_timeout, self.keepalive_timeout)
        else:
            self.schedule_ping()

    def handle_pong(self, payload: bytes) -> None:
        if self.pending_ping_payload is None or payload != self.pending_ping_payload:
            return
        self.last_ping_rtt = self.loop.time() - self.ping_sent_at
        self.pending_ping_payload = None
        if self.pong_timer is not None:
            # With a timeout the next ping is scheduled here (without one, by send_ping).
            self.pong_timer.cancel()
            self.pong_timer = None
            self.schedule_ping()

    def keepalive_timeout(self) -> None:
        self.pong_timer = None
        self.pending_ping_payload = None
        if self.close_sent or self.conn is None or self.transport.is_closing():
            return
        self.logger.log(_TRACE, "%s - WebSocket keepalive ping timeout", self._client_label())
        self.queue.put_nowait({"type": "websocket.disconnect", "code": int(CloseCode.INTERNAL_ERROR)})
        self.conn.close(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        self._write()
        self.close_sent = True
        self.transport.close()

    # --- logging ---------------------------------------------------------------------

    def _client_label(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else ""

    def _path_label(self) -> str:
        query = self.scope.get("query_string", b"").decode("ascii")
        path: str = self.scope.get("path", "")
        return path + (f"?{query}" if query else "")
