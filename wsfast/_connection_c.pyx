"""The per-message path of a server connection, compiled: the twin of ``_connection_py.py``.

The same methods over C fields; a reply is framed here and queued with the
stream core's C method, without a Python frame between the handler's
``ws.send(message)`` and the write queue. A plain-TCP read comes straight
from the stream core's buffer (``StreamCore.set_on_read``), and each whole
message goes to the handler from C (``deliver_whole``): no memoryview and
no Python call on the way.

The protocol's outbox is read in C: the bytes it holds, and the version of
its sending rules, with which the answer of ``can_send_prebuilt()`` is
kept (asked again when the version changes, whoever changed it).

The answer of the protocol's ``whole_message_limit()`` is kept between
messages: only a call of one of the protocol's methods can change it, and
every such call either goes through the ``protocol`` attribute, whose getter
forgets it, or is made here, which forgets it too. What the fast paths do
(deliver whole messages, queue prebuilt frames) changes nothing the
protocol knows.

The server's loop and ``write_limit`` are taken once, when ``server`` is
set: both are fixed for the server's life.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8String

from wsfast._outbox_c cimport Outbox
from wsfast._receive_c cimport deliver_whole
from wsfast._stream_c cimport LoopCore, StreamCore
from wsfast.exceptions import ConnectionClosed
from wsfast.protocol import State, _byte_buffer

_OPEN = State.OPEN

DEF UNKNOWN = -1  # _limit and _prebuilt: ask the protocol
DEF NO_LIMIT = -2  # _limit: whole_message_limit() is None


def queue_shared(receivers, list frame, Py_ssize_t size, Py_ssize_t limit):
    """Queue one prebuilt frame for every receiver that can take it as it is.

    See ``wsfast._connection_py.queue_shared``, the pure-Python twin. A dict's
    keys and a set's members are walked in C, without a copy.
    """
    cdef list rest = []
    if type(receivers) is dict:
        for receiver in <dict>receivers:
            _queue_one(receiver, frame, size, limit, rest)
    elif type(receivers) is set:
        for receiver in <set>receivers:
            _queue_one(receiver, frame, size, limit, rest)
    else:
        for receiver in receivers:
            _queue_one(receiver, frame, size, limit, rest)
    return rest


cdef inline int _queue_one(object receiver, list frame, Py_ssize_t size, Py_ssize_t limit, list rest) except -1:
    cdef ConnectionCore connection
    cdef StreamCore stream
    if not isinstance(receiver, ConnectionCore):
        rest.append(receiver)
        return 0
    connection = <ConnectionCore>receiver
    stream = connection._stream
    if connection._outbox.buffered or stream.queued > limit or not connection._can_send_prebuilt():
        rest.append(receiver)
    else:
        stream._push(frame, size, True)
    return 0


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

    cdef object _server
    cdef StreamCore _stream
    cdef public object keepalive
    cdef object _protocol
    cdef object _loop  # server.loop
    cdef Py_ssize_t _write_limit  # server.write_limit
    cdef Outbox _outbox  # the protocol's
    cdef Py_ssize_t _limit  # whole_message_limit(), NO_LIMIT for None, or UNKNOWN
    cdef int _prebuilt  # can_send_prebuilt(), or UNKNOWN
    cdef unsigned long long _prebuilt_version  # the outbox's version when _prebuilt was asked

    def __cinit__(self):
        self._limit = UNKNOWN
        self._prebuilt = UNKNOWN

    @property
    def server(self):
        """The server (``handler``, ``write_limit``, ``loop``, ``_admit(ws)``)."""
        return self._server

    @server.setter
    def server(self, value):
        self._server = value
        self._loop = value.loop
        self._write_limit = value.write_limit

    @property
    def stream(self):
        """The connection's :class:`~wsfast.loop.Stream`."""
        return self._stream

    @stream.setter
    def stream(self, StreamCore value):
        self._stream = value
        # Reading for _on_data, not overridden: read into it in C.
        if (
            value is not None
            and value.on_data == self._on_data
            and type(self)._on_data is ConnectionCore._on_data
        ):
            value.set_on_read(_on_read, self)

    @property
    def protocol(self):
        """The sans-IO connection; code that reads this may change what it receives."""
        self._forget()
        return self._protocol

    @protocol.setter
    def protocol(self, value):
        self._outbox = value._outbox
        self._protocol = value
        self._forget()

    cdef inline void _forget(self) noexcept:
        self._limit = UNKNOWN

    cdef bint _can_send_prebuilt(self) except -1:
        if self._prebuilt == UNKNOWN or self._prebuilt_version != self._outbox.version:
            self._prebuilt_version = self._outbox.version
            self._prebuilt = 1 if self._protocol.can_send_prebuilt() else 0
        return self._prebuilt

    def send(self, message):
        """Send a text message (``str``) or a binary one (any bytes-like object).

        A binary payload is queued as is, without a copy (memoryviews and
        numpy arrays included): do not modify it until it is written.

        Raises:
            ConnectionClosed: the connection is not OPEN.
        """
        cdef object protocol = self._protocol
        cdef Outbox outbox = self._outbox
        cdef StreamCore stream = self._stream
        cdef object payload
        cdef bytes header
        cdef unsigned char opcode
        if stream.queued + outbox.buffered > self._write_limit:
            self._server._admit(self)
        if self._can_send_prebuilt():
            # The common case, framed here without the sans-IO send path;
            # what the protocol queued before (a pong) goes out first.
            if outbox.buffered:
                self._forget()
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
        self._forget()
        if type(message) is str:
            protocol.send_text(message)
        else:
            protocol.send_binary(message)
        self._flush_protocol()

    def _on_data(self, data):
        """The stream's ``on_data``: the bytes of one read."""
        cdef Py_buffer view
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._receive(<const unsigned char *>view.buf, view.len, data)
        finally:
            PyBuffer_Release(&view)

    cdef _receive(self, const unsigned char *p, Py_ssize_t size, data):
        """``_on_data(data)`` over the ``size`` bytes at ``p``; ``data``, if
        None, is the stream's read buffer (``p`` points into it)."""
        cdef Py_ssize_t limit = self._limit
        cdef Py_ssize_t taken
        loop = self._loop
        self.keepalive.last_seen = (<LoopCore>loop).now if isinstance(loop, LoopCore) else loop.now
        protocol = self._protocol
        if limit == UNKNOWN:
            answer = protocol.whole_message_limit()
            limit = NO_LIMIT if answer is None else answer
            self._limit = limit
        if limit != NO_LIMIT:
            # Whole messages go straight to the handler; the protocol gets the rest.
            taken = deliver_whole(p, size, limit, _deliver_to, self)
            if taken < size:
                if data is None:
                    data = self._stream._view[:size]
                self._forget()
                self._dispatch(protocol.receive_data(data[taken:]))
            elif self._outbox.buffered or protocol.should_close_transport:
                self._flush_protocol()
        else:
            if data is None:
                data = self._stream._view[:size]
            self._forget()
            self._dispatch(protocol.receive_data(data))
        # Replies, pongs and close echoes count against write_limit alike:
        # read no more from a client whose queue is over it until it drains.
        if self._stream.queued > self._write_limit:
            self._stream.pause_reading()

    cdef bint _deliver(self, message) except -1:
        """One message of the fast path to the handler; whether to go on with it."""
        try:
            self._server.handler.on_message(self, message)
        except ConnectionClosed:
            pass  # the handler raced a close: nothing to report
        except Exception as exc:
            self._handler_failed(exc)
        return self._limit >= 0 or self._protocol.state is _OPEN


cdef int _deliver_to(object connection, object message) except -1:
    """``deliver_whole``'s callback: ``connection._deliver(message)``."""
    return (<ConnectionCore>connection)._deliver(message)


cdef int _on_read(object connection, const unsigned char *data, Py_ssize_t size) except -1:
    """The stream's compiled ``on_data``: ``connection._on_data`` over its read buffer."""
    (<ConnectionCore>connection)._receive(data, size, None)
    return 0
