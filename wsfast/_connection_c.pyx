"""The per-message path of a server connection, compiled: the twin of ``_connection_py.py``.

The same methods over C fields; a reply is framed here and queued with the
stream core's C method, without a Python frame between the handler's
``ws.send(message)`` and the write queue.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8String

from wsfast._stream_c cimport StreamCore

from wsfast._receive_c import deliver_whole_messages
from wsfast.exceptions import ConnectionClosed
from wsfast.protocol import State, _byte_buffer

_OPEN = State.OPEN


cdef bytes _header(unsigned char opcode, Py_ssize_t length):
    """A final, unmasked frame's header (RFC 6455 §5.2)."""
    cdef bytes header
    cdef unsigned char *p
    cdef int i
    if length < 126:
        header = PyBytes_FromStringAndSize(NULL, 2)
        p = <unsigned char *>PyBytes_AS_STRING(header)
        p[1] = <unsigned char>length
    elif length < 65536:
        header = PyBytes_FromStringAndSize(NULL, 4)
        p = <unsigned char *>PyBytes_AS_STRING(header)
        p[1] = 126
        p[2] = <unsigned char>(length >> 8)
        p[3] = <unsigned char>length
    else:
        header = PyBytes_FromStringAndSize(NULL, 10)
        p = <unsigned char *>PyBytes_AS_STRING(header)
        p[1] = 127
        for i in range(8):
            p[9 - i] = <unsigned char>(length >> (8 * i))
    p[0] = 0x80 | opcode
    return header


cdef class ConnectionCore:
    """The sending and receiving half of a server connection.

    See ``wsfast._connection_py.ConnectionCore``, the pure-Python twin.
    """

    cdef public object server
    cdef public object protocol
    cdef public StreamCore stream
    cdef public object keepalive

    def send(self, message):
        """Send a text message (``str``) or a binary one (any bytes-like object).

        A binary payload is queued as is, without a copy (memoryviews and
        numpy arrays included): do not modify it until it is written.

        Raises:
            ConnectionClosed: the connection is not OPEN.
        """
        cdef object protocol = self.protocol
        cdef StreamCore stream = self.stream
        cdef object payload
        cdef bytes header
        cdef unsigned char opcode
        if stream.queued + <Py_ssize_t>protocol.buffered_amount > <Py_ssize_t>self.server.write_limit:
            self.server._admit(self)
        if protocol.can_send_prebuilt():
            # The common case, framed here without the sans-IO send path;
            # what the protocol queued before (a pong) goes out first.
            if protocol.buffered_amount:
                stream.write(protocol.data_to_send())
            if type(message) is str:
                payload = PyUnicode_AsUTF8String(message)
                opcode = 0x1
            elif type(message) is bytes:
                payload = message
                opcode = 0x2
            else:
                payload = _byte_buffer(message)
                opcode = 0x2
            header = _header(opcode, len(payload))
            stream._push([header, payload], PyBytes_GET_SIZE(header) + len(payload), False)
            return
        if type(message) is str:
            protocol.send_text(message)
        else:
            protocol.send_binary(message)
        self._flush_protocol()

    def _on_data(self, data):
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
        if self.stream.queued > <Py_ssize_t>self.server.write_limit:
            self.stream.pause_reading()

    def _deliver(self, message):
        """One message of the fast path to the handler; whether to go on with it."""
        try:
            self.server.handler.on_message(self, message)
        except ConnectionClosed:
            pass  # the handler raced a close: nothing to report
        except Exception as exc:
            self._handler_failed(exc)
        return self.protocol.state is _OPEN
