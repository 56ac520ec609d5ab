"""The kernels' twins, side by side: same names, same results, same errors.

Every public function, class, method, attribute and property of
``wsfast.kernels._py`` is called on both twins with the same
hypothesis-drawn arguments, valid and invalid, and the outcomes must be
equal: the result, or the exception's type and message. The only messages
not compared are those of a ``TypeError`` for an argument of the wrong type,
which CPython and Cython word differently (and which are not ours).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsfast.kernels import _py

_cy = pytest.importorskip("wsfast.kernels._cy", reason="the compiled twin is not built")

SETTINGS = settings(max_examples=300, deadline=None)

# --- outcomes ------------------------------------------------------------------------


def normalized(value: Any) -> Any:
    """``value`` with each twin's own types replaced by plain data."""
    if isinstance(value, (_py.Frame, _cy.Frame)):
        return ("Frame", value.opcode, type(value.payload), value.payload, value.fin, value.rsv)
    if isinstance(value, (list, tuple)):
        return type(value).__name__, [normalized(item) for item in value]
    if isinstance(value, Exception):
        return error(value)
    if type(value).__module__ in (_py.__name__, _cy.__name__):
        return type(value).__name__  # a twin's object: compared through its methods
    return type(value).__name__, value


def error(exc: BaseException) -> tuple[Any, ...]:
    message = str(exc)
    if isinstance(exc, TypeError) and not message.startswith("mask_into()"):
        return (TypeError,)  # an argument of the wrong type: worded by the interpreter, not by us
    return (type(exc), message, getattr(exc, "code", None))


def outcome(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """What calling ``function`` gives: its normalized result, or its error."""
    try:
        return normalized(function(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - the exception is the outcome
        return error(exc)


def both(name: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``name`` of both twins; assert the outcomes are equal; return it."""
    expected = outcome(getattr(_py, name), *args, **kwargs)
    assert outcome(getattr(_cy, name), *args, **kwargs) == expected, (name, args, kwargs)
    return expected


# --- the surface ---------------------------------------------------------------------


def public(obj: object) -> set[str]:
    return {name for name in dir(obj) if not name.startswith("_")}


def test_the_twins_have_the_same_public_names() -> None:
    assert set(_py.__all__) <= public(_cy)
    for name in _py.__all__:
        ours = getattr(_py, name)
        if isinstance(ours, type):
            assert public(getattr(_cy, name)) == public(ours), name
    assert _cy.DEFAULT_MAX_FRAME_SIZE == _py.DEFAULT_MAX_FRAME_SIZE


# --- arguments -----------------------------------------------------------------------

buffers = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(bytearray),
    st.binary(max_size=300).map(memoryview),
    st.binary(min_size=2, max_size=300).map(lambda b: memoryview(b)[::2]),  # not contiguous
)
keys = st.one_of(st.binary(min_size=4, max_size=4), st.binary(max_size=6), st.just("abcd"), st.none())
offsets = st.one_of(st.integers(-3, 12), st.just(1 << 40), st.just("1"))
anything = st.one_of(st.none(), st.integers(-3, 20), st.booleans(), st.text(max_size=3), st.binary(max_size=3))


@SETTINGS
@given(data=st.one_of(buffers, anything), key=keys, offset=offsets)
def test_mask(data: Any, key: Any, offset: Any) -> None:
    both("mask", data, key, offset)


@SETTINGS
@given(data=st.binary(max_size=300), writable=st.sampled_from(["bytearray", "bytes", "strided"]), key=keys)
def test_mask_into(data: bytes, writable: str, key: Any) -> None:
    def buffer() -> Any:
        if writable == "bytearray":
            return bytearray(data)
        if writable == "strided":
            return memoryview(bytearray(data + data))[::2]
        return data

    results = []
    for module in (_py, _cy):
        target = buffer()
        results.append((outcome(module.mask_into, target, key, 1), bytes(target)))
    assert results[0] == results[1]


@SETTINGS
@given(data=st.one_of(buffers, anything))
def test_validate_utf8(data: Any) -> None:
    both("validate_utf8", data)


@SETTINGS
@given(
    chunks=st.lists(st.one_of(st.binary(max_size=8), st.text(max_size=4).map(str.encode), anything), max_size=8),
    args=st.lists(anything, max_size=1),
)
def test_utf8_validator(chunks: list[Any], args: list[Any]) -> None:
    validators = [outcome(module.Utf8Validator, *args) for module in (_py, _cy)]
    assert [type(v) for v in validators] == [type(validators[0])] * 2
    if args:
        return  # both refused the argument
    pure, compiled = _py.Utf8Validator(), _cy.Utf8Validator()
    for chunk in chunks + [None]:
        if chunk is None:
            pure.reset()
            compiled.reset()
            continue
        assert outcome(compiled.validate, chunk) == outcome(pure.validate, chunk), chunk


headers = st.one_of(
    st.binary(max_size=16),
    st.builds(
        lambda opcode, length, fin, rsv, key: _py.frame_header(opcode, length, fin=fin, rsv=rsv, mask_key=key),
        st.sampled_from([0, 1, 2, 3, 7]),
        st.sampled_from([0, 125, 126, 65535, 65536, 1 << 40]),
        st.booleans(),
        st.integers(0, 7),
        st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
    ),
    st.binary(min_size=2, max_size=14).map(lambda b: bytes([0x88, 0x7E]) + b),  # control frames over 125 bytes
)


@SETTINGS
@given(buffer=headers, offset=offsets, cut=st.integers(0, 14))
def test_parse_header(buffer: bytes, offset: Any, cut: int) -> None:
    both("parse_header", buffer, offset)
    both("parse_header", buffer[:cut])


@SETTINGS
@given(
    opcode=st.one_of(st.integers(-1, 16), anything),
    length=st.one_of(st.sampled_from([-1, 0, 125, 126, 65535, 65536, 1 << 63, (1 << 63) - 1]), anything),
    fin=st.booleans(),
    rsv=st.integers(-1, 8),
    key=keys,
)
def test_frame_header(opcode: Any, length: Any, fin: bool, rsv: int, key: Any) -> None:
    both("frame_header", opcode, length, fin=fin, rsv=rsv, mask_key=key)


@SETTINGS
@given(
    opcode=st.one_of(st.integers(-1, 16), anything),
    payload=st.one_of(buffers, anything),
    fin=st.booleans(),
    rsv=st.integers(-1, 8),
    key=keys,
)
def test_build_frame(opcode: Any, payload: Any, fin: bool, rsv: int, key: Any) -> None:
    both("build_frame", opcode, payload, fin=fin, rsv=rsv, mask_key=key)


# --- Frame ---------------------------------------------------------------------------


@SETTINGS
@given(opcode=st.one_of(st.integers(0, 15), anything), payload=st.one_of(buffers, anything), rsv=st.integers(0, 7))
def test_frame(opcode: Any, payload: Any, rsv: int) -> None:
    made = both("Frame", opcode, payload, True, rsv)
    if made[0] != "Frame":
        return
    frames = [module.Frame(opcode, payload, True, rsv) for module in (_py, _cy)]
    assert repr(frames[0]) == repr(frames[1])
    assert frames[0] == frames[1] and frames[1] == frames[0]
    assert frames[0] != object() and frames[1] != object()
    for frame in frames:
        with pytest.raises(TypeError):
            hash(frame)
    for attribute in ("opcode", "payload", "fin", "rsv"):
        refused = [outcome(setattr, frame, attribute, getattr(frame, attribute))[0] for frame in frames]
        assert refused == [AttributeError, AttributeError], attribute  # frames are immutable


# --- FrameParser ---------------------------------------------------------------------

frames_on_the_wire = st.lists(
    st.builds(
        lambda opcode, payload, fin, rsv, masked: _py.build_frame(
            opcode, payload, fin=fin or opcode >= 8, rsv=rsv, mask_key=b"\x01\x02\x03\x04" if masked else None
        ),
        st.sampled_from([0, 1, 2, 3, 8, 9, 10]),
        st.one_of(st.binary(max_size=130), st.binary(min_size=65_000, max_size=70_000)),
        st.booleans(),
        st.sampled_from([0, 0, 0, 4, 2]),
        st.just(True) | st.booleans(),
    ).filter(lambda frame: len(frame) > 0),
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(
    wire=frames_on_the_wire,
    garbage=st.binary(max_size=20),
    cuts=st.lists(st.integers(0, 1 << 20), max_size=8),
    max_frame_size=st.sampled_from([0, 100, 65_536, 1 << 20]),
    rsv_allowed=st.sampled_from([0, 4]),
    starts=st.lists(st.one_of(st.none(), st.integers(0, 70_000)), min_size=1, max_size=3),
)
def test_frame_parser(
    wire: list[bytes], garbage: bytes, cuts: list[int], max_frame_size: int, rsv_allowed: int, starts: list[Any]
) -> None:
    stream = b"".join(wire) + garbage
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    parsers = [m.FrameParser(masked=True, max_frame_size=max_frame_size, rsv_allowed=rsv_allowed) for m in (_py, _cy)]
    for begin, end in zip(bounds, bounds[1:], strict=False):
        chunk = stream[begin:end]
        fed = [outcome(parser.feed, chunk) for parser in parsers]
        assert fed[0] == fed[1], (begin, end)
        state = [
            (parser.buffered, normalized(parser.error), [outcome(parser.partial, s) for s in starts])
            for parser in parsers
        ]
        assert state[0] == state[1], (begin, end)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"masked": True},
        {"masked": False, "max_frame_size": 0},
        {"masked": True, "max_frame_size": -1},
        {"masked": True, "rsv_allowed": 8},
        {"masked": True, "rsv_allowed": -1},
        {"masked": True, "max_frame_size": "10"},
        {"max_frame_size": 10},
        {"masked": True, "unknown": 1},
    ],
)
def test_frame_parser_arguments(kwargs: dict[str, Any]) -> None:
    both("FrameParser", **kwargs)


@pytest.mark.parametrize("value", [0, 4, 7, 8, -1, "4", None])
def test_frame_parser_rsv_allowed(value: Any) -> None:
    results = []
    for module in (_py, _cy):
        parser = module.FrameParser(masked=True)
        results.append((outcome(setattr, parser, "rsv_allowed", value), parser.rsv_allowed))
    assert results[0] == results[1]


@pytest.mark.parametrize("name", ["error", "buffered"])
def test_frame_parser_read_only_properties(name: str) -> None:
    results = [outcome(setattr, module.FrameParser(masked=True), name, 1)[0] for module in (_py, _cy)]
    assert results == [AttributeError, AttributeError]


def test_every_public_callable_has_a_differential_test() -> None:
    tested = {"mask", "mask_into", "validate_utf8", "Utf8Validator", "parse_header", "frame_header", "build_frame"}
    tested |= {"Frame", "FrameParser", "DEFAULT_MAX_FRAME_SIZE"}
    assert tested == set(_py.__all__)
    assert public(_py.FrameParser) == {"buffered", "error", "feed", "partial", "rsv_allowed"}
    assert public(_py.Utf8Validator) == {"reset", "validate"}
    assert public(_py.Frame) == {"fin", "opcode", "payload", "rsv"}


def test_the_stub_matches_the_compiled_twin() -> None:
    allowlist = Path(__file__).with_name("stubtest_allowlist.txt")
    command = [sys.executable, "-m", "mypy.stubtest", "wsfast.kernels._cy", "--allowlist", str(allowlist)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
