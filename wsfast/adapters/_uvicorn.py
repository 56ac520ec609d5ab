"""uvicorn's WebSocket protocol classes: a message in and out without their per-message dispatch.

uvicorn serves WebSockets through its own ``asyncio.Protocol`` classes on
websockets' sans-IO ``ServerProtocol`` (``--ws websockets-sansio``) and on
wsproto (``--ws wsproto``). Profiling them echoing small messages puts a
fifth of the server's CPU in these classes: for every message received,
``data_received`` -> ``handle_events`` -> ``handle_text`` or ``handle_bytes``
-> ``send_receive_event_to_app``; for every message sent, ``send()`` awaits
``writable.wait()`` and dispatches on the ASGI message, and on wsproto builds
a ``Message`` event for ``WSConnection.send`` -> ``Connection.send`` ->
``FrameProtocol.send_data``. The replacements do the same steps inline for
the common case and run uvicorn's own method for every other.

uvicorn's flow control is kept exactly: the same ``queue``, the same
``put_nowait`` of the same ASGI events, ``transport.pause_reading()`` after
each message queued while reading is not paused, the same
``transport.write`` calls with the same bytes. What is skipped is Python
overhead only:

- ``WebSocketsSansIOProtocol.data_received``: once the handshake request
  was handled, a final text or binary frame (text that decodes as UTF-8) is
  queued as ``handle_text`` / ``handle_bytes`` and
  ``send_receive_event_to_app`` queue it; any other event goes to the handler
  ``handle_events`` would call for it, in order.
- ``WebSocketsSansIOProtocol.send``: a ``websocket.send`` while the
  connection is open, no close was sent, and writing is not paused
  (``writable.wait()`` would return at once): ``send_binary`` or
  ``send_text``, then ``data_to_send()`` written, as uvicorn does.
- ``WSProtocol.send``: the same ``websocket.send``, while wsproto's
  connection is OPEN, no fragmented message is being sent and no extension
  is negotiated: the frame is built by ``wsfast.kernels.frame_header`` (what
  wsfast's ``FrameProtocol._serialize_frame`` builds) and written unless the
  transport is closing, as uvicorn does.

Each path is taken only while the classes involved use uvicorn's, websockets'
and wsproto's own methods (wsfast's replacements of them included).
"""

from __future__ import annotations

import asyncio
from typing import Any

from wsfast import kernels
from wsfast.adapters._patch import mark, original_of

__all__ = ["make_sansio_data_received", "make_sansio_send", "make_wsproto_send"]

# Looked up at call time, so that a test can wrap a kernel in a spy.
_frame_header = kernels.frame_header


def _own(current: Any, original: Any) -> bool:
    """Whether ``current`` is ``original`` or wsfast's replacement of it."""
    return current is original or original_of(current) is original


def make_sansio_data_received(original: Any) -> Any:
    """A drop-in ``WebSocketsSansIOProtocol.data_received`` that queues data frames directly."""
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol as Protocol
    from websockets.frames import Frame, Opcode

    own = tuple(vars(Protocol)[name] for name in ("handle_events", "handle_text", "handle_bytes"))
    own_send_receive = vars(Protocol)["send_receive_event_to_app"]
    text, binary = Opcode.TEXT, Opcode.BINARY

    def data_received(self: Any, data: bytes) -> None:
        cls = self.__class__
        if (
            not self.handshake_initiated
            or (cls.handle_events, cls.handle_text, cls.handle_bytes) != own
            or cls.send_receive_event_to_app is not own_send_receive
        ):
            return original(self, data)  # type: ignore[no-any-return]
        conn = self.conn
        conn.receive_data(data)
        if conn.parser_exc is not None:  # pragma: no cover - as uvicorn's
            self.handle_parser_exception()
            return None
        # handle_events(), with send_receive_event_to_app() inline for whole data frames.
        event: Any
        for event in conn.events_received():
            opcode = event.opcode if event.__class__ is Frame and event.fin else None
            if opcode is not text and opcode is not binary:
                _handle_event(self, event)
                continue
            if opcode is text:
                try:
                    message = {"type": "websocket.receive", "text": event.data.decode()}
                except UnicodeDecodeError:
                    self.handle_text(event)  # uvicorn logs it and closes with 1007
                    continue
                self.curr_msg_data_type = "text"
            else:
                message = {"type": "websocket.receive", "bytes": event.data}
                self.curr_msg_data_type = "bytes"
            self.frames = []
            if self.close_sent:
                continue
            self.queue.put_nowait(message)
            if not self.read_paused:
                self.read_paused = True
                self.transport.pause_reading()
        return None

    data_received.__qualname__ = "WebSocketsSansIOProtocol.data_received"
    data_received.__doc__ = "Receive data (wsfast: data frames queued directly); see uvicorn's."
    return mark(data_received, original)


def _handle_event(protocol: Any, event: Any) -> None:
    """The handler uvicorn's ``handle_events`` calls for ``event``."""
    from websockets.frames import Frame, Opcode
    from websockets.http11 import Request

    if isinstance(event, Request):
        protocol.handle_connect(event)
    if isinstance(event, Frame):
        if event.opcode == Opcode.CONT:
            protocol.handle_cont(event)
        elif event.opcode == Opcode.TEXT:
            protocol.handle_text(event)
        elif event.opcode == Opcode.BINARY:
            protocol.handle_bytes(event)
        elif event.opcode == Opcode.PING:
            protocol.handle_ping()
        elif event.opcode == Opcode.PONG:
            protocol.handle_pong(event)
        elif event.opcode == Opcode.CLOSE:
            protocol.handle_close(event)


def _sendable_now(protocol: Any, message: Any) -> bool:
    """Whether ``message`` is a ``websocket.send`` that uvicorn's ``send`` would write at once.

    The checks both ``send`` replacements start with: an open, accepted
    connection that sent no close, and writing not paused, so that
    ``writable.wait()`` would return at once.
    """
    writable = protocol.writable
    return (
        message.__class__ is dict
        and message.get("type") == "websocket.send"
        and writable.__class__ is asyncio.Event
        and writable.is_set()
        and not protocol.disconnected
        and protocol.handshake_complete
        and not protocol.close_sent
    )


def make_sansio_send(original: Any) -> Any:
    """A drop-in ``WebSocketsSansIOProtocol.send`` for ``websocket.send`` on an open connection."""
    from uvicorn.protocols.utils import ClientDisconnected
    from websockets.exceptions import InvalidState

    async def send(self: Any, message: Any) -> None:
        if not _sendable_now(self, message) or self.initial_response is not None:
            return await original(self, message)  # type: ignore[no-any-return]
        bytes_data = message.get("bytes")
        text_data = message.get("text")
        conn = self.conn
        try:
            if bytes_data is not None:
                conn.send_binary(bytes_data)
            elif text_data is not None:
                conn.send_text(text_data.encode())
            output = conn.data_to_send()
            self.transport.write(b"".join(output))
        except InvalidState:
            raise ClientDisconnected()  # noqa: B904 - chained as uvicorn chains it
        return None

    send.__qualname__ = "WebSocketsSansIOProtocol.send"
    send.__doc__ = "Send an ASGI message (wsfast: websocket.send without the dispatch); see uvicorn's."
    return mark(send, original)


def make_wsproto_send(original: Any) -> Any:
    """A drop-in ``WSProtocol.send`` for ``websocket.send`` on an open connection, frames on the kernel."""
    from wsproto import WSConnection
    from wsproto.connection import Connection, ConnectionState
    from wsproto.frame_protocol import FrameProtocol

    open_state = ConnectionState.OPEN
    own = (vars(WSConnection)["send"], vars(Connection)["send"], vars(FrameProtocol)["send_data"])
    serialize = original_of(vars(FrameProtocol)["_serialize_frame"]) or vars(FrameProtocol)["_serialize_frame"]

    async def send(self: Any, message: Any) -> None:
        conn = self.conn
        connection = getattr(conn, "connection", None)
        proto = getattr(connection, "_proto", None)
        if (
            not _sendable_now(self, message)
            or self.response_started
            or connection.__class__ is not Connection
            or proto.__class__ is not FrameProtocol
            or connection._state is not open_state
            or proto._outbound_opcode is not None
            or proto.extensions
            or proto.client
            or (conn.__class__.send, Connection.send, FrameProtocol.send_data) != own
            or not _own(FrameProtocol._serialize_frame, serialize)
        ):
            return await original(self, message)  # type: ignore[no-any-return]
        bytes_data = message.get("bytes")
        data = message.get("text") if bytes_data is None else bytes_data
        payload: bytes | bytearray
        if data.__class__ is str:
            try:
                payload = data.encode("utf-8")
            except UnicodeEncodeError:
                return await original(self, message)  # type: ignore[no-any-return]
            opcode = 1
        elif data.__class__ is bytes or data.__class__ is bytearray:
            payload, opcode = data, 2
        else:
            return await original(self, message)  # type: ignore[no-any-return]
        # What Connection.send returns: b"" + the bytearray _serialize_frame builds, bytes.
        output = _frame_header(opcode, len(payload)) + payload
        if not self.transport.is_closing():
            self.transport.write(output)
        return None

    send.__qualname__ = "WSProtocol.send"
    send.__doc__ = "Send an ASGI message (wsfast: websocket.send straight to a frame); see uvicorn's."
    return mark(send, original)
