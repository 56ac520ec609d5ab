"""websockets' sans-IO ``Protocol``: whole data frames in and out without its generators.

``Protocol.receive_data`` feeds a ``StreamReader`` and steps the ``parse()``
generator, which runs ``Frame.parse``, three or four ``read_exact``
generators, ``Frame.check`` and ``recv_frame`` for every frame;
``send_binary`` and ``send_text`` build a ``Frame`` and serialize it through
``io.BytesIO``. In the steady state of an open connection all of that ends in
one of two effects: a final, unfragmented data frame is appended to
``events``, or its bytes to ``writes``. The replacements produce exactly
those effects directly, on :mod:`wsfast.kernels`, when the protocol is in
that steady state, and call websockets' own method otherwise.

Receiving takes the direct path only for whole final text or binary frames
at the start of ``data`` while the connection is OPEN, no fragmented message
is in progress, no extension is negotiated, debug logging is off, the
reader's buffer is empty and not at EOF, the ``parse()`` generator is parked
where it waits for the next frame (websockets' ``Protocol.parse`` suspended
in ``StreamReader.at_eof``), and ``recv_frame`` and ``struct.unpack`` are
websockets' and the standard library's own. It stops at the first frame
that is anything else (a control frame, a fragment, a reserved bit, wrong
masking, over ``max_size``, cut short) and hands the rest of ``data`` to the
original method, which parses it from there with the generator where it
was: the events come out in order, every error is websockets' own.

Sending takes the direct path for a final frame of ``bytes`` or
``bytearray`` data while the connection is OPEN, no fragmented message is
being sent, no extension is negotiated, debug logging is off and
``send_frame`` and ``Frame.serialize`` are websockets' own (or wsfast's
replacement of it). A client masks with ``secrets.token_bytes(4)``, as
websockets does.
"""

from __future__ import annotations

import secrets
import struct
import types
from typing import Any

from wsfast import kernels
from wsfast.adapters._patch import mark, original_of

__all__ = ["make_receive_data", "make_send_data_frame"]

# Looked up at call time, so that a test can wrap a kernel in a spy.
_mask = kernels.mask
_parse_header = kernels.parse_header
_frame_header = kernels.frame_header


def make_receive_data(original: Any) -> Any:
    """A drop-in ``Protocol.receive_data`` that reads whole data frames directly, else runs ``original``."""
    from websockets.frames import Frame, Opcode
    from websockets.protocol import OPEN, Protocol, Side
    from websockets.streams import StreamReader

    parse_code = Protocol.parse.__code__
    at_eof_code = StreamReader.at_eof.__code__
    recv_frame = Protocol.recv_frame
    server = Side.SERVER
    generator = types.GeneratorType
    unpack = struct.unpack
    opcodes = {1: Opcode.TEXT, 2: Opcode.BINARY}

    def parked(parser: Any) -> bool:
        """Whether ``parse()`` is suspended where it waits for the next frame."""
        while parser.__class__ is generator:
            inner = parser.gi_yieldfrom
            if inner.__class__ is generator and inner.gi_code is at_eof_code:
                return parser.gi_code is parse_code
            parser = inner
        return False

    def receive_data(self: Any, data: Any) -> None:
        """Receive data from the network (wsfast: whole data frames read directly).

        See websockets' ``Protocol.receive_data``.
        """
        reader = self.reader
        if (
            (data.__class__ is bytes or data.__class__ is bytearray)
            and self._state is OPEN
            and self.current_size is None
            and not self.extensions
            and not self.debug
            and not reader.buffer
            and not reader.eof
            and reader.__class__ is StreamReader
            and self.__class__.recv_frame is recv_frame
            and struct.unpack is unpack
            and parked(self.parser)
        ):
            used = _read_frames(self, data, opcodes, Frame, self.side is server)
            if used == len(data):
                return
            if used:
                data = data[used:]
        original(self, data)

    receive_data.__qualname__ = "Protocol.receive_data"
    return mark(receive_data, original)


def _read_frames(protocol: Any, data: Any, opcodes: dict[int, Any], frame_type: Any, masked: bool) -> int:
    """Append the whole final data frames at the start of ``data`` to ``protocol.events``; bytes used."""
    # What parse() computes for max_size while no fragmented message is in progress.
    max_size = protocol.max_message_size
    if protocol.max_fragment_size is not None:
        max_size = protocol.max_fragment_size if max_size is None else min(max_size, protocol.max_fragment_size)
    events = protocol.events
    total = len(data)
    offset = 0
    with memoryview(data) as view:
        while offset < total:
            try:
                header = _parse_header(view, offset)
            except ValueError:  # wsfast's ProtocolError: websockets raises its own, in its own order
                break
            if header is None:
                break
            fin, rsv, opcode, mask, length, key, header_length = header
            if not fin or rsv or opcode not in opcodes or mask is not masked:
                break
            if max_size is not None and length > max_size:
                break
            start = offset + header_length
            end = start + length
            if end > total:
                break
            # As apply_mask() and read_exact() leave it: bytes when masked, else a bytearray.
            payload = _mask(view[start:end], key) if masked else bytearray(view[start:end])
            events.append(frame_type(opcodes[opcode], payload, True, False, False, False))
            offset = end
    return offset


def make_send_data_frame(original: Any, opcode: int) -> Any:
    """A drop-in ``Protocol.send_text`` (``opcode`` 1) or ``send_binary`` (2) on the kernels."""
    from websockets.frames import Frame
    from websockets.protocol import OPEN, Protocol, Side

    send_frame = Protocol.send_frame
    serialize = vars(Frame)["serialize"]
    client = Side.CLIENT

    def send_data_frame(self: Any, data: Any, fin: bool = True) -> None:
        if (
            fin is True
            and (data.__class__ is bytes or data.__class__ is bytearray)
            and not self.expect_continuation_frame
            and self._state is OPEN
            and not self.extensions
            and not self.debug
            and self.__class__.send_frame is send_frame
            and ((current := vars(Frame)["serialize"]) is serialize or original_of(current) is serialize)
        ):
            if self.side is client:
                key = secrets.token_bytes(4)
                self.writes.append(_frame_header(opcode, len(data), mask_key=key) + _mask(data, key))
            else:
                self.writes.append(_frame_header(opcode, len(data)) + data)
            return
        original(self, data, fin)

    name = "send_text" if opcode == 1 else "send_binary"
    send_data_frame.__name__ = name
    send_data_frame.__qualname__ = f"Protocol.{name}"
    send_data_frame.__doc__ = f"Send a {'Text' if opcode == 1 else 'Binary'} frame (wsfast kernels); see websockets'."
    return mark(send_data_frame, original)
