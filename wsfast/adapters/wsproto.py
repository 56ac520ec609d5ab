"""Accelerate wsproto: frames read and written on wsfast's kernels, ``XorMaskerSimple`` on ``mask_into``.

Profiling wsproto's ``Connection`` echoing 32 B messages puts half its
receive time in ``FrameDecoder.parse_header``, ``process_buffer`` and the
``Buffer`` calls between them, and most of its send time in
``FrameProtocol._serialize_frame``. What is patched, and why there:

- ``wsproto.frame_protocol.FrameDecoder.process_buffer``: called for every
  frame received. When no frame is half-read, no extension is negotiated and
  the buffer holds a whole frame whose header wsproto accepts (a known
  opcode, no RSV bit, masked as the role requires, the minimal length
  encoding, a control frame final and at most 125 bytes), the replacement
  reads it in one step: header by ``wsfast.kernels.parse_header``, payload
  unmasked by ``wsfast.kernels.mask``, leaving the decoder in the state
  wsproto's own code would. Anything else goes to the original with the
  buffer untouched, so every frame, event and ``ParseFailed`` is wsproto's own.
- ``wsproto.frame_protocol.FrameProtocol._serialize_frame``: every frame a
  server sends. For a data frame (``bytes`` or ``bytearray`` payload) on a
  server without extensions, the header comes from
  ``wsfast.kernels.frame_header``; a new ``bytearray`` is returned, as
  wsproto returns. Client frames (masked with ``os.urandom`` keys, through
  the masker below), control frames and extensions go to the original.
- ``wsproto.frame_protocol.XorMaskerSimple``: ``FrameDecoder.parse_header``
  (one masker per received masked frame) and ``FrameProtocol._serialize_frame``
  (client sends) look this class up in their module globals each time. It is
  replaced by a subclass of wsproto's own class, so ``isinstance`` checks
  against the original still hold.
- uvicorn's ``WSProtocol.send`` (its ``--ws wsproto`` class): a
  ``websocket.send`` on an open connection written as one frame built on
  the kernel, without wsproto's ``Message`` event and ``send`` calls; see
  :mod:`wsfast.adapters._uvicorn`. Patched when the program imports
  uvicorn's module (wsfast does not import it).

Calling convention: wsproto's ``process(data)`` copies ``data`` into a new
``bytearray``, masks it and returns it; the key phase carries across calls
because wsproto rotates ``_masking_key`` by ``len(data) % 4``. The subclass
does the same copy, masks it in place with the kernel, and rotates
``_masking_key`` exactly as wsproto does, so the masker's state is the one
wsproto would have. A key that is not 4 bytes of ``bytes``/``bytearray`` goes
to wsproto's own ``process`` (with its errors). wsproto still draws client
masks from ``os.urandom``.
"""

from __future__ import annotations

from typing import Any

from wsfast import kernels
from wsfast.adapters import _uvicorn
from wsfast.adapters._patch import Patcher, Site, mark

__all__ = [
    "PATCHER",
    "SITES",
    "install",
    "is_active",
    "make_masker",
    "make_process_buffer",
    "make_serialize_frame",
    "uninstall",
]

SITES = (
    Site("wsproto.frame_protocol", "FrameDecoder.process_buffer"),
    Site("wsproto.frame_protocol", "FrameProtocol._serialize_frame"),
    Site("wsproto.frame_protocol", "XorMaskerSimple"),
    Site("uvicorn.protocols.websockets.wsproto_impl", "WSProtocol.send", required=False),
)

# Looked up at call time, so that a test can wrap a kernel in a spy.
_mask_into = kernels.mask_into
_mask = kernels.mask
_parse_header = kernels.parse_header
_frame_header = kernels.frame_header


def make_masker(original: Any) -> Any:
    """A subclass of wsproto's ``XorMaskerSimple`` whose ``process`` runs the kernel."""
    original_process = original.process

    def process(self: Any, data: Any) -> bytearray:
        """Mask (or unmask) the next chunk of the payload; returns a new bytearray."""
        buffer = bytearray(data)
        key = self._masking_key
        if buffer and (key.__class__ is bytes or key.__class__ is bytearray) and len(key) == 4:
            _mask_into(buffer, key)
            # Rotate the key so the next chunk continues at the right phase,
            # exactly as wsproto does (its state stays comparable).
            rotation = len(buffer) & 3
            if rotation:
                self._masking_key = key[rotation:] + key[:rotation]
            return buffer
        return original_process(self, buffer)  # type: ignore[no-any-return]

    namespace = {
        "__module__": __name__,
        "__qualname__": "XorMaskerSimple",
        "__doc__": "wsproto's XorMaskerSimple, masking with the wsfast kernel.",
        "process": process,
    }
    masker = type("XorMaskerSimple", (original,), namespace)
    return mark(masker, original)


def make_process_buffer(original: Any) -> Any:
    """A drop-in ``FrameDecoder.process_buffer`` that reads whole buffered frames on the kernels."""
    from wsproto.frame_protocol import Frame, Opcode

    opcodes = {int(opcode): opcode for opcode in Opcode}

    def process_buffer(self: Any) -> Any:
        """The next frame, or None until more data arrives (wsfast: whole buffered frames in one step)."""
        if self.header is None and not self.extensions and not self.buffer.bytes_used:
            frame = _buffered_frame(self, opcodes, Frame)
            if frame is not None:
                return frame
        return original(self)

    process_buffer.__qualname__ = "FrameDecoder.process_buffer"
    return mark(process_buffer, original)


def _minimal_header_length(length: int) -> int:
    return 2 if length < 126 else 4 if length < 65536 else 10


def _buffered_frame(decoder: Any, opcodes: dict[int, Any], frame_type: Any) -> Any:
    """The whole frame at the start of the decoder's buffer, consumed, or None (buffer untouched)."""
    data = decoder.buffer.buffer
    try:
        header = _parse_header(data)
    except ValueError:  # wsfast's ProtocolError: wsproto raises its own ParseFailed
        return None
    if header is None:
        return None
    fin, rsv, opcode, masked, length, key, header_length = header
    if rsv or masked is decoder.client or header_length - 4 * masked != _minimal_header_length(length):
        return None
    end = header_length + length
    if len(data) < end:
        return None
    payload = _mask(data[header_length:end], key) if masked else bytes(data[header_length:end])
    del data[:end]
    # What parse_header and process_buffer leave behind once a frame is read whole.
    decoder.payload_required = length if opcode >= 8 else 0
    decoder.payload_consumed = length
    return frame_type(opcodes[opcode], payload, True, fin)


def make_serialize_frame(original: Any) -> Any:
    """A drop-in ``FrameProtocol._serialize_frame`` whose server data frames are built on the kernel."""

    def _serialize_frame(self: Any, opcode: Any, payload: Any = b"", fin: bool = True) -> bytearray:
        """Build one frame (wsfast kernel for a server's data frames)."""
        if (
            not self.client
            and not self.extensions
            and opcode < 8
            and (payload.__class__ is bytes or payload.__class__ is bytearray)
        ):
            frame = bytearray(_frame_header(opcode, len(payload), fin=fin))
            frame += payload
            return frame
        return original(self, opcode, payload, fin)  # type: ignore[no-any-return]

    _serialize_frame.__qualname__ = "FrameProtocol._serialize_frame"
    return mark(_serialize_frame, original)


def _replacement(site: Site, original: Any) -> Any:
    if site.attribute == "WSProtocol.send":
        return _uvicorn.make_wsproto_send(original)
    if site.attribute == "FrameDecoder.process_buffer":
        return make_process_buffer(original)
    if site.attribute == "FrameProtocol._serialize_frame":
        return make_serialize_frame(original)
    return make_masker(original)


PATCHER = Patcher("wsproto", SITES, _replacement)


def install(import_modules: bool = True) -> None:
    """Route wsproto's frame reading, writing and masking through wsfast; idempotent.

    Raises:
        ImportError: wsproto is not installed.
    """
    PATCHER.install(import_modules)


def uninstall() -> None:
    """Put wsproto's own ``process_buffer``, ``_serialize_frame`` and ``XorMaskerSimple`` back; idempotent."""
    PATCHER.uninstall()


def is_active() -> bool:
    """Whether :func:`install` is in effect."""
    return PATCHER.active
