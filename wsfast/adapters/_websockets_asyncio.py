"""websockets' asyncio ``Connection``: ``send()`` and ``recv()`` without their layers of coroutines.

Profiling websockets' asyncio echo server puts as much of its CPU in
``websockets.asyncio`` as in its sans-IO core: ``send()`` enters the
``send_context()`` async context manager (a generator, ``__aenter__``,
``__aexit__``) and awaits ``drain()`` for every message; ``recv()`` awaits
``Assembler.get()``, which awaits ``SimpleQueue.get()``, then joins the
frames through a generator expression. The replacements do the same steps
inline for the common case and call websockets' own method for every other.

- ``Connection.send``: a ``str`` or ``bytes`` message while the connection is
  OPEN and no fragmented message is being sent. The steps are
  ``send_context()``'s, in its order: the protocol's ``send_text`` or
  ``send_binary``; ``ProtocolError`` and ``ConcurrencyError`` propagate, any
  other exception is logged as an "unexpected internal error" and aborts the
  transport before ``ConnectionClosed`` is raised; then ``send_data()``, and
  ``drain()`` when it would wait (the transport closing, or writing paused),
  an error there aborting the transport as in websockets. ``send_text`` and
  ``send_binary`` leave an OPEN connection OPEN, so the closing deadline
  ``send_context()`` would set never applies here.
- ``Connection.recv``: no ``recv()`` in progress and the next message is one
  final frame, already queued or the next to arrive. It waits on the
  assembler's queue exactly as ``SimpleQueue.get()`` does (marking the
  assembler busy meanwhile, so that a concurrent ``recv()`` raises
  ``ConcurrencyError``), then takes the frame, resumes reading below the low
  water mark and decodes as ``Assembler.get()`` does. A fragmented message,
  the end of the stream, invalid UTF-8 or a closed assembler go to
  websockets' own ``recv()``, with the queue as it was, so their messages,
  exceptions and close codes are websockets'.

- ``Connection.data_received``: while the connection is OPEN. After the
  protocol's ``receive_data``, when it left the connection OPEN and nothing
  to write (no automatic pong or close), ``events_received()``,
  ``send_data()`` and ``close_expected()`` would do nothing but swap empty
  lists and return False, so they are skipped, and each data frame is put
  in the assembler's queue as ``Assembler.put()`` and ``SimpleQueue.put()``
  do (waking ``recv()``, pausing reading above the high water mark). Any
  other event goes to ``process_event()``; when there is something to write
  or the state changed, websockets' own steps run, in its order.

Each path is taken only while the connection's classes use websockets'
own ``send_context``, ``send_data``, ``drain``, ``process_event``,
``Assembler`` and ``SimpleQueue``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from wsfast.adapters._patch import mark

__all__ = ["make_data_received", "make_recv", "make_send"]


def make_send(original: Any) -> Any:
    """A drop-in ``Connection.send`` for unfragmented messages on an open connection, else ``original``."""
    from websockets.asyncio.connection import Connection
    from websockets.exceptions import ConcurrencyError, ProtocolError
    from websockets.protocol import OPEN

    send_context, send_data, drain = Connection.send_context, Connection.send_data, Connection.drain

    async def send(self: Any, message: Any, *, text: bool | None = None) -> None:
        """Send a message (wsfast: one frame without the context manager); see websockets' ``send``."""
        kind = message.__class__
        cls = self.__class__
        if (
            (kind is not bytes and kind is not str)
            or self.send_in_progress is not None
            or self.protocol.state is not OPEN
            or cls.send_context is not send_context
            or cls.send_data is not send_data
            or cls.drain is not drain
        ):
            return await original(self, message, text=text)  # type: ignore[no-any-return]
        protocol = self.protocol
        try:
            if kind is str:
                if text is False:
                    protocol.send_binary(message.encode())
                else:
                    protocol.send_text(message.encode())
            elif text is True:
                protocol.send_text(message)
            else:
                protocol.send_binary(message)
        except (ProtocolError, ConcurrencyError):
            raise
        except Exception as exc:
            self.logger.error("unexpected internal error", exc_info=True)
            await _abort(self, exc)
        try:
            self.send_data()
            if self.paused or self.transport.is_closing():
                await self.drain()
        except Exception as exc:
            if self.debug:
                self.logger.debug("! error while sending data", exc_info=True)
            await _abort(self, exc)

    send.__qualname__ = "Connection.send"
    return mark(send, original)


async def _abort(connection: Any, exc: Exception) -> None:
    """What ``send_context()`` does after an error: abort, wait for the connection to be lost, raise.

    websockets 17.1 and later record ``exc`` as the connection's
    ``connection_exc`` (the cause of every later ``ConnectionClosed``);
    17.0 chains it to this ``ConnectionClosed`` only.
    """
    if hasattr(connection, "set_connection_exc"):
        connection.set_connection_exc(exc)
        connection.transport.abort()
        await asyncio.shield(connection.connection_lost_waiter)
        raise connection.close_exc
    connection.transport.abort()
    await asyncio.shield(connection.connection_lost_waiter)
    raise connection.protocol.close_exc from exc


def make_recv(original: Any) -> Any:
    """A drop-in ``Connection.recv`` for messages of one frame, else ``original``."""
    from websockets.asyncio.messages import Assembler, SimpleQueue
    from websockets.frames import BINARY, TEXT

    async def recv(self: Any, decode: bool | None = None) -> Any:
        """Receive the next message (wsfast: one frame without the assembler's coroutines); see websockets'."""
        messages = self.recv_messages
        frames = messages.frames
        if messages.get_in_progress or messages.__class__ is not Assembler or frames.__class__ is not SimpleQueue:
            return await original(self, decode)
        queue = frames.queue
        if not queue:
            if messages.closed or frames.get_waiter is not None:
                return await original(self, decode)
            # SimpleQueue.get(), with Assembler.get()'s guard against a concurrent recv().
            messages.get_in_progress = True
            waiter = frames.get_waiter = frames.loop.create_future()
            try:
                await waiter
            except EOFError:
                pass  # the assembler is closed: websockets' recv() raises ConnectionClosed
            finally:
                waiter.cancel()
                frames.get_waiter = None
                messages.get_in_progress = False
            if not queue:
                return await original(self, decode)
        frame = queue[0]
        if not frame.fin:
            return await original(self, decode)
        opcode = frame.opcode
        assert opcode is TEXT or opcode is BINARY
        data = b"".join((frame.data,))  # bytes, as Assembler.get() makes it
        message: str | bytes
        if decode or (decode is None and opcode is TEXT):
            try:
                message = data.decode()
            except UnicodeDecodeError:
                return await original(self, decode)
        else:
            message = data
        queue.popleft()
        messages.maybe_resume()
        return message

    recv.__qualname__ = "Connection.recv"
    return mark(recv, original)


def make_data_received(original: Any) -> Any:
    """A drop-in ``Connection.data_received`` that queues data frames directly, else runs ``original``."""
    from websockets.asyncio.connection import Connection
    from websockets.asyncio.messages import Assembler, SimpleQueue
    from websockets.frames import BINARY, CONT, TEXT, Frame
    from websockets.protocol import OPEN, Protocol

    send_data = Connection.send_data
    known: dict[Any, bool] = {}  # process_event function -> whether it is websockets' own
    protocol_methods = (Protocol.events_received, Protocol.data_to_send, Protocol.close_expected)

    def data_received(self: Any, data: bytes) -> None:
        protocol = self.protocol
        cls = self.__class__
        kind = protocol.__class__
        if (
            protocol._state is not OPEN
            or cls.send_data is not send_data
            or not (known.get(cls.process_event) or _own_process_event(cls.process_event, known))
            or (kind.events_received, kind.data_to_send, kind.close_expected) != protocol_methods
        ):
            return original(self, data)  # type: ignore[no-any-return]
        protocol.receive_data(data)
        if protocol.writes or protocol._state is not OPEN:
            _received(self)
            return None
        events, protocol.events = protocol.events, []
        messages = self.recv_messages
        for event in events:
            opcode = event.opcode
            if event.__class__ is not Frame or (opcode is not TEXT and opcode is not BINARY and opcode is not CONT):
                self.process_event(event)
            elif messages.__class__ is not Assembler or messages.frames.__class__ is not SimpleQueue:
                messages.put(event)
            else:
                # Assembler.put(), SimpleQueue.put() and Assembler.maybe_pause(), in their order.
                if messages.closed:
                    raise EOFError("stream of frames ended")
                frames = messages.frames
                frames.queue.append(event)
                waiter = frames.get_waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                if messages.high is not None and len(frames.queue) > messages.high and not messages.paused:
                    messages.paused = True
                    messages.pause()
        return None

    data_received.__qualname__ = "Connection.data_received"
    data_received.__doc__ = "Feed data from the network (wsfast: data frames queued directly); see websockets'."
    return mark(data_received, original)


_PROCESS_EVENTS = (
    ("websockets.asyncio.connection", "Connection"),
    ("websockets.asyncio.server", "ServerConnection"),
    ("websockets.asyncio.client", "ClientConnection"),
)


def _own_process_event(function: Any, known: dict[Any, bool]) -> bool:
    """Whether ``function`` is websockets' ``process_event`` of one of its connection classes; memoized in ``known``.

    Looked up in ``sys.modules``, not imported: the patch is installed while
    ``websockets.asyncio.client`` or ``.server`` may be importing.
    """
    verdict = known[function] = any(
        vars(getattr(sys.modules.get(module), name, object)).get("process_event") is function
        for module, name in _PROCESS_EVENTS
    )
    return verdict


def _received(connection: Any) -> None:
    """What websockets' ``data_received`` does after ``receive_data()``, in its order."""
    protocol = connection.protocol
    events = protocol.events_received()
    try:
        connection.send_data()
    except Exception as exc:
        if connection.debug:
            connection.logger.debug("! error while sending data", exc_info=True)
        # websockets 17.1 and later record it as connection_exc, 17.0 as recv_exc.
        if hasattr(connection, "set_connection_exc"):
            connection.set_connection_exc(exc)
        else:
            connection.set_recv_exc(exc)
    if protocol.close_expected():
        if connection.close_deadline is None:
            if connection.close_timeout is not None:
                connection.close_deadline = connection.loop.time() + connection.close_timeout
    for event in events:
        connection.process_event(event)
