"""permessage-deflate (RFC 7692): negotiation and the codec, without sockets."""

from __future__ import annotations

import itertools
import random
import tracemalloc
import zlib
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsfast.exceptions import NegotiationError, PayloadTooBig, ProtocolError
from wsfast.extensions import PerMessageDeflate, PerMessageDeflateCodec

KiB = 1024
MiB = 1024 * KiB
TAIL = b"\x00\x00\xff\xff"  # RFC 7692 §7.2.1, dropped by the sender and restored by the receiver

Params = list[tuple[str, str | None]]


def codecs(
    bits: int = 15, *, no_context_takeover: bool = False, **options: int
) -> tuple[PerMessageDeflateCodec, PerMessageDeflateCodec]:
    """A sender (the client) and a receiver (the server) agreeing on one direction."""
    sender = PerMessageDeflateCodec(
        is_server=False,
        local_no_context_takeover=no_context_takeover,
        remote_no_context_takeover=False,
        local_max_window_bits=bits,
        remote_max_window_bits=15,
        **options,
    )
    receiver = PerMessageDeflateCodec(
        is_server=True,
        local_no_context_takeover=False,
        remote_no_context_takeover=no_context_takeover,
        local_max_window_bits=15,
        remote_max_window_bits=bits,
        **options,
    )
    return sender, receiver


def negotiate(
    client: PerMessageDeflate, server: PerMessageDeflate
) -> tuple[PerMessageDeflateCodec, PerMessageDeflateCodec]:
    """Run the client's offer through the server and the response back: the client's and the server's codecs."""
    accepted = server.accept(client.offer())
    assert accepted is not None, "the server declined the offer"
    response, server_codec = accepted
    return client.confirm(response), server_codec


def negotiated(codec: PerMessageDeflateCodec) -> tuple[bool, bool, int, int]:
    """(local_no_context_takeover, remote_no_context_takeover, local bits, remote bits)."""
    return (
        codec.local_no_context_takeover,
        codec.remote_no_context_takeover,
        codec.local_max_window_bits,
        codec.remote_max_window_bits,
    )


def send(sender: PerMessageDeflateCodec, receiver: PerMessageDeflateCodec, fragments: Sequence[bytes]) -> None:
    """Compress a message fragment by fragment and check each decompresses to itself at once."""
    for index, fragment in enumerate(fragments):
        final = index == len(fragments) - 1
        assert receiver.decompress(sender.compress(fragment, final=final), final=final) == fragment


def repetitive(seed: int, size: int) -> bytes:
    """Random bytes mixed with copies of earlier stretches, at every distance."""
    rng = random.Random(seed)
    data = bytearray(rng.randbytes(64))
    while len(data) < size:
        if rng.random() < 0.5:
            data += rng.randbytes(rng.randint(1, 40))
        else:
            start = rng.randrange(len(data))
            data += data[start : start + rng.randint(3, 300)]
    return bytes(data[:size])


def far_repeats(seed: int) -> bytes:
    """Random 64-byte chunks, each repeated 100 and 300 bytes short of every window size, and 100 past it."""
    rng = random.Random(seed)
    data = bytearray()
    distances = sorted(2**bits + delta for bits in range(8, 16) for delta in (-300, -100, 100))
    for distance in (distance for distance in distances if distance > 64):
        chunk = rng.randbytes(64)
        data += chunk + bytes(distance - 64) + chunk
    return bytes(data)


# A reference RFC 1951 decoder, slow and simple, to see the back-references zlib emits.

_LENGTH_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195]
_LENGTH_BASE += [227, 258]
_LENGTH_EXTRA = [0] * 8 + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4 + [0]
_DISTANCE_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049]
_DISTANCE_BASE += [3073, 4097, 6145, 8193, 12289, 16385, 24577]
_DISTANCE_EXTRA = [0, 0, 0, 0] + [n for n in range(1, 14) for _ in range(2)]
_CODE_LENGTH_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def read(self, count: int) -> int:
        value = 0
        for shift in range(count):
            value |= (self.data[self.position >> 3] >> (self.position & 7) & 1) << shift
            self.position += 1
        return value

    def symbol(self, table: dict[tuple[int, int], int]) -> int:
        code = length = 0
        while (length, code) not in table:
            code = code << 1 | self.read(1)
            length += 1
        return table[length, code]


def _huffman(lengths: Sequence[int]) -> dict[tuple[int, int], int]:
    """RFC 1951 §3.2.2: canonical codes from code lengths."""
    table, code = {}, 0
    for length in range(1, 16):
        for symbol, symbol_length in enumerate(lengths):
            if symbol_length == length:
                table[length, code] = symbol
                code += 1
        code <<= 1
    return table


def _dynamic_tables(bits: _Bits) -> tuple[dict[tuple[int, int], int], dict[tuple[int, int], int]]:
    """RFC 1951 §3.2.7."""
    literals, distances, code_lengths = bits.read(5) + 257, bits.read(5) + 1, bits.read(4) + 4
    order = [0] * 19
    for symbol in _CODE_LENGTH_ORDER[:code_lengths]:
        order[symbol] = bits.read(3)
    table = _huffman(order)
    lengths: list[int] = []
    while len(lengths) < literals + distances:
        symbol = bits.symbol(table)
        if symbol < 16:
            lengths.append(symbol)
        elif symbol == 16:
            lengths += [lengths[-1]] * (3 + bits.read(2))
        else:
            lengths += [0] * (3 + bits.read(3) if symbol == 17 else 11 + bits.read(7))
    return _huffman(lengths[:literals]), _huffman(lengths[literals:])


def inflate_reference(stream: bytes) -> tuple[bytes, int]:
    """Decode a raw DEFLATE stream ending on a block boundary.

    Returns:
        The output and the longest back-reference distance in it.
    """
    bits, output, longest = _Bits(stream), bytearray(), 0
    while bits.position < len(stream) * 8:
        bits.read(1)  # BFINAL
        block_type = bits.read(2)
        if block_type == 0:
            bits.position = (bits.position + 7) & ~7
            size = bits.read(16)
            bits.read(16)  # NLEN
            output += stream[bits.position >> 3 : (bits.position >> 3) + size]
            bits.position += 8 * size
            continue
        if block_type == 1:
            literals = _huffman([8] * 144 + [9] * 112 + [7] * 24 + [8] * 8)
            distances = _huffman([5] * 30)
        else:
            literals, distances = _dynamic_tables(bits)
        while (symbol := bits.symbol(literals)) != 256:
            if symbol < 256:
                output.append(symbol)
                continue
            length = _LENGTH_BASE[symbol - 257] + bits.read(_LENGTH_EXTRA[symbol - 257])
            code = bits.symbol(distances)
            distance = _DISTANCE_BASE[code] + bits.read(_DISTANCE_EXTRA[code])
            longest = max(longest, distance)
            output += (output[-distance:] * (length // distance + 1))[:length]  # overlapping copies repeat
    return bytes(output), longest


# RFC 7692 §7.2.3: the examples, both directions.


def test_hello_compresses_to_the_rfc_bytes_and_back() -> None:
    """§7.2.3.1: "Hello" in one compressed DEFLATE block."""
    sender, receiver = codecs()
    assert sender.compress(b"Hello") == bytes.fromhex("f2 48 cd c9 c9 07 00")
    assert receiver.decompress(bytes.fromhex("f2 48 cd c9 c9 07 00"), final=True) == b"Hello"


def test_a_fragmented_compressed_message_decodes_fragment_by_fragment() -> None:
    """§7.2.3.1: the same payload as two frames; the continuation has RSV1 clear but is still compressed."""
    _, receiver = codecs()
    first = receiver.decompress(bytes.fromhex("f2 48 cd"), final=False)
    second = receiver.decompress(bytes.fromhex("c9 c9 07 00"), final=True)
    assert first + second == b"Hello"


def test_the_second_message_refers_back_to_the_first() -> None:
    """§7.2.3.2: with context takeover, the second "Hello" is a back-reference."""
    sender, receiver = codecs()
    assert [sender.compress(b"Hello"), sender.compress(b"Hello")] == [
        bytes.fromhex("f2 48 cd c9 c9 07 00"),
        bytes.fromhex("f2 00 11 00 00"),
    ]
    assert receiver.decompress(bytes.fromhex("f2 48 cd c9 c9 07 00"), final=True) == b"Hello"
    assert receiver.decompress(bytes.fromhex("f2 00 11 00 00"), final=True) == b"Hello"


def test_without_context_takeover_every_message_compresses_alike() -> None:
    sender, receiver = codecs(no_context_takeover=True)
    payloads = [sender.compress(b"Hello") for _ in range(3)]
    assert payloads == [bytes.fromhex("f2 48 cd c9 c9 07 00")] * 3
    assert [receiver.decompress(payload, final=True) for payload in payloads] == [b"Hello"] * 3


def test_a_stored_block_decodes() -> None:
    """§7.2.3.3: "Hello" in a DEFLATE block with no compression."""
    _, receiver = codecs()
    assert receiver.decompress(bytes.fromhex("00 05 00 fa ff 48 65 6c 6c 6f 00"), final=True) == b"Hello"


@pytest.mark.parametrize("max_size", [None, 1000])
def test_a_block_with_bfinal_set_does_not_end_the_connection_stream(max_size: int | None) -> None:
    """§7.2.3.4: a sender may flush with BFINAL=1; the messages after it still decode."""
    _, receiver = codecs()
    assert receiver.decompress(bytes.fromhex("f3 48 cd c9 c9 07 00 00"), final=True, max_size=max_size) == b"Hello"
    assert receiver.decompress(bytes.fromhex("f2 48 cd c9 c9 07 00"), final=True, max_size=max_size) == b"Hello"
    assert receiver.decompress(bytes.fromhex("f2 48 cd c9 c9 07 00"), final=True, max_size=max_size) == b"Hello"


@pytest.mark.parametrize("max_size", [None, 1000])
def test_blocks_after_a_bfinal_block_belong_to_the_same_message(max_size: int | None) -> None:
    _, receiver = codecs()
    world = zlib.compressobj(wbits=-15)
    rest = world.compress(b", world") + world.flush(zlib.Z_SYNC_FLUSH)
    assert (
        receiver.decompress(bytes.fromhex("f3 48 cd c9 c9 07 00") + rest[:-4], final=True, max_size=max_size)
        == b"Hello, world"
    )


@pytest.mark.parametrize("max_size", [None, 1000])
def test_a_back_reference_across_a_bfinal_block_fails_loudly(max_size: int | None) -> None:
    """The inflater after a BFINAL block starts empty: never a wrong message, at worst a failed one."""
    _, receiver = codecs()
    sequel = zlib.compressobj(wbits=-15, zdict=b"Hello")
    rest = sequel.compress(b"Hello") + sequel.flush(zlib.Z_SYNC_FLUSH)
    with pytest.raises(ProtocolError) as failure:
        receiver.decompress(bytes.fromhex("f3 48 cd c9 c9 07 00") + rest[:-4], final=True, max_size=max_size)
    assert failure.value.code == 1007


def test_two_deflate_blocks_in_one_message() -> None:
    """§7.2.3.5."""
    _, receiver = codecs()
    payload = bytes.fromhex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00")
    assert receiver.decompress(payload, final=True) == b"Hello"


def test_compressed_messages_decode_with_plain_zlib_the_rfc_way() -> None:
    """§7.2.2: append 00 00 ff ff to each message and inflate; the window carries over."""
    sender, _ = codecs()
    messages = [repetitive(seed, 5000) for seed in range(3)]
    oracle = zlib.decompressobj(wbits=-15)
    assert [oracle.decompress(sender.compress(message) + TAIL) for message in messages] == messages


# Fragments.


def test_fragments_compress_to_one_stream_and_each_decodes_on_arrival() -> None:
    sender, receiver = codecs()
    send(sender, receiver, [b"Hello, ", b"fragmented ", b"world"])
    send(sender, receiver, [b"Hello, ", b"again"])


def test_an_empty_message_is_one_zero_byte() -> None:
    """§7.2.1: the flush of nothing is an empty stored block; without its tail, one byte."""
    sender, receiver = codecs()
    assert sender.compress(b"") == b"\x00"
    assert receiver.decompress(b"\x00", final=True) == b""


def test_an_empty_final_fragment_still_ends_the_message() -> None:
    sender, receiver = codecs()
    send(sender, receiver, [b"Hello", b""])
    send(sender, receiver, [b"", b"", b"Hello"])
    send(sender, receiver, [b"Hello"])


# Window sizes: the compressor never reaches further back than negotiated.


@pytest.mark.parametrize("level", [1, 6, 9])
@pytest.mark.parametrize("bits", range(8, 16))
def test_back_references_use_the_negotiated_window_and_no_more(bits: int, level: int) -> None:
    """zlib refuses an 8-bit raw window; its 9-bit one never reaches back more than 250 bytes."""
    sender, _ = codecs(bits, level=level)
    data = far_repeats(0)
    third = len(data) // 3
    messages = [data[:third], data[third : 2 * third], data[2 * third :]]  # references cross messages
    output, longest = inflate_reference(b"".join(sender.compress(message) + TAIL for message in messages))
    assert output == data
    assert 2**bits - 300 <= longest <= 2**bits


message_lists = st.lists(
    st.one_of(
        st.binary(max_size=2000),
        st.builds(repetitive, st.integers(0, 1000), st.integers(0, 5000)),
    ),
    min_size=1,
    max_size=4,
)


@pytest.mark.parametrize("no_context_takeover", [False, True], ids=["takeover", "no-takeover"])
@pytest.mark.parametrize("bits", range(8, 16))
@settings(max_examples=20, deadline=None)
@given(messages=message_lists, data=st.data())
def test_random_messages_round_trip(
    bits: int, no_context_takeover: bool, messages: list[bytes], data: st.DataObject
) -> None:
    sender, receiver = codecs(bits, no_context_takeover=no_context_takeover)
    for message in messages:
        cuts = sorted(data.draw(st.lists(st.integers(0, len(message)), max_size=3)))
        bounds = [0, *cuts, len(message)]
        send(sender, receiver, [message[start:end] for start, end in itertools.pairwise(bounds)])


# Buffers.


def test_any_contiguous_buffer_compresses_like_bytes() -> None:
    numpy = pytest.importorskip("numpy")
    message = repetitive(0, 1000)
    expected = codecs()[0].compress(message)
    for buffer in (bytearray(message), memoryview(message), numpy.frombuffer(message, dtype=numpy.uint8)):
        assert codecs()[0].compress(buffer) == expected


def test_any_contiguous_buffer_decompresses_like_bytes() -> None:
    payload = codecs()[0].compress(repetitive(0, 1000))
    for buffer in (bytearray(payload), memoryview(payload), memoryview(bytearray(b"xx" + payload))[2:]):
        assert codecs()[1].decompress(buffer, final=True) == repetitive(0, 1000)


# Threshold.


def test_messages_below_the_threshold_are_not_worth_compressing() -> None:
    codec = codecs()[0]
    assert codec.compress_threshold == 128
    assert not codec.should_compress(127)
    assert codec.should_compress(128)


def test_the_threshold_is_part_of_the_negotiated_codec() -> None:
    client, server = negotiate(PerMessageDeflate(compress_threshold=0), PerMessageDeflate(compress_threshold=1000))
    assert client.should_compress(0)
    assert not server.should_compress(999)


# Limits and corrupt data.


def test_a_zip_bomb_is_stopped_without_being_inflated() -> None:
    sender, receiver = codecs()
    bomb = sender.compress(bytes(10 * MiB))
    assert len(bomb) < 20 * KiB
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooBig) as failure:
            receiver.decompress(bomb, final=True, max_size=1 * MiB)
        _, bounded_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        assert len(codecs()[1].decompress(bomb, final=True)) == 10 * MiB
        _, unbounded_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert failure.value.code == 1009
    assert bounded_peak < 4 * MiB < 10 * MiB <= unbounded_peak  # the meter sees what inflating costs


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=6), st.sampled_from([None, 1 << 20]))
def test_decompress_into_appends_what_decompress_returns(fragments: list[bytes], max_size: int | None) -> None:
    sender, receiver = codecs()
    _, into = codecs()
    output = bytearray(b"kept")
    for i, fragment in enumerate(fragments):
        final = i == len(fragments) - 1
        payload = sender.compress(fragment * 3, final=final)
        expected = receiver.decompress(payload, final=final, max_size=max_size)
        assert expected == fragment * 3
        into.decompress_into(payload, output, final=final, max_size=max_size)
    assert output == b"kept" + b"".join(fragment * 3 for fragment in fragments)


def test_decompress_into_stops_a_zip_bomb_in_fragments_at_the_limit() -> None:
    # Issue 9: each fragment inflated apart, then appended, peaked at 1.24x the limit.
    sender, receiver = codecs()
    payloads = [sender.compress(bytes(3 * MiB), final=False) for _ in range(3)]
    output = bytearray()
    receiver.decompress_into(payloads[0], output, final=False, max_size=4 * MiB)
    with pytest.raises(PayloadTooBig) as failure:
        receiver.decompress_into(payloads[1], output, final=False, max_size=4 * MiB)
    assert failure.value.code == 1009
    assert 3 * MiB <= len(output) <= 4 * MiB  # inflated in place, never a byte past the limit


@pytest.mark.parametrize("max_size, fits", [(3000, True), (2999, False)])
def test_max_size_counts_the_whole_message_across_fragments(max_size: int, fits: bool) -> None:
    sender, receiver = codecs()
    message = random.Random(1).randbytes(3000)
    payloads = [sender.compress(message[:1000], final=False), sender.compress(message[1000:2000], final=False)]
    payloads.append(sender.compress(message[2000:], final=True))
    assert receiver.decompress(payloads[0], final=False, max_size=max_size) == message[:1000]
    assert receiver.decompress(payloads[1], final=False, max_size=max_size) == message[1000:2000]
    if fits:
        assert receiver.decompress(payloads[2], final=True, max_size=max_size) == message[2000:]
    else:
        with pytest.raises(PayloadTooBig):
            receiver.decompress(payloads[2], final=True, max_size=max_size)


def test_the_size_count_restarts_with_each_message() -> None:
    sender, receiver = codecs()
    for _ in range(3):
        assert receiver.decompress(sender.compress(bytes(1000)), final=True, max_size=1000) == bytes(1000)


def test_after_a_message_too_big_the_next_one_decodes_from_scratch() -> None:
    sender, receiver = codecs(no_context_takeover=True)
    receiver.decompress(sender.compress(bytes(600), final=False), final=False, max_size=1000)
    with pytest.raises(PayloadTooBig):
        receiver.decompress(sender.compress(bytes(600), final=True), final=True, max_size=1000)
    assert receiver.decompress(sender.compress(bytes(1000)), final=True, max_size=1000) == bytes(1000)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\x07", id="reserved block type"),
        pytest.param(bytes.fromhex("00 05 00 00 00 48 65 6c 6c 6f"), id="bad stored length"),
        pytest.param(bytes.fromhex("f2 00 11 00 00"), id="reference before any data"),
    ],
)
def test_corrupt_data_fails_with_1007(payload: bytes) -> None:
    _, receiver = codecs()
    with pytest.raises(ProtocolError) as failure:
        receiver.decompress(payload, final=True)
    assert type(failure.value) is ProtocolError
    assert failure.value.code == 1007


def test_after_corrupt_data_the_next_message_decodes_from_scratch() -> None:
    sender, receiver = codecs()
    receiver.decompress(sender.compress(b"Hello", final=False), final=False)
    with pytest.raises(ProtocolError):
        receiver.decompress(b"\x07", final=True)
    assert receiver.decompress(bytes.fromhex("f2 48 cd c9 c9 07 00"), final=True) == b"Hello"


def test_reset_forgets_both_directions() -> None:
    sender, receiver = codecs()
    sender.compress(b"Hello")
    receiver.decompress(bytes.fromhex("f2 48 cd"), final=False)
    sender.reset()
    receiver.reset()
    assert sender.compress(b"Hello") == bytes.fromhex("f2 48 cd c9 c9 07 00")
    assert receiver.decompress(bytes.fromhex("f2 48 cd c9 c9 07 00"), final=True) == b"Hello"


# Negotiation: the client's offer.


@pytest.mark.parametrize(
    "config, offer",
    [
        ({}, [("client_max_window_bits", None)]),
        ({"client_max_window_bits": 10}, [("client_max_window_bits", "10")]),
        (
            {
                "server_no_context_takeover": True,
                "client_no_context_takeover": True,
                "server_max_window_bits": 9,
                "client_max_window_bits": 12,
            },
            [
                ("server_no_context_takeover", None),
                ("client_no_context_takeover", None),
                ("server_max_window_bits", "9"),
                ("client_max_window_bits", "12"),
            ],
        ),
    ],
)
def test_the_offer_always_lets_the_server_limit_the_client_window(config: dict[str, Any], offer: Params) -> None:
    assert PerMessageDeflate(**config).offer() == offer


# Negotiation: the server answers one offer.


@pytest.mark.parametrize(
    "config, offer, response, codec",
    [
        ({}, [], [], (False, False, 15, 15)),
        ({}, [("client_max_window_bits", None)], [], (False, False, 15, 15)),
        ({}, [("server_no_context_takeover", None)], [("server_no_context_takeover", None)], (True, False, 15, 15)),
        ({}, [("client_no_context_takeover", None)], [("client_no_context_takeover", None)], (False, True, 15, 15)),
        ({}, [("server_max_window_bits", "10")], [("server_max_window_bits", "10")], (False, False, 10, 15)),
        ({}, [("server_max_window_bits", "15")], [("server_max_window_bits", "15")], (False, False, 15, 15)),
        ({}, [("client_max_window_bits", "10")], [("client_max_window_bits", "10")], (False, False, 15, 10)),
        ({"server_no_context_takeover": True}, [], [("server_no_context_takeover", None)], (True, False, 15, 15)),
        ({"client_no_context_takeover": True}, [], [("client_no_context_takeover", None)], (False, True, 15, 15)),
        ({"server_max_window_bits": 11}, [], [("server_max_window_bits", "11")], (False, False, 11, 15)),
        (
            {"server_max_window_bits": 11},
            [("server_max_window_bits", "9")],
            [("server_max_window_bits", "9")],
            (False, False, 9, 15),
        ),
        (
            {"server_max_window_bits": 11},
            [("server_max_window_bits", "13")],
            [("server_max_window_bits", "11")],
            (False, False, 11, 15),
        ),
        (
            {"client_max_window_bits": 11},
            [("client_max_window_bits", None)],
            [("client_max_window_bits", "11")],
            (False, False, 15, 11),
        ),
        (
            {"client_max_window_bits": 11},
            [("client_max_window_bits", "9")],
            [("client_max_window_bits", "9")],
            (False, False, 15, 9),
        ),
        (
            {"client_max_window_bits": 11},
            [("client_max_window_bits", "13")],
            [("client_max_window_bits", "11")],
            (False, False, 15, 11),
        ),
        ({"client_max_window_bits": 15}, [], [], (False, False, 15, 15)),
        ({}, [("server_max_window_bits", "8")], [("server_max_window_bits", "8")], (False, False, 8, 15)),
    ],
)
def test_the_server_honours_the_offer_and_applies_its_config(
    config: dict[str, Any], offer: Params, response: Params, codec: tuple[bool, bool, int, int]
) -> None:
    accepted = PerMessageDeflate(**config).accept(offer)
    assert accepted is not None
    assert accepted[0] == response
    assert accepted[1].is_server
    assert negotiated(accepted[1]) == codec


@pytest.mark.parametrize(
    "offer",
    [
        pytest.param([("x_unknown", None)], id="unknown parameter"),
        pytest.param([("server_no_context_takeover", None)] * 2, id="duplicate flag"),
        pytest.param([("client_max_window_bits", None), ("client_max_window_bits", "10")], id="duplicate bits"),
        pytest.param([("server_no_context_takeover", "1")], id="value on server_no_context_takeover"),
        pytest.param([("client_no_context_takeover", "true")], id="value on client_no_context_takeover"),
        pytest.param([("server_max_window_bits", None)], id="server_max_window_bits without value"),
        *(
            pytest.param([(name, value)], id=f"{name}={value}")
            for name in ("server_max_window_bits", "client_max_window_bits")
            for value in ("7", "16", "abc", "08", "", "+9", "9.0")
        ),
    ],
)
def test_the_server_declines_a_malformed_offer(offer: Params) -> None:
    assert PerMessageDeflate().accept(offer) is None


def test_the_server_declines_an_offer_that_cannot_limit_the_client_window() -> None:
    server = PerMessageDeflate(client_max_window_bits=10)
    assert server.accept([]) is None
    assert server.accept([("client_max_window_bits", None)]) is not None


# Negotiation: the client checks the response.


@pytest.mark.parametrize(
    "config, response, codec",
    [
        ({}, [], (False, False, 15, 15)),
        ({}, [("server_no_context_takeover", None)], (False, True, 15, 15)),
        ({}, [("client_no_context_takeover", None)], (True, False, 15, 15)),
        ({}, [("server_max_window_bits", "10")], (False, False, 15, 10)),
        ({}, [("client_max_window_bits", "10")], (False, False, 10, 15)),
        ({"client_max_window_bits": 12}, [], (False, False, 12, 15)),
        ({"client_max_window_bits": 12}, [("client_max_window_bits", "9")], (False, False, 9, 15)),
        ({"client_no_context_takeover": True}, [], (True, False, 15, 15)),
        ({"server_no_context_takeover": True}, [("server_no_context_takeover", None)], (False, True, 15, 15)),
        ({"server_max_window_bits": 10}, [("server_max_window_bits", "10")], (False, False, 15, 10)),
        ({"server_max_window_bits": 10}, [("server_max_window_bits", "8")], (False, False, 15, 8)),
    ],
)
def test_the_client_adopts_the_response(
    config: dict[str, Any], response: Params, codec: tuple[bool, bool, int, int]
) -> None:
    client_codec = PerMessageDeflate(**config).confirm(response)
    assert not client_codec.is_server
    assert negotiated(client_codec) == codec


@pytest.mark.parametrize(
    "config, response",
    [
        pytest.param({}, [("x_unknown", None)], id="unknown parameter"),
        pytest.param({}, [("client_no_context_takeover", None)] * 2, id="duplicate parameter"),
        pytest.param({}, [("server_no_context_takeover", "1")], id="value on a flag"),
        pytest.param({}, [("client_max_window_bits", None)], id="client_max_window_bits without value"),
        pytest.param({}, [("server_max_window_bits", None)], id="server_max_window_bits without value"),
        pytest.param({}, [("server_max_window_bits", "16")], id="server_max_window_bits=16"),
        pytest.param({}, [("client_max_window_bits", "7")], id="client_max_window_bits=7"),
        pytest.param({"server_no_context_takeover": True}, [], id="server_no_context_takeover ignored"),
        pytest.param({"server_max_window_bits": 10}, [], id="server_max_window_bits ignored"),
        pytest.param({"server_max_window_bits": 10}, [("server_max_window_bits", "11")], id="larger server window"),
        pytest.param({"client_max_window_bits": 10}, [("client_max_window_bits", "11")], id="larger client window"),
    ],
)
def test_the_client_rejects_an_unacceptable_response(config: dict[str, Any], response: Params) -> None:
    with pytest.raises(NegotiationError):
        PerMessageDeflate(**config).confirm(response)


# Negotiation: every configuration against every other.

CONFIGS: list[dict[str, Any]] = [
    {
        "server_no_context_takeover": server_no_context_takeover,
        "client_no_context_takeover": client_no_context_takeover,
        "server_max_window_bits": server_max_window_bits,
        "client_max_window_bits": client_max_window_bits,
    }
    for server_no_context_takeover, client_no_context_takeover, server_max_window_bits, client_max_window_bits in (
        itertools.product([False, True], [False, True], [None, 8, 12], [None, 8, 12])
    )
]


@pytest.mark.parametrize("client_config", CONFIGS, ids=lambda config: "-".join(map(str, config.values())))
def test_any_two_configurations_agree_on_the_strictest_terms(client_config: dict[str, Any]) -> None:
    client = PerMessageDeflate(**client_config)
    for server_config in CONFIGS:
        server = PerMessageDeflate(**server_config)
        client_codec, server_codec = negotiate(client, server)
        server_bits = min(client.server_max_window_bits or 15, server.server_max_window_bits or 15)
        client_bits = min(client.client_max_window_bits or 15, server.client_max_window_bits or 15)
        no_server_takeover = client.server_no_context_takeover or server.server_no_context_takeover
        no_client_takeover = client.client_no_context_takeover or server.client_no_context_takeover
        assert negotiated(server_codec) == (no_server_takeover, no_client_takeover, server_bits, client_bits)
        assert negotiated(client_codec) == (no_client_takeover, no_server_takeover, client_bits, server_bits)
        for _ in range(2):
            send(client_codec, server_codec, [b"Hello, server"])
            send(server_codec, client_codec, [b"Hello, client"])


# Configuration.


@pytest.mark.parametrize(
    "setting",
    [
        {"server_max_window_bits": 7},
        {"server_max_window_bits": 16},
        {"client_max_window_bits": 7},
        {"client_max_window_bits": 16},
        {"compress_threshold": -1},
        {"level": 10},
        {"level": -2},
        {"mem_level": 0},
        {"mem_level": 10},
    ],
)
def test_a_configuration_out_of_range_is_refused(setting: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PerMessageDeflate(**setting)


@pytest.mark.parametrize(
    "setting",
    [
        {"local_max_window_bits": 7},
        {"remote_max_window_bits": 16},
        {"compress_threshold": -1},
        {"level": 10},
        {"mem_level": 0},
    ],
)
def test_a_codec_out_of_range_is_refused(setting: dict[str, Any]) -> None:
    arguments = {"local_max_window_bits": 15, "remote_max_window_bits": 15, **setting}
    with pytest.raises(ValueError):
        PerMessageDeflateCodec(
            is_server=True, local_no_context_takeover=False, remote_no_context_takeover=False, **arguments
        )


def test_reprs_show_the_terms() -> None:
    assert repr(PerMessageDeflate(client_max_window_bits=10)) == (
        "PerMessageDeflate(server_no_context_takeover=False, client_no_context_takeover=False, "
        "server_max_window_bits=None, client_max_window_bits=10, compress_threshold=128, level=6, mem_level=8)"
    )
    assert repr(codecs(9)[0]) == (
        "PerMessageDeflateCodec(is_server=False, local_no_context_takeover=False, "
        "remote_no_context_takeover=False, local_max_window_bits=9, remote_max_window_bits=15)"
    )


def test_the_extension_is_registered_as_permessage_deflate() -> None:
    assert PerMessageDeflate.name == "permessage-deflate"
