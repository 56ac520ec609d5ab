"""permessage-deflate's decoder, on both twins: messages back, bounded, with precise failures.

``tests/test_extensions.py`` checks the codec around it end to end; here each
``Inflater`` twin is driven directly, against zlib as the reference sender.
"""

from __future__ import annotations

import importlib.util
import os
import random
import zlib

import pytest

from wsfast import _inflate_py, extensions, kernels
from wsfast.exceptions import PayloadTooBig, ProtocolError

TWINS = [_inflate_py.Inflater]
if importlib.util.find_spec("wsfast._inflate_c") is not None:
    from wsfast import _inflate_c

    TWINS.append(_inflate_c.Inflater)

KiB = 1024
MiB = 1024 * KiB


@pytest.fixture(params=TWINS, ids=["py", "c"][: len(TWINS)])
def inflater_cls(request: pytest.FixtureRequest) -> type:
    return request.param  # type: ignore[no-any-return]


def compressor(bits: int = 15) -> zlib._Compress:
    return zlib.compressobj(6, zlib.DEFLATED, -max(bits, 9))


def deflate(comp: zlib._Compress, data: bytes, final: bool = True) -> bytes:
    """One frame's payload as a sender makes it (RFC 7692 §7.2.1)."""
    wire = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
    return wire[:-4] if final else wire


def text(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "délta", "ε", "日本", '{"k": 1}']
    out = " ".join(rng.choice(words) for _ in range(size // 3)).encode()
    return out[:size].decode("utf-8", "ignore").encode()


def test_the_codec_uses_the_compiled_twin_when_the_extension_is_used() -> None:
    compiled = kernels.IMPLEMENTATION == "cython" and len(TWINS) == 2
    assert (extensions.Inflater is not _inflate_py.Inflater) is compiled


@pytest.mark.parametrize("size", [0, 1, 1000, 70 * KiB, 3 * MiB])
def test_a_whole_message_comes_back_as_bytes_or_text(inflater_cls: type, size: int) -> None:
    comp, inflater = compressor(), inflater_cls(15, False)
    data = text(size)
    assert inflater.message(deflate(comp, data), 4 * MiB, True) == data.decode()
    random_bytes = os.urandom(size)  # stored blocks
    assert inflater.message(deflate(comp, random_bytes), 4 * MiB, False) == random_bytes


def test_the_window_carries_over_between_messages_unless_the_peer_resets_it(inflater_cls: type) -> None:
    data = text(2000)
    comp = compressor()
    first, second = deflate(comp, data), deflate(comp, data)
    assert len(second) < len(first) // 4  # the second refers back into the first
    inflater = inflater_cls(15, False)
    assert inflater.message(first, MiB, False) == data
    assert inflater.message(second, MiB, False) == data
    forgetful = inflater_cls(15, True)
    assert forgetful.message(first, MiB, False) == data
    with pytest.raises(ProtocolError) as failure:
        forgetful.message(second, MiB, False)  # its window was emptied
    assert failure.value.code == 1007


@pytest.mark.parametrize("bits", [8, 9, 12, 15])
def test_every_window_size(inflater_cls: type, bits: int) -> None:
    comp, inflater = compressor(bits), inflater_cls(bits, False)
    for seed in range(3):
        data = text(5000, seed)
        assert inflater.message(deflate(comp, data), MiB, False) == data


def test_fragments_are_decoded_in_order_and_counted_together(inflater_cls: type) -> None:
    comp, inflater = compressor(), inflater_cls(15, False)
    data = text(30000)
    parts = [data[:10000], data[10000:20000], data[20000:]]
    wires = [deflate(comp, part, final=i == 2) for i, part in enumerate(parts)]
    got = b"".join(inflater.decompress(wire, i == 2, 30000, None) for i, wire in enumerate(wires))
    assert got == data
    comp, inflater = compressor(), inflater_cls(15, False)
    wires = [deflate(comp, part, final=i == 2) for i, part in enumerate(parts)]
    inflater.decompress(wires[0], False, 29999, None)
    inflater.decompress(wires[1], False, 29999, None)
    with pytest.raises(PayloadTooBig):
        inflater.decompress(wires[2], True, 29999, None)


def test_fragments_append_to_a_bytearray(inflater_cls: type) -> None:
    comp, inflater = compressor(), inflater_cls(15, False)
    data = text(100 * KiB)
    out = bytearray(b"head:")
    assert inflater.decompress(deflate(comp, data[:50000], final=False), False, None, out) == b""
    assert inflater.decompress(deflate(comp, data[50000:]), True, None, out) == b""
    assert out == b"head:" + data


@pytest.mark.parametrize("size", [999, 1000, 1001])
def test_the_limit_is_exact(inflater_cls: type, size: int) -> None:
    comp, inflater = compressor(), inflater_cls(15, False)
    data = text(size)
    if len(data) <= 1000:
        assert inflater.message(deflate(comp, data), 1000, False) == data
    else:
        with pytest.raises(PayloadTooBig) as failure:
            inflater.message(deflate(comp, data), 1000, False)
        assert failure.value.code == 1009


def test_a_zip_bomb_stops_one_byte_past_the_limit_and_keeps_none_of_it(inflater_cls: type) -> None:
    comp, inflater = compressor(), inflater_cls(15, False)
    bomb = deflate(comp, bytes(64 * MiB))
    with pytest.raises(PayloadTooBig):
        inflater.message(bomb, MiB, False)
    out = bytearray()
    with pytest.raises(PayloadTooBig):
        inflater.decompress(bomb, True, MiB, out)
    assert len(out) <= MiB
    # The failed message is forgotten: a fresh peer's next message decodes.
    assert inflater.message(deflate(compressor(), b"after"), MiB, False) == b"after"


def test_corrupt_data_fails_with_1007_and_a_reason(inflater_cls: type) -> None:
    inflater = inflater_cls(15, False)
    with pytest.raises(ProtocolError, match=r"invalid compressed data: Error -3 .*: invalid block type") as failure:
        inflater.message(b"\xff\xff\xff", MiB, False)
    assert failure.value.code == 1007


def test_invalid_utf8_text_raises_unicode_decode_error(inflater_cls: type) -> None:
    inflater = inflater_cls(15, False)
    with pytest.raises(UnicodeDecodeError):
        inflater.message(deflate(compressor(), b"ok \xff"), MiB, True)
    assert inflater.message(deflate(compressor(), b"ok \xff"), MiB, False) == b"ok \xff"


def test_a_bfinal_block_inside_a_message_starts_a_new_stream(inflater_cls: type) -> None:
    # RFC 7692 §7.2.3.4: a whole zlib stream (BFINAL set), then more blocks.
    first = zlib.compressobj(6, zlib.DEFLATED, -15)
    head = first.compress(b"one ") + first.flush(zlib.Z_FINISH)
    tail = deflate(compressor(), b"two")
    inflater = inflater_cls(15, False)
    assert inflater.message(head + tail, MiB, False) == b"one two"
    assert inflater.decompress(head, False, MiB, None) + inflater.decompress(tail, True, MiB, None) == b"one two"


def test_any_contiguous_buffer_is_read_in_place(inflater_cls: type) -> None:
    data = text(3000)
    wire = deflate(compressor(), data)
    for buffer in (bytearray(wire), memoryview(wire)):
        assert inflater_cls(15, False).message(buffer, MiB, False) == data


def test_bad_window_bits_are_refused(inflater_cls: type) -> None:
    with pytest.raises(ValueError, match="window_bits"):
        inflater_cls(7, False)
