"""Accelerate websockets: its sans-IO core and asyncio connection take direct paths on wsfast's kernels.

Profiling websockets' asyncio echo server (py-spy for the split of Python
time, perf for the kernel's share) at 16 connections x 32 B: 56 % of its CPU
is the kernel's (socket calls, loopback TCP, epoll), 12 % websockets' sans-IO
core, 19 % its asyncio ``Connection`` (``send_context()``, the ``Assembler``,
the futures it wakes), 12 % asyncio's own loop; at 256 x 1 KiB, 49 %, 15 %,
24 % and 10 %. The sans-IO cost is in ``Protocol.parse`` driving
``Frame.parse`` (a generator driving three or four ``StreamReader.read_exact``
generators per frame, ``struct.unpack``, the ``Opcode`` enum call,
``apply_mask``) and ``Frame.serialize`` (``io.BytesIO`` and ``struct.pack``
per frame). What is patched, and why there:

- ``websockets.protocol.Protocol.receive_data`` and ``send_text`` /
  ``send_binary``: whole final data frames read into ``events`` and written
  into ``writes`` directly, in the steady state of an open connection; see
  :mod:`wsfast.adapters._websockets_protocol` for the exact conditions.
  Everything else goes to the originals, and so through the two below.
- ``websockets.asyncio.connection.Connection.send``, ``recv`` and
  ``data_received``: ``send_context()``'s and the assembler's steps inline
  for messages of one frame, data frames queued without the events and
  writes calls that have nothing to do; see :mod:`wsfast.adapters._websockets_asyncio`. Patched when the
  program imports ``websockets.asyncio.connection`` (wsfast does not import
  it). Both work on websockets 17.0 and 17.1+, which differ in how they
  chain errors to ``ConnectionClosed``.
- uvicorn's ``WebSocketsSansIOProtocol.data_received`` and ``send`` (its
  ``--ws websockets-sansio`` class, on websockets' sans-IO core): a message
  received or sent without uvicorn's per-message dispatch, with its flow
  control exactly; see :mod:`wsfast.adapters._uvicorn`. Patched when the
  program imports uvicorn's module (wsfast does not import it).
- ``websockets.frames.Frame.parse``: ``Protocol.parse`` calls it for every
  frame. The replacement reads a frame that is already whole in the
  ``StreamReader``'s buffer in one step: header by ``wsfast.kernels.parse_header``,
  payload unmasked by ``wsfast.kernels.mask``, then websockets' own
  ``Frame``, extensions (in reverse order) and ``Frame.check``, as the
  original does. Everything else goes to the original generator, untouched
  buffer and all: a frame still arriving, any header websockets rejects or
  that wsfast's kernel rejects (reserved opcode, wrong masking, over
  ``max_size``, oversized or fragmented control frame, 64-bit length with the
  top bit set), a ``read_exact`` that is not websockets' ``StreamReader``, or
  while ``struct.unpack`` is not the standard library's (websockets' own
  tests patch it to simulate an internal error in the parser).
  So every frame, event, exception and close code is websockets' own.
- ``websockets.frames.Frame.serialize``: every frame ``Protocol.send_frame``
  writes. After websockets' own ``check`` and extensions, the header comes
  from ``wsfast.kernels.frame_header`` and a client's payload is masked by
  ``wsfast.kernels.mask`` with a mask from ``secrets.token_bytes(4)``, as
  websockets draws it. Data that is not ``bytes`` or ``bytearray`` is masked
  by ``apply_mask`` and written through ``io.BytesIO`` as websockets does; a
  frame whose opcode is not an ``Opcode`` is serialized by the original.
- ``websockets.frames.apply_mask``: what the original ``Frame.parse`` and
  ``Frame.serialize`` read at call time, only when it is the pure-Python
  ``websockets.utils.apply_mask`` (websockets built without its C
  ``speedups``). The C ``speedups.apply_mask`` is as fast as the kernel plus
  a wrapper's call (0.94-1.09x measured), so it is left alone and reported in
  ``PATCHER.native``. The defining modules are never patched.
- ``websockets.legacy.framing.apply_mask``: the legacy framing's own binding,
  on the same terms. Importing ``websockets.legacy`` emits a
  DeprecationWarning, so wsfast never imports it: it is patched if it is
  imported already, or right after the program imports it.

Not patched, because it is already native: UTF-8. websockets validates text
messages and close reasons with CPython's C UTF-8 decoder (``bytes.decode``
and the incremental decoder), which a wrapper could only slow down.

``apply_mask``'s calling convention is websockets' (``apply_mask(data,
mask) -> bytes``, keywords ``data`` and ``mask``, a new ``bytes``). The
kernel runs for the types websockets' own code passes and for which it gives
the identical result: ``bytes`` or ``bytearray`` data with a 4-byte
``bytes``/``bytearray`` mask. Every other call, errors included, goes to the
original.
"""

from __future__ import annotations

import io
import secrets
import struct
from collections.abc import Generator, Sequence
from typing import Any

from wsfast import kernels
from wsfast.adapters import _uvicorn
from wsfast.adapters import _websockets_asyncio as _asyncio
from wsfast.adapters import _websockets_protocol as _protocol
from wsfast.adapters._patch import Patcher, Site, compiled, mark

__all__ = [
    "PATCHER",
    "SITES",
    "install",
    "is_active",
    "make_apply_mask",
    "make_parse",
    "make_serialize",
    "uninstall",
]

_SANSIO = "uvicorn.protocols.websockets.websockets_sansio_impl"  # uvicorn's --ws websockets-sansio

SITES = (
    Site("websockets.protocol", "Protocol.receive_data"),
    Site("websockets.protocol", "Protocol.send_text"),
    Site("websockets.protocol", "Protocol.send_binary"),
    Site("websockets.asyncio.connection", "Connection.send", required=False),
    Site("websockets.asyncio.connection", "Connection.recv", required=False),
    Site("websockets.asyncio.connection", "Connection.data_received", required=False),
    Site(_SANSIO, "WebSocketsSansIOProtocol.data_received", required=False),
    Site(_SANSIO, "WebSocketsSansIOProtocol.send", required=False),
    Site("websockets.frames", "Frame.parse"),
    Site("websockets.frames", "Frame.serialize"),
    Site("websockets.frames", "apply_mask"),
    Site("websockets.legacy.framing", "apply_mask", required=False),
)

# Looked up at call time, so that a test can wrap a kernel in a spy.
_mask = kernels.mask
_parse_header = kernels.parse_header
_frame_header = kernels.frame_header


def make_apply_mask(original: Any) -> Any:
    """A drop-in ``apply_mask`` that runs the wsfast kernel, else ``original`` (the pure-Python one)."""
    # The pure-Python apply_mask mis-sizes views whose items are not bytes: only these types get the kernel.
    data_types = mask_types = (bytes, bytearray)

    def apply_mask(data: Any, mask: Any) -> bytes:
        """Apply masking to the data of a WebSocket message (wsfast kernel).

        Args:
            data: Data to mask.
            mask: 4-bytes mask.
        """
        if data.__class__ in data_types and mask.__class__ in mask_types and len(mask) == 4:
            return _mask(data, mask)
        return original(data, mask)  # type: ignore[no-any-return]

    apply_mask.__qualname__ = apply_mask.__name__
    return mark(apply_mask, original)


def make_parse(original: classmethod[Any, Any, Any]) -> classmethod[Any, Any, Any]:
    """A drop-in ``Frame.parse`` that reads whole buffered frames on the kernels, else runs ``original``."""
    from websockets.frames import Opcode
    from websockets.streams import StreamReader

    parse_original = original.__func__
    read_exact_of_reader = StreamReader.read_exact
    unpack = struct.unpack
    opcodes = {int(opcode): opcode for opcode in Opcode}

    def parse(
        cls: Any,
        read_exact: Any,
        *,
        mask: bool,
        max_size: int | None = None,
        extensions: Sequence[Any] | None = None,
    ) -> Generator[None, None, Any]:
        """Parse a WebSocket frame (wsfast: whole buffered frames in one step).

        This is a generator-based coroutine; see websockets' ``Frame.parse``.
        """
        if getattr(read_exact, "__func__", None) is read_exact_of_reader and struct.unpack is unpack:
            frame = _buffered_frame(cls, read_exact.__self__.buffer, mask, max_size, opcodes)
            if frame is not None:
                for extension in reversed(extensions or ()):
                    frame = extension.decode(frame, max_size=max_size)
                frame.check()
                return frame
        return (yield from parse_original(cls, read_exact, mask=mask, max_size=max_size, extensions=extensions))

    parse.__qualname__ = "Frame.parse"
    return mark(classmethod(parse), original)  # type: ignore[no-any-return]


def _buffered_frame(cls: Any, buffer: bytearray, mask: bool, max_size: int | None, opcodes: dict[int, Any]) -> Any:
    """The frame at the start of ``buffer``, consumed, or None (buffer untouched) for the original to read."""
    try:
        header = _parse_header(buffer)
    except ValueError:  # wsfast's ProtocolError: websockets raises its own, in its own order
        return None
    if header is None:
        return None
    fin, rsv, opcode, masked, length, key, header_length = header
    if masked is not mask or (max_size is not None and length > max_size):
        return None
    end = header_length + length
    if len(buffer) < end:
        return None
    data = _mask(buffer[header_length:end], key) if mask else buffer[header_length:end]
    del buffer[:end]
    return cls(
        opcodes[opcode],
        data,
        fin,
        True if rsv & 4 else False,
        True if rsv & 2 else False,
        True if rsv & 1 else False,
    )


def make_serialize(original: Any) -> Any:
    """A drop-in ``Frame.serialize`` whose header and masking run on the kernels."""
    import websockets.frames as frames

    opcode_type = frames.Opcode

    def serialize(self: Any, *, mask: bool, extensions: Sequence[Any] | None = None) -> bytes:
        """Serialize a WebSocket frame (wsfast kernels); see websockets' ``Frame.serialize``."""
        if self.opcode.__class__ is not opcode_type:
            return original(self, mask=mask, extensions=extensions)  # type: ignore[no-any-return]
        self.check()
        frame = self
        for extension in extensions or ():
            frame = extension.encode(frame)
        data = frame.data
        plain = data.__class__ is bytes or data.__class__ is bytearray
        rsv = (4 if frame.rsv1 else 0) | (2 if frame.rsv2 else 0) | (1 if frame.rsv3 else 0)
        if mask:
            key = secrets.token_bytes(4)
            header = _frame_header(frame.opcode, len(data), fin=frame.fin, rsv=rsv, mask_key=key)
            return header + (_mask(data, key) if plain else frames.apply_mask(data, key))  # type: ignore[attr-defined]
        header = _frame_header(frame.opcode, len(data), fin=frame.fin, rsv=rsv)
        if plain:
            return header + data  # type: ignore[no-any-return]
        output = io.BytesIO()  # any other buffer, written as websockets writes it
        output.write(header)
        output.write(data)
        return output.getvalue()

    serialize.__qualname__ = "Frame.serialize"
    return mark(serialize, original)


def _replacement(site: Site, original: Any) -> Any:
    if site.attribute == "Protocol.receive_data":
        return _protocol.make_receive_data(original)
    if site.attribute == "Protocol.send_text":
        return _protocol.make_send_data_frame(original, 1)
    if site.attribute == "Protocol.send_binary":
        return _protocol.make_send_data_frame(original, 2)
    if site.attribute == "Connection.send":
        return _asyncio.make_send(original)
    if site.attribute == "Connection.recv":
        return _asyncio.make_recv(original)
    if site.attribute == "Connection.data_received":
        return _asyncio.make_data_received(original)
    if site.attribute == "WebSocketsSansIOProtocol.data_received":
        return _uvicorn.make_sansio_data_received(original)
    if site.attribute == "WebSocketsSansIOProtocol.send":
        return _uvicorn.make_sansio_send(original)
    if site.attribute == "Frame.parse":
        return make_parse(original)
    if site.attribute == "Frame.serialize":
        return make_serialize(original)
    return make_apply_mask(original)


PATCHER = Patcher("websockets", SITES, _replacement, native=compiled)


def install(import_modules: bool = True) -> None:
    """Route websockets' frames in and out, and its asyncio send and recv, through wsfast; idempotent.

    Raises:
        ImportError: websockets is not installed.
    """
    PATCHER.install(import_modules)


def uninstall() -> None:
    """Put websockets' own methods and ``apply_mask`` back, every site in :data:`SITES`; idempotent."""
    PATCHER.uninstall()


def is_active() -> bool:
    """Whether :func:`install` is in effect."""
    return PATCHER.active
