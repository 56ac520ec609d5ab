"""wsfast.compat.wsaccel answers exactly as the installed wsaccel, on every input."""

from __future__ import annotations

import array
import pickle
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.adapters import (
    BUFFER_KINDS,
    EDGE_SIZES,
    as_kind,
    keys,
    outcome,
    payloads,
    random_bytes,
    require,
    utf8_chunks,
)
from wsfast.compat import wsaccel as compat
from wsfast.compat.wsaccel.utf8validator import Utf8Validator
from wsfast.compat.wsaccel.xormask import XorMaskerNull, XorMaskerSimple, createXorMasker

require("wsaccel")
import wsaccel.utf8validator  # noqa: E402
import wsaccel.xormask  # noqa: E402

numpy = pytest.importorskip("numpy")

ODD = [
    None,
    "text",
    5,
    [1, 2, 3],
    array.array("b", [1, 2]),
    array.array("i", [1, 2]),
    array.array("d", [1.0]),
    array.array("B", [0xC3, 0xA9]),
    numpy.zeros((2, 2), numpy.uint8),
    numpy.zeros((2, 2), numpy.int32),
    numpy.arange(3, dtype=numpy.int8),
    numpy.arange(3, dtype=numpy.uint16),
    numpy.zeros(3, numpy.bool_),
    numpy.zeros(3, numpy.float16),
    numpy.zeros(3, numpy.complex64),
    numpy.zeros(3, "S1"),
    numpy.zeros(3, numpy.uint8)[::-1],
    memoryview(b"\xc3\xa9").cast("c"),
    memoryview(b"abcd").cast("B", (2, 2)),
    memoryview(b"abcdefgh").cast("i"),
    memoryview(b"abcdefgh")[::3],
    bytearray(b"\xe2\x82"),
]


def test_module_api() -> None:
    assert compat.xormask.XorMaskerSimple is XorMaskerSimple
    assert compat.utf8validator.Utf8Validator is Utf8Validator
    for name in ("XorMaskerNull", "XorMaskerSimple", "createXorMasker"):
        assert hasattr(wsaccel.xormask, name) and hasattr(compat.xormask, name)
    public = {name for name in dir(wsaccel.utf8validator.Utf8Validator) if not name.startswith("_")}
    assert public <= {name for name in dir(Utf8Validator) if not name.startswith("_")}
    assert Utf8Validator.UTF8_ACCEPT == 0 and Utf8Validator.UTF8_REJECT == 1
    assert hasattr(compat, "patch_autobahn") and hasattr(compat, "patch_ws4py") and compat.__version__


@settings(deadline=None)
@given(
    data=payloads(),
    key=keys(),
    kind=st.sampled_from(BUFFER_KINDS),
    key_kind=st.sampled_from(BUFFER_KINDS),
    cuts=st.lists(st.integers(0, 400), max_size=4),
)
def test_xor_masker_as_wsaccel(data: bytes, key: bytes, kind: str, key_kind: str, cuts: list[int]) -> None:
    ours, theirs = XorMaskerSimple(as_kind(key, key_kind)), wsaccel.xormask.XorMaskerSimple(as_kind(key, key_kind))
    bounds = [0, *sorted(min(cut, len(data)) for cut in cuts), len(data)]
    for start, end in pairwise(bounds):
        chunk = as_kind(data[start:end], kind)
        assert outcome(ours.process, chunk) == outcome(theirs.process, chunk)
        assert ours.pointer() == theirs.pointer()
    ours.reset()
    theirs.reset()
    assert ours.pointer() == theirs.pointer() == 0
    assert ours.process(data) == theirs.process(data)


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_xor_masker_edge_lengths(size: int) -> None:
    data = random_bytes(size, size)
    ours, theirs = (
        createXorMasker(b"\x01\x02\x03\x04", size),
        wsaccel.xormask.createXorMasker(b"\x01\x02\x03\x04", size),
    )
    assert ours.process(data) == theirs.process(data)
    assert ours.process(data[:3]) == theirs.process(data[:3])


@pytest.mark.parametrize("odd", ODD, ids=repr)
def test_xor_masker_odd_inputs_as_wsaccel(odd: Any) -> None:
    assert outcome(XorMaskerSimple, odd)[0::2] == outcome(wsaccel.xormask.XorMaskerSimple, odd)[0::2]
    assert outcome(XorMaskerSimple(b"abcd").process, odd) == outcome(
        wsaccel.xormask.XorMaskerSimple(b"abcd").process, odd
    )
    ours, theirs = XorMaskerNull(), wsaccel.xormask.XorMaskerNull()
    mine, their = outcome(ours.process, odd), outcome(theirs.process, odd)
    assert mine[0] == their[0]
    assert ours.pointer() == theirs.pointer()


@pytest.mark.parametrize("mask", [b"", b"abc", b"abcde", bytearray(b"abcd"), memoryview(b"abcdabcd")[::2], None])
def test_xor_masker_keys_as_wsaccel(mask: Any) -> None:
    assert outcome(lambda: XorMaskerSimple(mask).process(b"data")) == outcome(
        lambda: wsaccel.xormask.XorMaskerSimple(mask).process(b"data")
    )
    assert outcome(lambda: createXorMasker(mask, len=4).process(b"data")) == outcome(
        lambda: wsaccel.xormask.createXorMasker(mask, len=4).process(b"data")
    )


def test_xor_maskers_pickle_like_wsaccel() -> None:
    for cls in (XorMaskerSimple, wsaccel.xormask.XorMaskerSimple):
        masker = cls(b"abcd")
        masker.process(b"xyz")
        copy = pickle.loads(pickle.dumps(masker))
        assert copy.pointer() == 3
        assert copy.process(b"xyz") == masker.process(b"xyz")
    null = XorMaskerNull(b"abcd")
    null.process(b"xy")
    assert pickle.loads(pickle.dumps(null)).pointer() == 2


def _state(validator: Any) -> tuple[int, int, int]:
    return (validator.state, validator.i, validator.codepoint)


@settings(deadline=None, max_examples=500)
@given(chunks=utf8_chunks(), kind=st.sampled_from(BUFFER_KINDS))
def test_validator_as_wsaccel(chunks: list[bytes], kind: str) -> None:
    ours, theirs = Utf8Validator(), wsaccel.utf8validator.Utf8Validator()
    for chunk in chunks:
        assert ours.validate(as_kind(chunk, kind)) == theirs.validate(as_kind(chunk, kind))
        assert _state(ours) == _state(theirs)
    ours.reset()
    theirs.reset()
    assert _state(ours) == _state(theirs) == (0, 0, 0)


@settings(deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("decode"), st.integers(0, 255)),
            st.tuples(st.just("validate"), st.binary(max_size=5)),
            st.tuples(st.just("state"), st.integers(0, 8)),
            st.tuples(st.just("i"), st.integers(-(2**31), 2**31 - 1)),
            st.tuples(st.just("codepoint"), st.integers(-(2**31), 2**31 - 1)),
            st.tuples(st.just("reset"), st.none()),
        ),
        max_size=12,
    )
)
def test_validator_interface_as_wsaccel(steps: list[tuple[str, Any]]) -> None:
    ours, theirs = Utf8Validator(), wsaccel.utf8validator.Utf8Validator()
    for step, value in steps:
        for validator in (ours, theirs):
            if step in ("state", "i", "codepoint"):
                setattr(validator, step, value)
        if step == "decode":
            assert ours.decode(value) == theirs.decode(value)
        elif step == "validate":
            assert ours.validate(value) == theirs.validate(value)
        elif step == "reset":
            ours.reset()
            theirs.reset()
        assert _state(ours) == _state(theirs)


def test_validator_totals_wrap_like_a_c_int() -> None:
    ours, theirs = Utf8Validator(), wsaccel.utf8validator.Utf8Validator()
    ours.i = theirs.i = 2**31 - 2
    assert ours.validate(b"abc") == theirs.validate(b"abc")
    assert ours.i == theirs.i < 0
    assert ours.validate(b"\xc3\xa9\xff") == theirs.validate(b"\xc3\xa9\xff")
    assert _state(ours) == _state(theirs)


@pytest.mark.parametrize(
    "value", [2**31, -(2**31) - 1, 1.7, True, "1", None, numpy.int64(3), numpy.float64(2.5)], ids=repr
)
def test_validator_attribute_conversions_as_wsaccel(value: Any) -> None:
    for name in ("i", "state", "codepoint"):
        if name == "state" and not isinstance(value, str | type(None)) and int(value) not in range(9):
            continue  # states outside the DFA: wsaccel reads past its table (see the module docstring)
        ours, theirs = Utf8Validator(), wsaccel.utf8validator.Utf8Validator()
        assert outcome(setattr, ours, name, value)[0::2] == outcome(setattr, theirs, name, value)[0::2]
        assert _state(ours) == _state(theirs)


@pytest.mark.parametrize("odd", ODD, ids=repr)
def test_validator_odd_inputs_as_wsaccel(odd: Any) -> None:
    ours, theirs = Utf8Validator(), wsaccel.utf8validator.Utf8Validator()
    assert outcome(ours.validate, odd) == outcome(theirs.validate, odd)
    assert _state(ours) == _state(theirs)


def test_validator_decode_errors_as_wsaccel() -> None:
    for value in ("a", 1.0, None):
        assert (
            outcome(Utf8Validator().decode, value)[:2]
            == outcome(wsaccel.utf8validator.Utf8Validator().decode, value)[:2]
        )
    for value in (256, 300, 399):  # wsaccel reads its transition table: so does wsfast
        assert Utf8Validator().decode(value) == wsaccel.utf8validator.Utf8Validator().decode(value)


def test_validator_pickles() -> None:
    validator = Utf8Validator()
    validator.validate(b"ab\xf0\x9f")
    validator.decode(0x98)
    copy = pickle.loads(pickle.dumps(validator))
    assert _state(copy) == _state(validator)
    assert copy.validate(b"\x80") == validator.validate(b"\x80") == (True, True, 1, 5)


def test_patch_functions_install_the_adapters() -> None:
    from wsfast.accelerate import deaccelerate

    require("autobahn")
    require("ws4py")
    from wsfast.adapters import autobahn, ws4py

    try:
        compat.patch_autobahn()
        compat.patch_ws4py()
        assert autobahn.is_active() and ws4py.is_active()
    finally:
        deaccelerate("autobahn", "ws4py")
