"""The kernels' contract, checked on both implementations and against references.

References are deliberately naive: a byte loop for masking, CPython's own
UTF-8 decoder for validity, hand-written RFC 6455 byte strings for frames.
"""

from __future__ import annotations

import array
import inspect
import itertools
import mmap
import os
import tracemalloc
import types
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsfast import kernels
from wsfast.exceptions import PayloadTooBig, ProtocolError
from wsfast.kernels import _py

from .conftest import IMPLS


def numpy() -> Any:
    """numpy, for the few tests that need it: they alone skip without it."""
    return pytest.importorskip("numpy")


# Every tail length of the 8-, 32- and 128-byte loops, odd sizes, large ones.
SIZES = [*range(0, 18), 29, 31, 32, 33, 63, 64, 65, 125, 126, 127, 128, 129, 255, 1000, 4097, 65535, 65536, 1 << 20]
KEY = b"\x37\xfa\x21\x3d"


def reference_mask(data: bytes, key: bytes, offset: int = 0) -> bytes:
    return bytes(b ^ key[(i + offset) % 4] for i, b in enumerate(data))


def payload(size: int) -> bytes:
    return bytes((i * 7 + 3) & 0xFF for i in range(size)) if size < 4096 else os.urandom(size)


# --- implementation choice ---------------------------------------------------


def test_exactly_one_module_chooses_the_implementation() -> None:
    expected = "python" if os.environ.get("WSFAST_PURE") or not kernels.HAS_EXTENSION else "cython"
    assert kernels.IMPLEMENTATION == expected
    assert (kernels.mask is _py.mask) == (expected == "python")


@pytest.mark.skipif(os.environ.get("WSFAST_BUILD_EXTENSION") != "yes", reason="only where the build must compile")
def test_the_compiled_extension_is_installed() -> None:
    from wsfast.kernels import _cy

    assert kernels.HAS_EXTENSION
    assert _cy.SIMD in ("avx2", "scalar")


def test_twins_have_the_same_names_and_signatures(impl: types.ModuleType) -> None:
    for name in _py.__all__:
        ours, theirs = getattr(impl, name), getattr(_py, name)
        if inspect.isfunction(theirs):
            assert str(inspect.signature(ours)) == str(inspect.signature(theirs)).replace(" -> ", " -> ") or (
                list(inspect.signature(ours).parameters) == list(inspect.signature(theirs).parameters)
            ), name


# --- mask ----------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("offset", [0, 1, 2, 3, 6])
def test_mask_equals_the_byte_loop(impl: types.ModuleType, size: int, offset: int) -> None:
    data = payload(size)
    expected = reference_mask(data, KEY, offset) if size <= 65536 else None
    result = impl.mask(data, KEY, offset)
    assert type(result) is bytes and len(result) == size
    if expected is not None:
        assert result == expected
    assert impl.mask(result, KEY, offset) == data  # masking is its own inverse


@pytest.mark.parametrize("size", [64, 95, 200, 1031])
def test_mask_is_right_at_every_alignment_of_source_and_destination(impl: types.ModuleType, size: int) -> None:
    # From 512 B on the vector loop aligns its stores first: every head length, every key
    # phase at the aligned point, and sources misaligned against the output.
    data = payload(size + 64)
    for start in range(64):
        part = memoryview(data)[start : start + size]
        expected = reference_mask(part.tobytes(), KEY, start)
        assert impl.mask(part, KEY, start) == expected
        buffer = bytearray(data)
        impl.mask_into(memoryview(buffer)[start : start + size], KEY, start)
        assert buffer[start : start + size] == expected and buffer[:start] == data[:start]


@pytest.mark.parametrize("size", [(8 << 20) - 1, (8 << 20) + 4099, 16 << 20])
def test_mask_of_many_megabytes_equals_the_pure_twin(impl: types.ModuleType, size: int) -> None:
    # From 8 MiB the compiled loop writes around the caches; the result is the same.
    data = os.urandom(size)
    expected = _py.mask(data, KEY, 1)
    assert impl.mask(data, KEY, 1) == expected
    assert impl.mask(memoryview(data)[3:], KEY, 2) == _py.mask(data[3:], KEY, 2)
    buffer = bytearray(data)
    assert impl.mask_into(buffer, KEY, 1) == (1 + size) % 4
    assert buffer == expected


@pytest.mark.parametrize(
    "convert",
    [bytes, bytearray, memoryview, lambda b: numpy().frombuffer(b, dtype="uint8"), lambda b: array.array("B", b)],
    ids=["bytes", "bytearray", "memoryview", "numpy", "array"],
)
def test_mask_accepts_any_buffer(impl: types.ModuleType, convert: object) -> None:
    data = payload(1001)
    assert impl.mask(convert(data), convert(KEY), 1) == reference_mask(data, KEY, 1)  # type: ignore[operator]


def test_mask_accepts_non_contiguous_and_multibyte_buffers(impl: types.ModuleType) -> None:
    data = payload(200)
    strided = memoryview(data)[::2]
    assert impl.mask(strided, KEY) == reference_mask(data[::2], KEY)
    words = numpy().arange(50, dtype="uint32")
    assert impl.mask(words, KEY) == reference_mask(words.tobytes(), KEY)
    with mmap.mmap(-1, 4096) as region:
        region.write(data)
        assert impl.mask(region, KEY)[:200] == reference_mask(data, KEY)


@pytest.mark.parametrize("size", SIZES)
def test_mask_into_masks_in_place_and_returns_the_next_phase(impl: types.ModuleType, size: int) -> None:
    data = payload(size)
    buffer = bytearray(data)
    assert impl.mask_into(buffer, KEY, 3) == (3 + size) % 4
    assert buffer == impl.mask(data, KEY, 3)


@pytest.mark.parametrize("chunk", [1, 3, 5, 64, 1000])
def test_mask_into_streams_in_chunks(impl: types.ModuleType, chunk: int) -> None:
    data = payload(5000)
    buffer = bytearray(data)
    view = memoryview(buffer)
    phase = 0
    for start in range(0, len(data), chunk):
        phase = impl.mask_into(view[start : start + chunk], KEY, phase)
    assert buffer == reference_mask(data, KEY)


def test_mask_into_writes_through_numpy_mmap_and_memoryview(impl: types.ModuleType) -> None:
    data = payload(999)
    floats = numpy().frombuffer(bytearray(data[:996]), dtype="float32").copy()
    impl.mask_into(floats, KEY)
    assert floats.tobytes() == reference_mask(data[:996], KEY)
    with mmap.mmap(-1, 999) as region:
        region.write(data)
        impl.mask_into(region, KEY, 2)
        assert region[:] == reference_mask(data, KEY, 2)
    buffer = bytearray(data)
    impl.mask_into(memoryview(buffer)[10:20], KEY)
    assert buffer[10:20] == reference_mask(data[10:20], KEY) and buffer[:10] == data[:10]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda m: m.mask(b"data", b"abc"), ValueError, "4 bytes"),
        (lambda m: m.mask(b"data", b"abcde"), ValueError, "4 bytes"),
        (lambda m: m.mask(b"data", b"abcd", -1), ValueError, "offset"),
        (lambda m: m.mask("text", b"abcd"), TypeError, ""),
        (lambda m: m.mask(b"data", "abcd"), TypeError, ""),
        (lambda m: m.mask(None, b"abcd"), TypeError, ""),
        (lambda m: m.mask_into(b"read-only", b"abcd"), TypeError, "writable"),
        (lambda m: m.mask_into(memoryview(bytearray(8))[::2], b"abcd"), TypeError, "contiguous"),
        (lambda m: m.mask_into(bytearray(8), b"ab"), ValueError, "4 bytes"),
        (lambda m: m.mask_into(bytearray(8), b"abcd", -4), ValueError, "offset"),
    ],
)
def test_mask_rejects_bad_arguments_precisely(
    impl: types.ModuleType, call: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message or None):
        call(impl)  # type: ignore[operator]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600), key=st.binary(min_size=4, max_size=4), offset=st.integers(0, 1000))
def test_mask_property_twins_and_reference_agree(data: bytes, key: bytes, offset: int) -> None:
    expected = reference_mask(data, key, offset)
    for module in IMPLS:
        assert module.mask(data, key, offset) == expected
        buffer = bytearray(data)
        assert module.mask_into(buffer, key, offset) == (offset + len(data)) % 4
        assert buffer == expected


# --- UTF-8 ---------------------------------------------------------------------

VALID_TEXTS = [
    "",
    "Hello, world",
    "Grüße, café 😀 naïve",
    "漢字かな混じり文",
    "\x00\x7f\x80\u07ff\u0800\uffff\U00010000\U0010ffff",
    "\ud7ff\ue000",
    "κόσμε" * 40,
    "a" * 100 + "é" + "b" * 100,
]

# (bytes, index of the first byte that makes them invalid)
INVALID = [
    (b"\x80", 0),  # lone continuation
    (b"\xbf", 0),
    (b"a\x80b", 1),
    (b"\xc0\x80", 0),  # overlong NUL (C0 and C1 can never start valid UTF-8)
    (b"\xc1\xbf", 0),
    (b"\xe0\x80\x80", 1),  # overlong 3-byte
    (b"\xe0\x9f\xbf", 1),
    (b"\xf0\x80\x80\x80", 1),  # overlong 4-byte
    (b"\xf0\x8f\xbf\xbf", 1),
    (b"\xed\xa0\x80", 1),  # surrogates U+D800..U+DFFF
    (b"\xed\xbf\xbf", 1),
    (b"\xed\xa0\x80\xed\xb0\x80", 1),  # CESU-8 surrogate pair
    (b"\xf4\x90\x80\x80", 1),  # U+110000
    (b"\xf5\x80\x80\x80", 0),
    (b"\xf7\xbf\xbf\xbf", 0),
    (b"\xf8\x88\x80\x80\x80", 0),  # 5-byte form
    (b"\xfc\x84\x80\x80\x80\x80", 0),  # 6-byte form
    (b"\xfe", 0),
    (b"\xff", 0),
    (b"\xc2\x41", 1),  # truncated sequences followed by ASCII
    (b"\xe2\x82\x41", 2),
    (b"\xf0\x9f\x98\x41", 3),
    (b"\xc2\xc2\x80", 1),  # a lead where a continuation belongs
    (b"\xe2\x82\xac\x80", 3),  # one continuation too many
    ("κόσμε".encode() + b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", 22),
]
TRUNCATED = [b"\xc2", b"\xe2\x82", b"\xf0\x9f\x98", b"abc\xf0\x9f", b"\xe0\xa0"]


def decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


COMPLETIONS = [bytes(tail) for n in range(4) for tail in itertools.product((0x80, 0x90, 0xA0), repeat=n)]


def first_invalid_byte(data: bytes) -> int | None:
    """The naive reference: the first byte after which no valid UTF-8 text could follow."""
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError as exc:
        start = exc.start
    for end in range(start + 1, min(start + 4, len(data)) + 1):
        partial = data[start:end]
        if not any(decodes(partial + tail) for tail in COMPLETIONS if len(partial + tail) <= 4):
            return end - 1
    return None  # only cut short by the end of the data


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize("text", VALID_TEXTS)
def test_valid_texts_validate(impl: types.ModuleType, text: str) -> None:
    data = text.encode()
    assert impl.validate_utf8(data) is True
    assert impl.validate_utf8(bytearray(data)) is True
    assert impl.validate_utf8(memoryview(data)) is True
    assert impl.Utf8Validator().validate(data) == (True, True, len(data), len(data))


@pytest.mark.parametrize(("data", "index"), INVALID)
def test_invalid_sequences_fail_at_the_first_bad_byte(impl: types.ModuleType, data: bytes, index: int) -> None:
    assert first_invalid_byte(data) == index  # the reference agrees with the table
    assert impl.validate_utf8(data) is False
    assert impl.Utf8Validator().validate(data) == (False, False, index, index)


@pytest.mark.parametrize(("data", "index"), INVALID)
@pytest.mark.parametrize("padding", [0, 61, 64, 200])
def test_invalid_sequences_are_found_by_the_vector_path(
    impl: types.ModuleType, data: bytes, index: int, padding: int
) -> None:
    """Long inputs take the bulk (SIMD) path; the failing index must not move."""
    text = ("é" * padding).encode()[:padding]
    text = text[: len(text) - len(text) % 2]
    long = text + data + b"x" * 100
    assert impl.validate_utf8(long) is False
    assert impl.Utf8Validator().validate(long)[:3] == (False, False, len(text) + index)


@pytest.mark.parametrize("data", TRUNCATED)
def test_truncated_text_is_invalid_whole_but_open_incrementally(impl: types.ModuleType, data: bytes) -> None:
    assert impl.validate_utf8(data) is False
    assert impl.Utf8Validator().validate(data) == (True, False, len(data), len(data))


@pytest.mark.parametrize("text", VALID_TEXTS[1:])
def test_every_split_of_a_valid_text_validates(impl: types.ModuleType, text: str) -> None:
    data = text.encode()
    for cut in range(len(data) + 1):
        validator = impl.Utf8Validator()
        first = validator.validate(data[:cut])
        assert first[:1] == (True,) and first[2:] == (cut, cut)
        assert validator.validate(data[cut:]) == (True, True, len(data) - cut, len(data))


def test_byte_by_byte_validation_reports_code_point_ends(impl: types.ModuleType) -> None:
    data = "a€😀".encode()  # 1 + 3 + 4 bytes
    validator = impl.Utf8Validator()
    ends = [validator.validate(data[i : i + 1])[1] for i in range(len(data))]
    assert ends == [True, False, False, True, False, False, False, True]


def test_a_failed_validator_stays_failed_until_reset(impl: types.ModuleType) -> None:
    validator = impl.Utf8Validator()
    assert validator.validate(b"ab\xff") == (False, False, 2, 2)
    assert validator.validate(b"more") == (False, False, 0, 2)
    validator.reset()
    assert validator.validate(b"ok") == (True, True, 2, 2)


def test_the_failing_byte_is_reported_in_the_chunk_that_holds_it(impl: types.ModuleType) -> None:
    validator = impl.Utf8Validator()
    assert validator.validate(b"abc\xed") == (True, False, 4, 4)
    assert validator.validate(b"\xa0\x80") == (False, False, 0, 4)  # surrogate detected at its 2nd byte


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_utf8_property_random_bytes(data: bytes) -> None:
    valid, bad = is_utf8(data), first_invalid_byte(data)
    for module in IMPLS:
        assert module.validate_utf8(data) is valid
        result = module.Utf8Validator().validate(data)
        if bad is None:
            assert result[0] is True and result[1] is valid and result[2:] == (len(data), len(data))
        else:
            assert result == (False, False, bad, bad)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200), junk=st.binary(max_size=4), cuts=st.lists(st.integers(0, 1000), max_size=5))
def test_utf8_property_text_with_junk_in_random_chunks(text: str, junk: bytes, cuts: list[int]) -> None:
    data = text.encode("utf-8", "surrogatepass") + junk + text.encode("utf-8", "surrogatepass")
    bad = first_invalid_byte(data)
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for module in IMPLS:
        validator = module.Utf8Validator()
        for start, end in zip(bounds, bounds[1:], strict=False):
            valid, _, index, total = validator.validate(data[start:end])
            if not valid:
                assert bad is not None and total == bad and index == bad - start
                break
        else:
            assert bad is None
        assert module.validate_utf8(data) is is_utf8(data)


# --- frame headers ---------------------------------------------------------------

# RFC 6455 §5.7, with the masking key of its examples.
RFC_EXAMPLES = [
    (b"\x81\x05\x48\x65\x6c\x6c\x6f", 0x1, b"Hello", True, None),
    (b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 0x1, b"Hello", True, KEY),
    (b"\x01\x03\x48\x65\x6c", 0x1, b"Hel", False, None),
    (b"\x80\x02\x6c\x6f", 0x0, b"lo", True, None),
    (b"\x89\x05\x48\x65\x6c\x6c\x6f", 0x9, b"Hello", True, None),
    (b"\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 0xA, b"Hello", True, KEY),
    (b"\x82\x7e\x01\x00" + bytes(256), 0x2, bytes(256), True, None),
    (b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00" + bytes(65536), 0x2, bytes(65536), True, None),
]


@pytest.mark.parametrize(("wire", "opcode", "data", "fin", "key"), RFC_EXAMPLES)
def test_rfc_6455_examples_build_and_parse(
    impl: types.ModuleType, wire: bytes, opcode: int, data: bytes, fin: bool, key: bytes | None
) -> None:
    assert impl.build_frame(opcode, data, fin=fin, mask_key=key) == wire
    header = impl.frame_header(opcode, len(data), fin=fin, mask_key=key)
    assert wire.startswith(header)
    assert impl.parse_header(wire) == (fin, 0, opcode, key is not None, len(data), key, len(header))
    assert impl.FrameParser(masked=key is not None).feed(wire) == [_py.Frame(opcode, data, fin, 0)]


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 2**32 - 1, 2**32, 2**32 + 5, 2**63 - 1])
@pytest.mark.parametrize("key", [None, KEY])
def test_headers_round_trip_in_every_length_class(impl: types.ModuleType, length: int, key: bytes | None) -> None:
    header = impl.frame_header(0x2, length, fin=False, rsv=5, mask_key=key)
    expected_size = (2 if length < 126 else 4 if length < 65536 else 10) + (4 if key else 0)
    assert len(header) == expected_size
    assert impl.parse_header(b"junk" + header, 4) == (False, 5, 0x2, key is not None, length, key, expected_size)
    for cut in range(expected_size):
        assert impl.parse_header(header[:cut]) is None


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"\x83\x00", "reserved opcode"),
        (b"\x87\x00", "reserved opcode"),
        (b"\x8b\x00", "reserved opcode"),
        (b"\x8f\x00", "reserved opcode"),
        (b"\x09\x00", "fragmented control"),
        (b"\x89\x7e\x00\x7e", "125"),
        (b"\x88\x7f" + (200).to_bytes(8, "big"), "125"),
        (b"\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00", "most significant bit"),
    ],
)
def test_header_rules_raise_protocol_error(impl: types.ModuleType, wire: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as info:
        impl.parse_header(wire)
    assert info.value.code == 1002


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"opcode": 16, "length": 0}, "opcode"),
        ({"opcode": -1, "length": 0}, "opcode"),
        ({"opcode": 1, "length": 0, "rsv": 8}, "rsv"),
        ({"opcode": 1, "length": -1}, "length"),
        ({"opcode": 1, "length": 2**63}, "length"),
        ({"opcode": 9, "length": 126}, "control"),
        ({"opcode": 8, "length": 2, "fin": False}, "control"),
        ({"opcode": 1, "length": 2, "mask_key": b"abc"}, "4 bytes"),
    ],
)
def test_frame_header_rejects_bad_arguments(impl: types.ModuleType, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        impl.frame_header(**kwargs)


def test_build_frame_masks_any_buffer(impl: types.ModuleType) -> None:
    data = numpy().arange(300, dtype="uint16")
    frame = impl.build_frame(0x2, data, mask_key=KEY)
    assert frame[:8] == b"\x82\xfe\x02\x58" + KEY
    assert frame[8:] == reference_mask(data.tobytes(), KEY)


# --- FrameParser ----------------------------------------------------------------


def masked_stream(frames: list[tuple[int, bytes, bool]], key: bytes = KEY) -> bytes:
    return b"".join(_py.build_frame(op, data, fin=fin, mask_key=key) for op, data, fin in frames)


STREAM = [(0x1, b"Hello", True), (0x9, b"", True), (0x2, payload(300), False), (0x0, payload(70000), True)]


@pytest.mark.parametrize("chunk", [1, 2, 7, 13, 64, 1000, 65536, 1 << 20])
def test_frame_parser_returns_every_frame_whatever_the_cuts(impl: types.ModuleType, chunk: int) -> None:
    stream = masked_stream(STREAM)
    parser = impl.FrameParser(masked=True)
    frames = []
    for start in range(0, len(stream), chunk):
        frames += parser.feed(stream[start : start + chunk])
    assert frames == [_py.Frame(op, data, fin, 0) for op, data, fin in STREAM]
    assert all(type(frame.payload) is bytes for frame in frames)
    assert parser.buffered == 0


def test_frame_parser_streams_a_large_frame_into_its_payload(impl: types.ModuleType) -> None:
    data = payload(1 << 20)
    stream = _py.build_frame(0x2, data, mask_key=KEY)
    parser = impl.FrameParser(masked=True)
    frames = []
    for start in range(0, len(stream), 65536):
        frames += parser.feed(memoryview(stream)[start : start + 65536])
    assert frames == [_py.Frame(0x2, data, True, 0)]


def test_frame_parser_holds_what_arrived_not_what_a_header_announces(impl: types.ModuleType) -> None:
    # Issue 9: the compiled twin reserved 16 MiB per header, 800 MiB for 50 parsers.
    wire = _py.frame_header(0x2, 16 << 20, mask_key=KEY) + bytes(24)
    tracemalloc.start()
    try:
        parsers = [impl.FrameParser(masked=True) for _ in range(50)]
        for parser in parsers:
            assert parser.feed(wire) == []
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 8 << 20  # 50 x 16 MiB before the fix
    assert all(parser.buffered == len(wire) for parser in parsers)


def test_a_large_frame_in_many_reads_ends_as_its_exact_payload(impl: types.ModuleType) -> None:
    data = payload(3_000_017)
    stream = _py.build_frame(0x2, data, mask_key=KEY)
    parser = impl.FrameParser(masked=True)
    frames = []
    for start in range(0, len(stream), 4093):
        frames += parser.feed(stream[start : start + 4093])
        assert parser.buffered == min(start + 4093, len(stream)) % len(stream)
    assert frames == [_py.Frame(0x2, data, True, 0)] and type(frames[0].payload) is bytes


@pytest.mark.parametrize("size", [1000, 70_000, 300_000])
@pytest.mark.parametrize("masked", [True, False], ids=["masked", "unmasked"])
def test_partial_shows_the_payload_received_so_far(impl: types.ModuleType, size: int, masked: bool) -> None:
    data = payload(size)
    stream = _py.build_frame(0x1, data, fin=False, mask_key=KEY if masked else None)
    parser = impl.FrameParser(masked=masked)
    assert parser.partial() is None
    parser.feed(stream[:1])
    assert parser.partial() is None  # no whole header yet
    seen = b""
    for start in range(1, len(stream) - 1, 9_999):
        parser.feed(stream[start : min(start + 9_999, len(stream) - 1)])
        frame = parser.partial(len(seen))
        assert frame is not None and (frame.opcode, frame.fin, frame.rsv) == (0x1, False, 0)
        seen += frame.payload
    assert seen == data[:-1]
    assert parser.partial(size + 5).payload == b""
    assert parser.partial(None) == _py.Frame(0x1, b"", False, 0)  # the header alone, nothing copied
    assert parser.feed(stream[-1:]) == [_py.Frame(0x1, data, False, 0)]
    assert parser.partial() is None


def test_partial_rejects_a_negative_start_and_is_none_after_a_violation(impl: types.ModuleType) -> None:
    parser = impl.FrameParser(masked=True)
    with pytest.raises(ValueError, match="start must be >= 0, got -1"):
        parser.partial(-1)
    with pytest.raises(ProtocolError, match="unmasked client frame"):
        parser.feed(_py.frame_header(0x1, 10) + b"abc")
    assert parser.partial() is None


def test_frame_parser_reads_unmasked_server_frames(impl: types.ModuleType) -> None:
    stream = b"".join(_py.build_frame(op, data, fin=fin) for op, data, fin in STREAM)
    assert impl.FrameParser(masked=False).feed(bytearray(stream)) == [_py.Frame(*f, 0) for f in STREAM]


@pytest.mark.parametrize(
    ("masked", "wire", "error", "code"),
    [
        (True, b"\x81\x05Hello", "unmasked client frame", 1002),
        (False, b"\x81\x85" + KEY + b"Hello", "masked server frame", 1002),
        (True, b"\xc1\x80" + KEY, "RSV", 1002),
        (True, b"\x83\x80" + KEY, "reserved opcode", 1002),
        (True, b"\x82\xff\x00\x00\x00\x00\x10\x00\x00\x01" + KEY, "exceeds the limit", 1009),
    ],
)
def test_frame_parser_enforces_frame_rules(
    impl: types.ModuleType, masked: bool, wire: bytes, error: str, code: int
) -> None:
    parser = impl.FrameParser(masked=masked)
    with pytest.raises(ProtocolError, match=error) as info:
        parser.feed(wire)
    assert info.value.code == code
    with pytest.raises(ProtocolError):
        parser.feed(b"")  # a failed parser stays failed


def test_frame_parser_rejects_too_big_frames_as_soon_as_the_header_arrives(impl: types.ModuleType) -> None:
    parser = impl.FrameParser(masked=True, max_frame_size=1000)
    with pytest.raises(PayloadTooBig):
        parser.feed(_py.frame_header(0x2, 1001, mask_key=KEY))
    assert impl.FrameParser(masked=True, max_frame_size=1000).feed(_py.build_frame(2, bytes(1000), mask_key=KEY))


def test_frame_parser_allows_negotiated_rsv_bits(impl: types.ModuleType) -> None:
    parser = impl.FrameParser(masked=True, rsv_allowed=4)
    assert parser.feed(_py.build_frame(0x1, b"x", rsv=4, mask_key=KEY)) == [_py.Frame(1, b"x", True, 4)]
    with pytest.raises(ProtocolError, match="RSV"):
        parser.feed(_py.build_frame(0x1, b"x", rsv=2, mask_key=KEY))


def test_frames_before_a_violation_are_returned_first(impl: types.ModuleType) -> None:
    parser = impl.FrameParser(masked=True)
    good = masked_stream([(0x1, b"one", True), (0x1, b"two", True)])
    assert parser.feed(good + b"\x81\x03bad") == [_py.Frame(1, b"one", True, 0), _py.Frame(1, b"two", True, 0)]
    assert isinstance(parser.error, ProtocolError)
    with pytest.raises(ProtocolError, match="unmasked"):
        parser.feed(b"")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"max_frame_size": -1}, ValueError), ({"rsv_allowed": 8}, ValueError)],
)
def test_frame_parser_rejects_bad_arguments(impl: types.ModuleType, kwargs: dict[str, int], error: type) -> None:
    with pytest.raises(error):
        impl.FrameParser(masked=True, **kwargs)


frame_specs = st.lists(
    st.one_of(
        st.tuples(st.sampled_from([0x0, 0x1, 0x2]), st.binary(max_size=70000), st.booleans()),
        st.tuples(st.sampled_from([0x8, 0x9, 0xA]), st.binary(max_size=125), st.just(True)),
    ),
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(frames=frame_specs, cuts=st.lists(st.integers(0, 1 << 20), max_size=8), key=st.binary(min_size=4, max_size=4))
def test_frame_parser_property_twins_agree_on_any_stream(
    frames: list[tuple[int, bytes, bool]], cuts: list[int], key: bytes
) -> None:
    stream = masked_stream(frames, key)
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    expected = [_py.Frame(op, data, fin, 0) for op, data, fin in frames]
    for module in IMPLS:
        parser = module.FrameParser(masked=True)
        parsed = []
        for start, end in zip(bounds, bounds[1:], strict=False):
            parsed += parser.feed(stream[start:end])
        assert parsed == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_frame_parser_property_garbage_never_crashes(data: bytes) -> None:
    outcomes = []
    for module in IMPLS:
        try:
            outcomes.append([(f.opcode, f.payload, f.fin, f.rsv) for f in module.FrameParser(masked=True).feed(data)])
        except ProtocolError as exc:
            outcomes.append((type(exc), exc.code))
    assert all(outcome == outcomes[0] for outcome in outcomes)
