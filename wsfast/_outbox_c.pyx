"""A connection's outgoing buffers, compiled: the twin of ``_outbox_py.py``.

The same fields in C: the server's compiled connection core reads
``buffered`` and ``version`` as struct fields.
"""

from cpython.bytes cimport PyBytes_GET_SIZE


cdef class Outbox:
    """The buffers a connection has queued to send, their bytes, and a version.

    See ``wsfast._outbox_py.Outbox``, the pure-Python twin.
    """

    def __init__(self):
        self.buffers = []
        self.buffered = 0
        self.version = 0

    def add(self, data):
        """Queue one buffer (any bytes-like object)."""
        self.buffers.append(data)
        self.buffered += PyBytes_GET_SIZE(data) if type(data) is bytes else memoryview(data).nbytes

    def take(self):
        """Return the queued buffers and empty the outbox."""
        buffers = self.buffers
        self.buffers = []
        self.buffered = 0
        return buffers
