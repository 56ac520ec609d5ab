"""The per-message path of a server connection, in pure Python.

:class:`ConnectionCore` holds what :class:`~wsfast.server.ServerConnection`
runs for every message: a read handed to the handler, whole messages at a
time (``_on_data``), and :meth:`~ConnectionCore.send`; :func:`queue_shared`
is a fan-out's loop over connections.
``_connection_c.pyx`` is the compiled twin, the same code over C fields,
calling the stream core's C methods; ``wsfast.server`` picks one
(``WSFAST_PURE=1``: this one) and derives ``ServerConnection`` from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .exceptions import ConnectionClosed
from .frames import OP_BINARY, OP_TEXT, frame_header
from .kernels import PURE
from .protocol import State, _byte_buffer

if TYPE_CHECKING or PURE:
    from ._receive_py import deliver_whole_messages
else:
    try:
        from ._receive_c import deliver_whole_messages
    except ImportError:
        from ._receive_py import deliver_whole_messages

if TYPE_CHECKING:
    from .events import Event
    from .keepalive import Keepalive
    from .loop import Stream
    from .protocol import Connection
    from .server import Server

__all__ = ["ConnectionCore", "queue_shared"]

_OPEN = State.OPEN


def queue_shared(receivers: Iterable[Any], frame: list[Any], size: int, limit: int) -> list[Any]:
    """Queue one prebuilt frame for every receiver that can take it as it is.

    A fan-out's loop over connections (each has a ``stream`` and a
    ``protocol``), in the order ``receivers`` gives them (a list, or a
    dict's keys, or a set, which nothing here changes while the loop
    runs). The frame (``size`` bytes, droppable) is queued, the same
    list for all, on each stream with at most ``limit`` bytes queued whose
    protocol has no output of its own pending and takes prebuilt frames.

    Returns:
        The other receivers, in order, for the caller to handle one by one.
    """
    rest = []
    for receiver in receivers:
        stream = receiver.stream
        protocol = receiver.protocol
        if protocol.buffered_amount or stream.queued > limit or not protocol.can_send_prebuilt():
            rest.append(receiver)
        else:
            stream.write(frame, size=size, droppable=True)
    return rest


class ConnectionCore:
    """The sending and receiving half of a server connection.

    The subclass sets ``server`` (its ``Server``: ``handler``,
    ``write_limit``, ``loop``, ``_admit(ws)``), ``protocol``, ``stream`` and
    ``keepalive``, and provides ``_dispatch(events)``, ``_flush_protocol()``
    and ``_handler_failed(exc)``, which this class calls off the fast path.
    """

    server: Server
    protocol: Connection
    stream: Stream
    keepalive: Keepalive

    if TYPE_CHECKING:  # provided by the subclass

        def _dispatch(self, events: list[Event]) -> None: ...
        def _flush_protocol(self) -> None: ...
        def _handler_failed(self, exc: Exception) -> None: ...

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
            self.server._admit(self)  # type: ignore[arg-type]  # self is a ServerConnection
        if protocol.can_send_prebuilt():
            # The common case, framed here without the sans-IO send path;
            # what the protocol queued before (a pong) goes out first.
            if protocol.buffered_amount:
                stream.write(protocol.data_to_send())
            if type(message) is str:
                payload: Any = message.encode("utf-8")
                opcode = OP_TEXT
            else:
                payload = _byte_buffer(message)
                opcode = OP_BINARY
            header = frame_header(opcode, len(payload))
            stream.write([header, payload], size=len(header) + len(payload))
            return
        if type(message) is str:
            protocol.send_text(message)
        else:
            protocol.send_binary(message)
        self._flush_protocol()

    def _on_data(self, data: memoryview) -> None:
        """The stream's ``on_data``: the bytes of one read."""
        self.keepalive.last_seen = self.server.loop.now
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
            self.server.handler.on_message(self, message)  # type: ignore[arg-type]
        except ConnectionClosed:
            pass  # the handler raced a close: nothing to report
        except Exception as exc:  # noqa: BLE001 - reported to the handler
            self._handler_failed(exc)
        return self.protocol.state is _OPEN
