"""A connection's outgoing buffers, in pure Python: the twin of ``_outbox_c.pyx``.

:class:`~wsfast.protocol.Connection` queues what it sends in an
:class:`Outbox`; the compiled twin holds the same fields in C, where the
server's compiled connection core reads them for every message it queues
(is anything of the protocol's waiting? may a prebuilt frame go out?)
without a Python attribute lookup. ``wsfast.protocol`` picks one
(``WSFAST_PURE=1``: this one).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Outbox"]


class Outbox:
    """The buffers a connection has queued to send, their bytes, and a version.

    Attributes:
        buffers: the queued buffers, in order (headers and payloads apart).
        buffered: their total size in bytes.
        version: changed by the connection whenever what decides how a
            message may be sent changes (its phase, a message sent in
            fragments, compression): an answer of ``can_send_prebuilt()``
            kept with the version it was given at stays right while the
            version is the same.
    """

    __slots__ = ("buffered", "buffers", "version")

    def __init__(self) -> None:
        self.buffers: list[Any] = []
        self.buffered = 0
        self.version = 0

    def add(self, data: Any) -> None:
        """Queue one buffer (any bytes-like object)."""
        self.buffers.append(data)
        self.buffered += len(data) if type(data) is bytes else memoryview(data).nbytes

    def take(self) -> list[Any]:
        """Return the queued buffers and empty the outbox."""
        buffers, self.buffers = self.buffers, []
        self.buffered = 0
        return buffers
