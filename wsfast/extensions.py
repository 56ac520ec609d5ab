"""permessage-deflate (RFC 7692): negotiation and the per-connection codec.

Sans-IO and stdlib-only: :class:`PerMessageDeflate` is the configuration that
takes part in the opening handshake (it has the shapes of both the
``ServerExtension`` and ``ClientExtension`` protocols of
:mod:`wsfast.handshake`), and the :class:`PerMessageDeflateCodec` it returns
compresses and decompresses the payloads of one connection.

Three decisions that RFC 7692 leaves to the implementation:

* **Window bits 8.** zlib (since 1.2.9) refuses ``wbits=-8`` for raw deflate
  compression, and a larger compression window is not safe in general: the
  peer sized its LZ77 window from what was negotiated (§7.1.2). But zlib
  never emits a back-reference longer than ``2**wbits - 262`` (``MAX_DIST``
  in deflate.c: the window less the longest match, the shortest match and
  one), so a 9-bit compressor reaches back at most 250 bytes, within the
  256 that 8 bits allow. The codec therefore compresses with 9 bits when 8
  were negotiated (the tests check the distances zlib emits);
  decompression uses the negotiated value as is (zlib accepts 8 there).
* **Corrupt compressed data** fails with close code 1007 (invalid frame
  payload data), as the ``ws`` library for Node.js does: the frame is
  well formed, its payload is not what the RSV1 bit announced.
  (``websockets`` uses 1002.)
* **Blocks with BFINAL set** (§7.2.3.4) end zlib's stream but not the
  message: decoding goes on with a fresh inflater over the bytes that
  follow. That inflater starts with an empty window, so a peer that refers
  back across such a block fails the message (1007) rather than being
  decoded wrongly.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from .exceptions import NegotiationError
from .kernels import PURE
from .typing import BytesLike

if TYPE_CHECKING or PURE:
    from ._inflate_py import Inflater
else:
    try:
        from ._inflate_c import Inflater
    except ImportError:
        from ._inflate_py import Inflater

__all__ = ["PerMessageDeflate", "PerMessageDeflateCodec"]

# The shape of wsfast.handshake.ExtensionParams, restated: handshake sits
# above this module and may not be imported from here.
_Params: TypeAlias = list[tuple[str, str | None]]

# RFC 7692 §7.1.2.1: "a decimal integer value without leading zeroes
# between 8 to 15, inclusive". A table accepts exactly that and nothing
# int() would also take ("08", " 9", "+9", "1_0").
_WINDOW_BITS = {str(bits): bits for bits in range(8, 16)}

_PARAMETER_NAMES = frozenset(
    ("server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits", "client_max_window_bits")
)


@dataclass(frozen=True, slots=True)
class _Negotiated:
    """The permessage-deflate parameters of one offer or response, checked.

    A window size of ``None`` means the parameter is absent.
    ``client_max_window_bits`` given without a value (allowed in offers
    only) reads as 15: the client can limit its window and asks no limit.
    """

    server_no_context_takeover: bool
    client_no_context_takeover: bool
    server_max_window_bits: int | None
    client_max_window_bits: int | None


class PerMessageDeflate:
    """Configuration of permessage-deflate, usable on both sides.

    On a client, :meth:`offer` builds the offer and :meth:`confirm` checks the
    server's response; on a server, :meth:`accept` answers one offer. Both
    return the :class:`PerMessageDeflateCodec` for the connection.

    Attributes:
        name: the registered extension name.
    """

    name = "permessage-deflate"

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | None = None,
        compress_threshold: int = 128,
        level: int = 6,
        mem_level: int = 8,
    ) -> None:
        """Configure permessage-deflate.

        The four RFC 7692 §7.1 parameters mean, on each side:

        Args:
            server_no_context_takeover: client: require the server to compress
                every message from scratch. Server: do so, and say so.
            client_no_context_takeover: client: compress every message from
                scratch, and say so. Server: require the client to.
            server_max_window_bits: client: require the server's LZ77 window
                to be at most ``2**bits`` bytes. Server: keep ours to that.
            client_max_window_bits: client: keep our window to ``2**bits``
                and say so (``None``: offer the parameter without a value,
                letting the server choose). Server: require the client's
                window to be at most ``2**bits``; an offer that cannot honour
                a limit below 15 is declined.
            compress_threshold: messages shorter than this many bytes are
                sent uncompressed (see
                :meth:`PerMessageDeflateCodec.should_compress`).
            level: zlib compression level, 0 to 9 (or -1, zlib's default).
            mem_level: zlib memory level, 1 to 9.

        Raises:
            ValueError: if a window size is outside 8..15, ``level`` or
                ``mem_level`` is outside its range, or ``compress_threshold``
                is negative.
        """
        _check_window_bits("server_max_window_bits", server_max_window_bits)
        _check_window_bits("client_max_window_bits", client_max_window_bits)
        _check_zlib_settings(compress_threshold, level, mem_level)
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.compress_threshold = compress_threshold
        self.level = level
        self.mem_level = mem_level

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate(server_no_context_takeover={self.server_no_context_takeover}, "
            f"client_no_context_takeover={self.client_no_context_takeover}, "
            f"server_max_window_bits={self.server_max_window_bits}, "
            f"client_max_window_bits={self.client_max_window_bits}, "
            f"compress_threshold={self.compress_threshold}, level={self.level}, mem_level={self.mem_level})"
        )

    def offer(self) -> _Params:
        """Build the client's offer.

        ``client_max_window_bits`` is always offered (RFC 7692 §7.1.2.2): with
        our limit as its value if one is configured, else without a value,
        which tells the server it may choose one.

        Returns:
            The offer's parameters, in RFC order.
        """
        params: _Params = []
        if self.server_no_context_takeover:
            params.append(("server_no_context_takeover", None))
        if self.client_no_context_takeover:
            params.append(("client_no_context_takeover", None))
        if self.server_max_window_bits is not None:
            params.append(("server_max_window_bits", str(self.server_max_window_bits)))
        bits = self.client_max_window_bits
        params.append(("client_max_window_bits", None if bits is None else str(bits)))
        return params

    def confirm(self, params: Sequence[tuple[str, str | None]]) -> PerMessageDeflateCodec:
        """Check the server's response to :meth:`offer` (RFC 7692 §7.1).

        Args:
            params: the parameters of the server's ``permessage-deflate``
                response, names lower-cased and values unquoted.

        Returns:
            The client's codec.

        Raises:
            NegotiationError: if a parameter is unknown, repeated or has an
                invalid value, or if the response does not honour what we
                asked: ``server_no_context_takeover`` missing,
                ``server_max_window_bits`` missing or above our limit,
                ``client_max_window_bits`` above the limit we announced.
                The client must fail the connection.
        """
        response = _parse(params, offer=False)
        if self.server_no_context_takeover and not response.server_no_context_takeover:
            raise NegotiationError("permessage-deflate: server did not accept server_no_context_takeover")
        asked = self.server_max_window_bits
        got = response.server_max_window_bits
        if asked is not None and (got is None or got > asked):
            raise NegotiationError(f"permessage-deflate: server_max_window_bits {got} does not honour {asked}")
        announced = self.client_max_window_bits
        imposed = response.client_max_window_bits
        if announced is not None and imposed is not None and imposed > announced:
            raise NegotiationError(f"permessage-deflate: client_max_window_bits {imposed} exceeds our {announced}")
        return PerMessageDeflateCodec(
            is_server=False,
            local_no_context_takeover=self.client_no_context_takeover or response.client_no_context_takeover,
            remote_no_context_takeover=response.server_no_context_takeover,
            local_max_window_bits=imposed or announced or 15,
            remote_max_window_bits=got or 15,
            compress_threshold=self.compress_threshold,
            level=self.level,
            mem_level=self.mem_level,
        )

    def accept(self, params: Sequence[tuple[str, str | None]]) -> tuple[_Params, PerMessageDeflateCodec] | None:
        """Answer one client offer (RFC 7692 §7.1).

        The client's requests are honoured (``server_no_context_takeover``;
        ``server_max_window_bits`` as the smaller of its value and ours), our
        configuration is applied and announced, and ``client_max_window_bits``
        gets a value in the response only if the client offered it.

        Args:
            params: the parameters of one ``permessage-deflate`` offer,
                names lower-cased and values unquoted.

        Returns:
            The response parameters and the server's codec, or ``None`` to
            decline this offer: a parameter is unknown, repeated or has an
            invalid value, or we require a client window limit that the
            client did not offer to accept. The server then considers the
            client's next offer.
        """
        try:
            offer = _parse(params, offer=True)
        except NegotiationError:
            return None
        wanted_client_bits = self.client_max_window_bits or 15
        if offer.client_max_window_bits is None and wanted_client_bits < 15:
            return None
        local_no_context_takeover = offer.server_no_context_takeover or self.server_no_context_takeover
        remote_no_context_takeover = offer.client_no_context_takeover or self.client_no_context_takeover
        local_bits = min(offer.server_max_window_bits or 15, self.server_max_window_bits or 15)
        remote_bits = min(offer.client_max_window_bits or 15, wanted_client_bits)
        response: _Params = []
        if local_no_context_takeover:
            response.append(("server_no_context_takeover", None))
        if remote_no_context_takeover:
            response.append(("client_no_context_takeover", None))
        if offer.server_max_window_bits is not None or local_bits < 15:
            response.append(("server_max_window_bits", str(local_bits)))
        if offer.client_max_window_bits is not None and remote_bits < 15:
            response.append(("client_max_window_bits", str(remote_bits)))
        codec = PerMessageDeflateCodec(
            is_server=True,
            local_no_context_takeover=local_no_context_takeover,
            remote_no_context_takeover=remote_no_context_takeover,
            local_max_window_bits=local_bits,
            remote_max_window_bits=remote_bits,
            compress_threshold=self.compress_threshold,
            level=self.level,
            mem_level=self.mem_level,
        )
        return response, codec


class PerMessageDeflateCodec:
    """Negotiated, per-connection compressor and decompressor.

    "Local" is what this side compresses with (the ``server_*`` parameters
    on a server), "remote" what the peer compresses with. The caller sets
    and reads RSV1 and feeds every fragment of a compressed message, the
    continuation frames too (their RSV1 is clear, RFC 7692 §6.1).

    Attributes:
        is_server: which side of the connection this codec serves.
        local_no_context_takeover: compress every message from scratch.
        remote_no_context_takeover: the peer does; forget its messages.
        local_max_window_bits: our LZ77 window is at most ``2**bits``.
        remote_max_window_bits: the peer's window is at most ``2**bits``.
        compress_threshold: see :meth:`should_compress`.
        level: zlib compression level.
        mem_level: zlib memory level.
    """

    __slots__ = (
        "is_server",
        "local_no_context_takeover",
        "remote_no_context_takeover",
        "local_max_window_bits",
        "remote_max_window_bits",
        "compress_threshold",
        "level",
        "mem_level",
        "_compress_wbits",
        "_compressor",
        "_inflater",
        "decompress_message",
    )

    def __init__(
        self,
        *,
        is_server: bool,
        local_no_context_takeover: bool,
        remote_no_context_takeover: bool,
        local_max_window_bits: int,
        remote_max_window_bits: int,
        compress_threshold: int = 128,
        level: int = 6,
        mem_level: int = 8,
    ) -> None:
        """Set up a codec; zlib state is allocated on first use.

        Args:
            is_server: whether this side is the server.
            local_no_context_takeover: start a fresh compressor per message.
            remote_no_context_takeover: start a fresh decompressor per message.
            local_max_window_bits: our window size, 8 to 15.
            remote_max_window_bits: the peer's window size, 8 to 15.
            compress_threshold: smallest message size worth compressing.
            level: zlib compression level, 0 to 9 (or -1).
            mem_level: zlib memory level, 1 to 9.

        Raises:
            ValueError: for a value outside the ranges above or a negative
                ``compress_threshold``.
        """
        _check_window_bits("local_max_window_bits", local_max_window_bits)
        _check_window_bits("remote_max_window_bits", remote_max_window_bits)
        _check_zlib_settings(compress_threshold, level, mem_level)
        self.is_server = is_server
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_no_context_takeover = remote_no_context_takeover
        self.local_max_window_bits = local_max_window_bits
        self.remote_max_window_bits = remote_max_window_bits
        self.compress_threshold = compress_threshold
        self.level = level
        self.mem_level = mem_level
        # Raw deflate (negative wbits); 9 stands in for 8, see the module docstring.
        self._compress_wbits = -max(local_max_window_bits, 9)
        self._compressor: zlib._Compress | None = None
        self._inflater = Inflater(remote_max_window_bits, remote_no_context_takeover)
        #: ``decompress_message(data, max_size, text)``: a whole message that
        #: came in one frame, as ``bytes`` or (``text``) ``str``; raises as
        #: :meth:`decompress` does, and UnicodeDecodeError for invalid text.
        #: The receive path's shortcut: one call, no Python frame.
        self.decompress_message = self._inflater.message

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflateCodec(is_server={self.is_server}, "
            f"local_no_context_takeover={self.local_no_context_takeover}, "
            f"remote_no_context_takeover={self.remote_no_context_takeover}, "
            f"local_max_window_bits={self.local_max_window_bits}, "
            f"remote_max_window_bits={self.remote_max_window_bits})"
        )

    def should_compress(self, size: int) -> bool:
        """Tell whether a message of ``size`` bytes is worth compressing.

        Args:
            size: the message's uncompressed length.

        Returns:
            ``True`` if ``size >= compress_threshold``: compress it and set
            RSV1. Otherwise send it as is, RSV1 clear.
        """
        return size >= self.compress_threshold

    def compress(self, data: BytesLike, *, final: bool = True) -> bytes:
        """Compress one frame's worth of an outgoing message.

        Call it for each fragment of a message, in order, with ``final=True``
        on the last one (a whole unfragmented message is one call).

        Args:
            data: the fragment's payload: any contiguous buffer (bytes,
                bytearray, memoryview, a numpy uint8 array...); it is read
                in place, not copied.
            final: whether this fragment ends the message.

        Returns:
            The frame's payload. Each call ends with a sync flush, so the
            frame can be sent at once; on the final one the flush's trailing
            ``00 00 ff ff`` is removed (RFC 7692 §7.2.1).
        """
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = zlib.compressobj(
                self.level, zlib.DEFLATED, self._compress_wbits, self.mem_level
            )
        head = compressor.compress(data)
        # compress() always runs deflate, so this flush always ends with an
        # empty stored block, even after an empty fragment.
        tail = compressor.flush(zlib.Z_SYNC_FLUSH)
        if final:
            tail = tail[:-4]
            if self.local_no_context_takeover:
                self._compressor = None
        return head + tail

    def decompress(self, data: BytesLike, *, final: bool, max_size: int | None = None) -> bytes:
        """Decompress one frame of an incoming compressed message.

        Call it for every fragment of a message whose first frame had RSV1
        set, in order, with ``final=True`` on the last one. If it raises,
        the codec forgets the message and the caller must fail the
        connection with the exception's ``code``.

        Args:
            data: the frame's payload, any contiguous buffer.
            final: whether this frame ends the message; the codec then
                appends ``00 00 ff ff`` (RFC 7692 §7.2.2).
            max_size: the largest decompressed size of the whole message,
                counted across its fragments, or ``None`` for no limit.
                zlib is never asked for more than one byte past the limit,
                so a zip bomb costs about ``max_size`` bytes of memory.

        Returns:
            The decompressed bytes of this fragment.

        Raises:
            PayloadTooBig: the message decompresses to more than
                ``max_size`` bytes (close code 1009).
            ProtocolError: the payload is not valid DEFLATE data (close code
                1007).
        """
        return self._inflater.decompress(data, final, max_size, None)

    def decompress_into(self, data: BytesLike, output: bytearray, *, final: bool, max_size: int | None = None) -> None:
        """:meth:`decompress`, appending the decompressed bytes to ``output``.

        For a message assembled in one buffer: no fragment's output is held
        apart from it, so a zip bomb in many fragments costs about
        ``max_size`` too. On an exception ``output`` may hold part of this
        fragment's bytes.

        Raises:
            PayloadTooBig: as :meth:`decompress`.
            ProtocolError: as :meth:`decompress`.
        """
        self._inflater.decompress(data, final, max_size, output)

    def reset(self) -> None:
        """Drop all compression state, in both directions.

        The next message is compressed and decompressed from empty windows,
        and the size count of a partly received message restarts at 0. With
        context takeover the peer does not know about it, so use it only
        when the current messages are abandoned with the connection.
        """
        self._compressor = None
        self._inflater.reset()


def _parse(params: Sequence[tuple[str, str | None]], *, offer: bool) -> _Negotiated:
    """Check an offer's or a response's parameters (RFC 7692 §7.1).

    Raises:
        NegotiationError: on an unknown or repeated name, or a bad value.
    """
    found: dict[str, str | None] = {}
    for name, value in params:
        if name not in _PARAMETER_NAMES:
            raise NegotiationError(f"permessage-deflate: unknown parameter {name}")
        if name in found:
            raise NegotiationError(f"permessage-deflate: duplicate parameter {name}")
        found[name] = value
    return _Negotiated(
        server_no_context_takeover=_flag(found, "server_no_context_takeover"),
        client_no_context_takeover=_flag(found, "client_no_context_takeover"),
        server_max_window_bits=_bits(found, "server_max_window_bits", bare=None),
        client_max_window_bits=_bits(found, "client_max_window_bits", bare=15 if offer else None),
    )


def _flag(found: dict[str, str | None], name: str) -> bool:
    """Read a parameter that must have no value (§7.1.1)."""
    if name not in found:
        return False
    if found[name] is not None:
        raise NegotiationError(f"permessage-deflate: {name} takes no value")
    return True


def _bits(found: dict[str, str | None], name: str, *, bare: int | None) -> int | None:
    """Read a window size; ``bare`` is what no value means, ``None`` if not allowed."""
    if name not in found:
        return None
    value = found[name]
    if value is None and bare is not None:
        return bare
    if value is None or value not in _WINDOW_BITS:
        raise NegotiationError(f"permessage-deflate: invalid {name}: {value!r}")
    return _WINDOW_BITS[value]


def _check_window_bits(name: str, bits: int | None) -> None:
    """Raise ValueError unless ``bits`` is ``None`` or in 8..15."""
    if bits is not None and not 8 <= bits <= 15:
        raise ValueError(f"{name} must be between 8 and 15, got {bits}")


def _check_zlib_settings(compress_threshold: int, level: int, mem_level: int) -> None:
    """Raise ValueError for settings zlib or the codec cannot use."""
    if compress_threshold < 0:
        raise ValueError(f"compress_threshold must not be negative, got {compress_threshold}")
    if not -1 <= level <= 9:
        raise ValueError(f"level must be between -1 and 9, got {level}")
    if not 1 <= mem_level <= 9:
        raise ValueError(f"mem_level must be between 1 and 9, got {mem_level}")
