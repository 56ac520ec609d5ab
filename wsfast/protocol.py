"""The sans-IO WebSocket connection: bytes in, events out; sends in, bytes out.

:class:`Connection` never touches a socket. The caller feeds it what the
network delivered (:meth:`Connection.receive_data`, :meth:`Connection.receive_eof`),
acts on the events it returns, and writes what :meth:`Connection.data_to_send`
hands back. Rules of RFC 6455 (and RFC 7692 when permessage-deflate is
negotiated) are enforced here, failing the connection with the right close
code.

Where a connection is in its life is one private :class:`_Phase`; the rules:

1. Every change of phase goes through :meth:`Connection._enter`, which
   checks the pair against ``_TRANSITIONS`` (the table says what causes
   each change) and raises ``RuntimeError`` naming both phases otherwise.
2. The public view is read off the phase only (``_VIEW``):
   :attr:`Connection.state` (the browser's ``readyState``) and
   :attr:`Connection.should_close_transport`.
3. The other fields are data (what was sent, what is being received), never
   state: no test of a field stands for "which phase".
"""

from __future__ import annotations

import codecs
import enum
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .events import (
    Closed,
    CloseReceived,
    Event,
    Fragment,
    HandshakeFailed,
    HttpRequest,
    Opened,
    Ping,
    Pong,
)
from .exceptions import ConnectionClosed, InvalidHandshake, InvalidUTF8, PayloadTooBig, ProtocolError
from .extensions import PerMessageDeflateCodec
from .frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Close,
    CloseCode,
    FrameParser,
    build_frame,
    frame_header,
)
from .handshake import ClientHandshake, RequestParser, Response, ResponseParser, ServerHandshake
from .kernels import PURE, Utf8Validator

if TYPE_CHECKING or PURE:
    from ._outbox_py import Outbox
else:
    try:
        from ._outbox_c import Outbox
    except ImportError:
        from ._outbox_py import Outbox

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "Connection", "Role", "State"]

#: Default limit on a received message, after decompression.
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
# The default max_fragments: one frame per 64 bytes of max_message_size (the
# smallest fragments of Autobahn's case 9.3), and never fewer than this.
_MIN_DEFAULT_MAX_FRAGMENTS = 65_536

_RSV1 = 4
_urandom = os.urandom
# Text is fed to the UTF-8 validator in steps of at most this: the pure
# twin's copies what it is given, and a whole fragment inflated from a few
# bytes would be copied at once.
_UTF8_STEP = 256 * 1024


def _byte_buffer(data: Any) -> Any:
    """``data`` as a flat buffer of bytes, copying only a non-contiguous one."""
    if type(data) is bytes or type(data) is bytearray:
        return data
    view = memoryview(data)
    if not view.c_contiguous:
        return view.tobytes()
    return view if view.ndim == 1 and view.format == "B" else view.cast("B")


class Role(enum.Enum):
    """Which end of the connection this is."""

    SERVER = "server"
    CLIENT = "client"


class State(enum.IntEnum):
    """Connection states, numbered as the browser's ``WebSocket.readyState``."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class _Phase(enum.Enum):
    """Where a connection is in its life (rule 2 maps it to ``state``)."""

    HANDSHAKE = "handshake"  # CONNECTING: the opening handshake is under way
    HTTP_REQUEST = "HTTP request"  # CONNECTING: a plain HTTP request awaits send_response() (server)
    OPEN = "open"  # OPEN
    CLOSE_SENT = "close sent"  # CLOSING: our close frame is queued, the peer's is awaited
    # OPEN: failed after other events of the same data; the Closed event is
    # out, the close frame waits behind the replies to those events until
    # data_to_send() hands it over (RFC 6455 §7.1.7).
    FAILING = "failing"
    AWAITING_EOF = "awaiting EOF"  # CLOSED: a client after the closing handshake (the server closes TCP first)
    CLOSED = "closed"  # CLOSED: nothing more is received or sent; close the transport


# The phases tested on every receive_data() and data_to_send(), under module
# names: an attribute of an enum class costs about 100 ns on CPython 3.11.
_OPEN, _CLOSE_SENT, _FAILING = _Phase.OPEN, _Phase.CLOSE_SENT, _Phase.FAILING

# Rule 1: every change of phase, with what causes it.
_TRANSITIONS: dict[tuple[_Phase, _Phase], str] = {
    (_Phase.HANDSHAKE, _Phase.OPEN): "the opening handshake succeeded",
    (_Phase.HANDSHAKE, _Phase.HTTP_REQUEST): "a server received a plain HTTP request",
    (_Phase.HANDSHAKE, _Phase.CLOSED): "the opening handshake failed, or EOF",
    (_Phase.HTTP_REQUEST, _Phase.CLOSED): "send_response(), or EOF",
    (_Phase.OPEN, _Phase.CLOSE_SENT): "close()",
    (_Phase.OPEN, _Phase.FAILING): "a violation after other events in the same data",
    (_Phase.OPEN, _Phase.AWAITING_EOF): "a client received a close and echoed it",
    (_Phase.OPEN, _Phase.CLOSED): "a server received a close and echoed it; a violation; EOF",
    (_Phase.CLOSE_SENT, _Phase.AWAITING_EOF): "a client received the answer to its close",
    (_Phase.CLOSE_SENT, _Phase.CLOSED): "a server received the answer to its close; a violation; EOF",
    (_Phase.FAILING, _Phase.CLOSED): "data_to_send() handed over the close frame, or EOF",
    (_Phase.AWAITING_EOF, _Phase.CLOSED): "EOF",
}

# Rule 2: (state, should_close_transport) in each phase.
_VIEW: dict[_Phase, tuple[State, bool]] = {
    _Phase.HANDSHAKE: (State.CONNECTING, False),
    _Phase.HTTP_REQUEST: (State.CONNECTING, False),
    _Phase.OPEN: (State.OPEN, False),
    _Phase.CLOSE_SENT: (State.CLOSING, False),
    _Phase.FAILING: (State.OPEN, True),
    _Phase.AWAITING_EOF: (State.CLOSED, False),
    _Phase.CLOSED: (State.CLOSED, True),
}


class Connection:
    """A WebSocket connection, server or client side, without any I/O.

    Use:
        1. Feed every chunk read from the network to :meth:`receive_data`
           (and :meth:`receive_eof` at end of stream); handle the events it
           returns.
        2. Send with :meth:`send_text`, :meth:`send_binary`, :meth:`send_ping`,
           :meth:`close`.
        3. After each of the above, write the buffers of :meth:`data_to_send`
           to the network, in order.
        4. When :attr:`should_close_transport` becomes True, close the TCP
           connection once those buffers are written.

    With a ``handshake`` the connection starts in CONNECTING and performs the
    opening handshake itself; without one it starts OPEN (the caller did the
    handshake and passes what was negotiated).
    """

    def __init__(
        self,
        role: Role | str,
        *,
        handshake: ServerHandshake | ClientHandshake | None = None,
        subprotocol: str | None = None,
        extensions: Sequence[object] = (),
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_frame_size: int | None = None,
        max_fragments: int | None = None,
        max_header_bytes: int = 16384,
        auto_pong: bool = True,
        stream_fragments: bool = False,
    ) -> None:
        """Create a connection in ``role``, CONNECTING until its handshake completes.

        Args:
            role: :attr:`Role.SERVER` or :attr:`Role.CLIENT` (or their values).
            handshake: a :class:`~wsfast.handshake.ServerHandshake` for a
                server, a :class:`~wsfast.handshake.ClientHandshake` for a
                client; ``None`` when the connection is already open.
            subprotocol: the negotiated subprotocol, without ``handshake``.
            extensions: the negotiated extension objects, without
                ``handshake`` (a :class:`~wsfast.extensions.PerMessageDeflateCodec`).
            max_message_size: the largest message accepted, in bytes, after
                decompression; larger ones fail the connection with 1009.
            max_frame_size: the largest frame payload accepted (defaults to
                ``max_message_size``).
            max_fragments: the most frames a received message may come in,
                empty ones included; more fail the connection with 1009.
                Defaults to one per 64 bytes of ``max_message_size``, and at
                least 65,536 (262,144 for the default 16 MiB).
            max_header_bytes: the limit on the handshake's header block.
            auto_pong: answer pings with pongs automatically.
            stream_fragments: deliver data frames as :class:`~wsfast.events.Fragment`
                events instead of assembling whole messages.

        Raises:
            ValueError: an argument is out of range or does not fit the role.
        """
        self.role = Role(role)
        if max_message_size <= 0:
            raise ValueError(f"max_message_size must be > 0, got {max_message_size}")
        if max_frame_size is None:
            max_frame_size = max_message_size
        if max_frame_size <= 0:
            raise ValueError(f"max_frame_size must be > 0, got {max_frame_size}")
        if max_fragments is None:
            max_fragments = max(max_message_size // 64, _MIN_DEFAULT_MAX_FRAGMENTS)
        if max_fragments <= 0:
            raise ValueError(f"max_fragments must be > 0, got {max_fragments}")
        is_server = self.role is Role.SERVER
        if handshake is not None and isinstance(handshake, ServerHandshake) != is_server:
            raise ValueError(f"a {self.role.value} connection needs a {self.role.value} handshake")
        self.max_message_size = max_message_size
        self.max_fragments = max_fragments
        self.auto_pong = auto_pong
        self.stream_fragments = stream_fragments
        self.subprotocol = subprotocol
        self.extensions: tuple[str, ...] = ()
        self._is_server = is_server
        self._handshake = handshake
        self._max_frame_size = max_frame_size
        # Without compression a frame is never larger than its message: the
        # parser's limit then also enforces max_message_size on whole
        # messages, so the fast path needs no size check of its own.
        self._parser = FrameParser(masked=is_server, max_frame_size=min(max_frame_size, max_message_size))
        self._http_parser: RequestParser | ResponseParser | None = None
        self._deflate: PerMessageDeflateCodec | None = None
        # What sends queue, with its size in bytes (buffered_amount) and the
        # version of the sending rules (can_send_prebuilt()).
        self._outbox = Outbox()
        # Queue one buffer: the outbox's own method, without a call of ours around it.
        self._queue = self._outbox.add
        # The close frame of a failure that followed other events in the same
        # data: it waits behind what the caller sends while handling those.
        self._failure_close: list[Any] = []
        # The message being received: its opcode (0 when none), its payload
        # so far (one buffer, so a fragment costs its bytes and nothing
        # more), size, frames so far, whether it is compressed, and a UTF-8
        # validator.
        self._message_opcode = 0
        self._message = bytearray()
        self._message_size = 0
        self._message_fragments = 0
        self._compressed = False
        self._validator = Utf8Validator()
        # Payload bytes of the incomplete frame that the validator has seen.
        self._text_checked = 0
        self._text_decoder = codecs.getincrementaldecoder("utf-8")()
        # The message being sent in fragments: its opcode (0 when none) and
        # whether it is compressed.
        self._sending_opcode = 0
        self._sending_compressed = False
        # What we sent to close, and the final event (data, not state).
        self._close_sent: Close | None = None
        self._closed_event: Closed | None = None
        self._phase = _Phase.OPEN if handshake is None else _Phase.HANDSHAKE
        #: The browser's ``readyState`` (read it, do not set it).
        self.state: State
        #: Whether the caller must close the TCP connection once
        #: :meth:`data_to_send`'s buffers are written (read it, do not set it).
        self.should_close_transport: bool
        self.state, self.should_close_transport = _VIEW[self._phase]
        if handshake is None:
            self._use_extensions(extensions)
        elif isinstance(handshake, ServerHandshake):
            self._http_parser = RequestParser(max_header_bytes=max_header_bytes)
        else:
            self._http_parser = ResponseParser(max_header_bytes=max_header_bytes)
            self._queue(handshake.request().serialize())

    # --- properties --------------------------------------------------------

    @property
    def close_code(self) -> int | None:
        """The code of the final :class:`~wsfast.events.Closed` event, once closed."""
        return self._closed_event.code if self._closed_event else None

    @property
    def close_reason(self) -> str | None:
        """The reason of the final :class:`~wsfast.events.Closed` event, once closed."""
        return self._closed_event.reason if self._closed_event else None

    # --- receiving ---------------------------------------------------------

    def receive_data(self, data: Any) -> list[Event]:
        """Take bytes received from the network; return the resulting events.

        Args:
            data: any bytes-like object; it is not kept after the call, so a
                reused receive buffer may be passed.

        Returns:
            The events, in order. After a protocol violation the last event
            is :class:`~wsfast.events.Closed`: send :meth:`data_to_send`, then
            close the transport. When other events precede it (a message, a
            ping), the connection stays OPEN while the caller handles them,
            so that its replies are written before the close frame
            (RFC 6455 §7.1.7): :meth:`data_to_send` then returns them, then
            the close frame, and the connection is CLOSED from that call on.
        """
        phase = self._phase
        if phase is not _OPEN and phase is not _CLOSE_SENT:
            if phase is _Phase.HANDSHAKE:
                return self._receive_handshake(data)
            # A plain HTTP request awaits its response; or a close frame
            # came (RFC 6455 §5.5.1: nothing after it counts); or a failure.
            return []
        events: list[Event] = []
        try:
            frames = self._parser.feed(data)
        except ProtocolError as exc:
            self._fail(exc, events)
            return events
        append = events.append
        deflate = self._deflate
        # Whole messages skip the general path: the hot case.
        simple = not self._message_opcode and not self.stream_fragments
        # The first frame's payload bytes that _check_partial_text already
        # fed to the UTF-8 validator, when it arrived over several reads.
        checked, self._text_checked = self._text_checked, 0
        try:
            for frame in frames:
                opcode = frame.opcode
                if simple and frame.fin and (opcode == OP_BINARY or opcode == OP_TEXT):
                    rsv = frame.rsv
                    if not rsv and deflate is None:
                        # The parser's frame limit is the message limit here.
                        payload = frame.payload
                    elif rsv == _RSV1 and deflate is not None:
                        # A compressed message in one frame: inflated and decoded in one call, bounded.
                        try:
                            append(deflate.decompress_message(frame.payload, self.max_message_size, opcode == OP_TEXT))
                        except UnicodeDecodeError:
                            raise InvalidUTF8("invalid UTF-8 in a text message") from None
                        continue
                    elif not rsv and len(frame.payload) <= self.max_message_size:
                        payload = frame.payload  # uncompressed, under deflate's frame slack
                    else:
                        payload = None
                    if payload is not None:
                        if opcode == OP_BINARY:
                            append(payload)
                            continue
                        try:
                            append(payload.decode("utf-8"))
                        except UnicodeDecodeError:
                            raise InvalidUTF8("invalid UTF-8 in a text message") from None
                        continue
                if opcode >= OP_CLOSE:
                    if frame.rsv:
                        raise ProtocolError("RSV bit set on a control frame")
                    if opcode == OP_CLOSE:
                        self._receive_close(frame.payload, events)
                        break
                    self._receive_ping_pong(opcode, frame.payload, events)
                else:
                    prefix = checked if frame is frames[0] else 0
                    self._receive_data_frame(opcode, frame.payload, frame.fin, frame.rsv, events, prefix)
                    simple = not self._message_opcode and not self.stream_fragments
            else:
                if self._parser.error is not None:
                    raise self._parser.error
                self._text_checked = 0 if frames else checked  # a frame that completed starts afresh
                self._check_partial_text()
        except ProtocolError as exc:
            self._fail(exc, events)
        return events

    def receive_eof(self) -> list[Event]:
        """Tell the connection that the peer closed the TCP connection.

        Returns:
            The final :class:`~wsfast.events.Closed` event, unless the
            connection was closed already. The connection is then CLOSED and
            :attr:`should_close_transport` is True.
        """
        events: list[Event] = []
        phase = self._phase
        if phase is _Phase.CLOSED:
            return events
        self._enter(_Phase.CLOSED)
        if phase is _Phase.HANDSHAKE or phase is _Phase.HTTP_REQUEST:
            error = InvalidHandshake(400, "connection closed during the opening handshake")
            events.append(HandshakeFailed(error))
        elif phase is _Phase.FAILING:
            self._outbox.buffers += self._failure_close  # the close frame still goes out, last
            self._failure_close = []
        elif phase is not _Phase.AWAITING_EOF:
            self._report_closed(CloseCode.ABNORMAL_CLOSURE, "", False, events)
        return events

    def _receive_handshake(self, data: Any) -> list[Event]:
        events: list[Event] = []
        assert self._handshake is not None and self._http_parser is not None
        try:
            message = self._http_parser.feed(bytes(data))
        except InvalidHandshake as exc:
            return self._reject_handshake(exc, events)
        if message is None:
            return events
        trailing = self._http_parser.trailing
        self._http_parser = None
        if isinstance(self._handshake, ServerHandshake):
            request = message
            assert not isinstance(request, Response)
            if not ServerHandshake.is_upgrade(request):
                self._enter(_Phase.HTTP_REQUEST)
                events.append(HttpRequest(request))
                return events
            try:
                accepted = self._handshake.accept(request)
            except InvalidHandshake as exc:
                return self._reject_handshake(exc, events)
            self._queue(accepted.response.serialize())
            response = accepted.response
        else:
            assert isinstance(message, Response)
            response = message
            request = self._handshake.request()
            try:
                accepted = self._handshake.validate(response)
            except InvalidHandshake as exc:
                return self._reject_handshake(exc, events)
        self.subprotocol = accepted.subprotocol
        self._use_extensions(accepted.extensions)
        self._enter(_Phase.OPEN)
        self._handshake = None
        events.append(Opened(request, response, self.subprotocol, self.extensions))
        if trailing:
            events += self.receive_data(trailing)
        return events

    def _reject_handshake(self, exc: InvalidHandshake, events: list[Event]) -> list[Event]:
        if self._is_server:
            self._queue(ServerHandshake.reject(exc).serialize())
        self._enter(_Phase.CLOSED)
        self._handshake = None
        self._http_parser = None
        events.append(HandshakeFailed(exc))
        return events

    def _use_extensions(self, extensions: Sequence[object]) -> None:
        names = []
        for extension in extensions:
            if isinstance(extension, PerMessageDeflateCodec):
                self._deflate = extension
                self._outbox.version += 1
                # Deflate may make a frame slightly larger than its message
                # (stored blocks: 5 bytes per 64 KiB); the inflated size is
                # bounded while decompressing, uncompressed frames below.
                slack = self._max_frame_size // 8192 + 64
                self._parser = FrameParser(
                    masked=self._is_server, max_frame_size=self._max_frame_size + slack, rsv_allowed=_RSV1
                )
                names.append("permessage-deflate")
            else:
                raise ValueError(f"unsupported extension object: {extension!r}")
        self.extensions = tuple(names)

    def _check_partial_text(self) -> None:
        """Validate what arrived of an incomplete text frame (RFC 6455 §8.1: fail fast).

        Raises:
            InvalidUTF8: the bytes that arrived so far cannot start valid UTF-8.
        """
        parser = self._parser
        header = parser.partial(None)
        if header is None or header.rsv:
            return  # no frame in progress, or a compressed one: inflated when complete
        if header.opcode == OP_TEXT:
            if self._message_opcode:
                return  # a new message inside a fragmented one: fails when complete
            if not self._text_checked:
                self._validator.reset()
        elif header.opcode != OP_CONTINUATION or self._message_opcode != OP_TEXT or self._compressed:
            return
        frame = parser.partial(self._text_checked)
        assert frame is not None
        self._text_checked += len(frame.payload)
        if not self._validator.validate(frame.payload)[0]:
            raise InvalidUTF8("invalid UTF-8 in a text message")

    def _receive_data_frame(
        self, opcode: int, payload: bytes, fin: bool, rsv: int, events: list[Event], checked: int = 0
    ) -> None:
        """A data frame outside the fast path: fragments, compression, streaming.

        ``checked`` is how many bytes of ``payload`` the UTF-8 validator saw
        already, while the frame was arriving.
        """
        if opcode == OP_CONTINUATION:
            if not self._message_opcode:
                raise ProtocolError("continuation frame without a message to continue")
            if rsv:
                raise ProtocolError("RSV1 set on a continuation frame")
            # Counted whatever their size: an empty fragment costs no memory,
            # but work, and without a bound a message need never end.
            self._message_fragments += 1
            if self._message_fragments > self.max_fragments:
                raise PayloadTooBig(f"message in more than {self.max_fragments} fragments")
        else:
            if self._message_opcode:
                raise ProtocolError("new data frame inside a fragmented message")
            self._message_opcode = opcode
            self._compressed = bool(rsv & _RSV1)
            self._message_size = 0
            self._message_fragments = 1
            if opcode == OP_TEXT:
                if not checked:
                    self._validator.reset()
                self._text_decoder.reset()
        is_text = self._message_opcode == OP_TEXT
        message = self._message
        if self._compressed and not self.stream_fragments:
            assert self._deflate is not None
            # Inflated straight into the message, within the limit: a bomb in
            # fragments costs the limit, not the limit and a fragment more.
            start = len(message)
            self._deflate.decompress_into(payload, message, final=fin, max_size=self.max_message_size)
            if is_text:
                self._check_text(memoryview(message)[start:], fin)
        else:
            if self._compressed:
                assert self._deflate is not None
                # The codec bounds the inflated size of the whole message.
                payload = self._deflate.decompress(payload, final=fin, max_size=self.max_message_size)
            self._message_size += len(payload)
            if self._message_size > self.max_message_size:
                raise PayloadTooBig(f"message over the limit of {self.max_message_size} bytes")
            if is_text:
                self._check_text(memoryview(payload)[checked:] if checked else payload, fin)
            if self.stream_fragments:
                if is_text:
                    text = self._text_decoder.decode(payload, fin)  # valid: checked above
                    if fin or text:
                        events.append(Fragment(text, fin))
                elif fin or payload:
                    events.append(Fragment(payload, fin))
            else:
                message += payload
        if fin:
            if not self.stream_fragments:
                self._message = bytearray()
                events.append(message.decode("utf-8") if is_text else bytes(message))
            self._message_opcode = 0

    def _check_text(self, data: Any, fin: bool) -> None:
        """Feed a text message's next bytes to the UTF-8 validator (RFC 6455 §8.1: fail fast).

        Raises:
            InvalidUTF8: ``data`` holds an invalid byte, or ends the message
                inside a code point.
        """
        validate = self._validator.validate
        view = memoryview(data)
        last = max(len(view) - 1, 0) // _UTF8_STEP * _UTF8_STEP  # where the last step starts
        for start in range(0, last, _UTF8_STEP):
            if not validate(view[start : start + _UTF8_STEP])[0]:
                raise InvalidUTF8("invalid UTF-8 in a text message")
        valid, complete, _, _ = validate(view[last:])
        if not valid or (fin and not complete):
            raise InvalidUTF8("invalid UTF-8 in a text message")

    def _receive_ping_pong(self, opcode: int, payload: bytes, events: list[Event]) -> None:
        if opcode == OP_PING:
            if self.auto_pong and self._phase is _Phase.OPEN:
                self._send_frame(OP_PONG, payload, True, 0)
            events.append(Ping(payload))
        else:
            events.append(Pong(payload))

    def _receive_close(self, payload: bytes, events: list[Event]) -> None:
        close = Close.parse(payload)
        events.append(CloseReceived(close.code, close.reason))
        if self._phase is _Phase.OPEN:
            # Echo the code (RFC 6455 §5.5.1); a close without one gets none.
            self._send_close(close)
        # RFC 6455 §7.1.1: the server closes the TCP connection first.
        self._enter(_Phase.CLOSED if self._is_server else _Phase.AWAITING_EOF)
        self._report_closed(close.code, close.reason, True, events)

    def _fail(self, exc: ProtocolError, events: list[Event]) -> None:
        """Fail the connection (RFC 6455 §7.1.7): send a close, drop everything after.

        The events before the violation still count: when there are some,
        the close frame waits in ``_failure_close`` until :meth:`data_to_send`
        (phase FAILING, which reads OPEN), so the replies to them go first.
        """
        reason = str(exc).encode()[:123].decode("utf-8", "ignore")
        # The Closed event keeps exc: its traceback would keep the frames of
        # the whole read alive with it (3 MiB for 60,000 empty frames).
        exc.__traceback__ = None
        self._message = bytearray()
        if self._phase is not _Phase.OPEN:
            self._enter(_Phase.CLOSED)  # our close frame is out already
        else:
            buffers = self._outbox.buffers
            queued = len(buffers)
            self._send_close(Close(exc.code, reason))
            if events:
                self._failure_close = buffers[queued:]
                del buffers[queued:]
            self._enter(_Phase.FAILING if events else _Phase.CLOSED)
        self._report_closed(exc.code, reason, False, events, exc)

    def _report_closed(
        self, code: int, reason: str, clean: bool, events: list[Event], error: ProtocolError | None = None
    ) -> None:
        """Append the final :class:`~wsfast.events.Closed` event to ``events``."""
        self._closed_event = Closed(int(code), reason, clean, error)
        events.append(self._closed_event)

    def _enter(self, phase: _Phase) -> None:
        """Move to ``phase``: the one place where the phase changes (rule 1).

        Raises:
            RuntimeError: the table has no such transition (a bug in wsfast).
        """
        if (self._phase, phase) not in _TRANSITIONS:
            raise RuntimeError(f"internal error: no transition from {self._phase.name} to {phase.name}")
        self._phase = phase
        self.state, self.should_close_transport = _VIEW[phase]
        self._outbox.version += 1

    # --- sending -------------------------------------------------------------

    def data_to_send(self) -> list[Any]:
        """Return the buffers to write to the network, in order, and forget them.

        Headers and payloads are separate buffers, suited to scatter-gather
        writes (``socket.sendmsg``). An unmasked (server) payload may be the
        very object passed to a send method: do not modify it until written.
        """
        output = self._outbox.take()
        if self._phase is _FAILING:
            output += self._failure_close
            self._failure_close = []
            self._enter(_Phase.CLOSED)
        return output

    @property
    def buffered_amount(self) -> int:
        """Bytes queued by sends and not yet taken by :meth:`data_to_send`."""
        return self._outbox.buffered

    def send_text(self, text: str, *, fin: bool = True) -> None:
        """Queue a text message, or one fragment of it when ``fin`` is False.

        Raises:
            ConnectionClosed: the connection is not OPEN.
            ValueError: a binary message is being sent in fragments.
            TypeError: ``text`` is not a ``str``.
        """
        if type(text) is not str:
            raise TypeError(f"send_text() takes a str, not {type(text).__name__}")
        self._send_data(OP_TEXT, text.encode("utf-8"), fin)

    def send_binary(self, data: Any, *, fin: bool = True) -> None:
        """Queue a binary message (any bytes-like object), or one fragment of it.

        Raises:
            ConnectionClosed: the connection is not OPEN.
            ValueError: a text message is being sent in fragments.
            TypeError: ``data`` is not bytes-like.
        """
        self._send_data(OP_BINARY, _byte_buffer(data), fin)

    def _send_data(self, opcode: int, payload: Any, fin: bool) -> None:
        if self.state is not State.OPEN:
            raise ConnectionClosed(*self._close_details())
        if self._sending_opcode:
            if opcode != self._sending_opcode:
                raise ValueError("another message is being sent in fragments: finish it first")
            first = False
        else:
            first = True
        rsv = 0
        deflate = self._deflate
        if deflate is not None and (self._sending_opcode or deflate.should_compress(len(payload))):
            if first or self._sending_compressed:
                payload = deflate.compress(payload, final=fin)
                self._sending_compressed = True
                rsv = _RSV1 if first else 0
        elif first:
            self._sending_compressed = False
        sending = 0 if fin else opcode
        if sending != self._sending_opcode:
            self._sending_opcode = sending
            self._outbox.version += 1
        self._send_frame(opcode if first else OP_CONTINUATION, payload, fin, rsv)

    def can_send_prebuilt(self) -> bool:
        """Whether a frame built elsewhere may be written to this connection now.

        True for an OPEN server connection without compression and outside a
        fragmented send: a server can then frame a message once and write the
        same buffers to many clients (after draining :meth:`data_to_send`).
        The answer changes only with the outbox's ``version``.
        """
        return self._is_server and self._phase is _OPEN and not self._sending_opcode and self._deflate is None

    def whole_message_limit(self) -> int | None:
        """The largest message that the next bytes received may carry to be
        taken elsewhere, frame by frame, as whole unfragmented messages
        (``wsfast.server``'s fast path); None when they may not: unless OPEN,
        without extension, with nothing partly received and nothing failed.
        """
        parser = self._parser
        if (
            self._phase is _OPEN
            and self._deflate is None
            and not self._message_opcode
            and not self.stream_fragments
            and not parser.buffered
            and parser.error is None
        ):
            # Not min(): a builtin call with its argument parsing costs more here.
            limit = self._max_frame_size
            return limit if limit < self.max_message_size else self.max_message_size
        return None

    @property
    def messages_are_independent(self) -> bool:
        """Whether each sent message can be dropped unsent without harming the others.

        False only when permessage-deflate compresses with a context shared
        across messages (no ``*_no_context_takeover`` on our side).
        """
        return self._deflate is None or self._deflate.local_no_context_takeover

    def send_ping(self, payload: Any = b"") -> None:
        """Queue a ping with up to 125 bytes of payload.

        Raises:
            ConnectionClosed: the connection is not OPEN.
            ValueError: the payload is over 125 bytes.
        """
        if self.state is not State.OPEN:
            raise ConnectionClosed(*self._close_details())
        self._send_frame(OP_PING, bytes(payload), True, 0)

    def send_pong(self, payload: Any = b"") -> None:
        """Queue an unsolicited pong with up to 125 bytes of payload.

        RFC 6455 §5.5.3: a unidirectional heartbeat, which the peer does not
        answer. Pongs answering pings are sent automatically (``auto_pong``).

        Raises:
            ConnectionClosed: the connection is not OPEN.
            ValueError: the payload is over 125 bytes.
        """
        if self.state is not State.OPEN:
            raise ConnectionClosed(*self._close_details())
        self._send_frame(OP_PONG, bytes(payload), True, 0)

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake (or answer it, if the peer started it).

        Args:
            code: a close code allowed on the wire (1000-1003, 1007-1014,
                3000-4999), or 1005 to send a close frame without a code.
            reason: at most 123 bytes once UTF-8 encoded.

        Does nothing once a close frame was sent, or the connection is CLOSED.

        Raises:
            ValueError: the code may not be sent or the reason is too long.
            ConnectionClosed: the opening handshake is not complete (1006).
        """
        close = Close(code, reason)
        close.serialize()  # validate before any state changes
        if self.state is State.CONNECTING:
            raise ConnectionClosed(CloseCode.ABNORMAL_CLOSURE, "the opening handshake is not complete")
        if self._phase is _Phase.OPEN:
            self._send_close(close)
            self._enter(_Phase.CLOSE_SENT)

    def send_response(self, response: Response) -> None:
        """Answer a plain :class:`~wsfast.events.HttpRequest`; the connection then closes.

        Raises:
            RuntimeError: there is no plain HTTP request to answer.
        """
        if self._phase is not _Phase.HTTP_REQUEST:
            raise RuntimeError("send_response() answers an HttpRequest event only")
        self._queue(response.serialize())
        self._enter(_Phase.CLOSED)

    def _send_close(self, close: Close) -> None:
        self._close_sent = close
        self._send_frame(OP_CLOSE, close.serialize(), True, 0)
        if self._sending_opcode:
            self._sending_opcode = 0
            self._outbox.version += 1

    def _close_details(self) -> tuple[int, str]:
        """What :class:`ConnectionClosed` reports: the close that ended the
        connection (the peer's, or our failure's), else the one we sent."""
        closed = self._closed_event
        if closed is not None and (closed.clean or closed.error is not None):
            return (closed.code, closed.reason)
        if self._close_sent is not None:
            return (self._close_sent.code, self._close_sent.reason)
        return (CloseCode.ABNORMAL_CLOSURE, "the connection is not open")

    def _send_frame(self, opcode: int, payload: Any, fin: bool, rsv: int) -> None:
        if self._is_server:
            # Unmasked: header and payload go out as two buffers, no copy.
            self._queue(frame_header(opcode, len(payload), fin=fin, rsv=rsv))
            if len(payload):
                self._queue(payload)
        else:
            # RFC 6455 §5.3: a fresh, unpredictable key for every frame.
            self._queue(build_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=_urandom(4)))
