"""Helpers for the adapter tests (one module per library).

A target library missing locally skips its module; with ``CI`` or
``WSFAST_REQUIRE_PEERS`` set it fails it: CI installs every library.
"""

from __future__ import annotations

import array
import importlib
import os
import random
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import strategies as st

from tests.timeouts import TIMEOUT
from wsfast.adapters._patch import original_of

REQUIRED = bool(os.environ.get("CI") or os.environ.get("WSFAST_REQUIRE_PEERS"))
REPO = Path(__file__).resolve().parents[2]

#: Every tail of an 8-, 16- and 32-byte loop, the 7/16-bit length boundaries, and 64 KiB.
EDGE_SIZES = (*range(18), 31, 32, 33, 125, 126, 127, 65535, 65536)


def require(module: str, distribution: str | None = None) -> ModuleType:
    """Import ``module``; skip the test module if absent, fail it in CI."""
    if REQUIRED:
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            pytest.fail(f"{distribution or module} is required when CI is set: {exc}", pytrace=False)
    return pytest.importorskip(module)


def unpatched(obj: Any) -> Any:
    """``obj`` itself, or what it replaced if it is a wsfast replacement."""
    original = original_of(obj)
    return obj if original is None else original


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def payloads(max_size: int = 300) -> st.SearchStrategy[bytes]:
    """Random bytes, often of an edge length."""
    return st.one_of(
        st.binary(max_size=max_size),
        st.builds(random_bytes, st.sampled_from(EDGE_SIZES), st.integers(0, 2**32)),
    )


def keys() -> st.SearchStrategy[bytes]:
    return st.binary(min_size=4, max_size=4)


def utf8_chunks() -> st.SearchStrategy[list[bytes]]:
    """A text, valid or not, cut anywhere (code points split across chunks)."""
    pieces = st.one_of(
        st.text(max_size=20).map(lambda text: text.encode("utf-8", "surrogatepass")),
        st.sampled_from(
            [b"\x80", b"\xff", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf0\x9f", b"\xe2"]
        ),
        st.binary(max_size=6),
    )

    @st.composite
    def cut(draw: st.DrawFn) -> list[bytes]:
        text = b"".join(draw(st.lists(pieces, max_size=6)))
        cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=5)))
        bounds = [0, *cuts, len(text)]
        chunks = [text[a:b] for a, b in pairwise(bounds)]
        # Calls after the end (and after a failure): empty and non-empty.
        return chunks + draw(st.lists(st.sampled_from([b"", b"a", b"\x80", b"\xc3", b"\xa9"]), max_size=3))

    return cut()


@st.composite
def wire_frames(draw: st.DrawFn, masked: bool) -> bytes:
    """One frame as a peer might send it: mostly valid, sometimes not in any way a library checks.

    Reserved opcodes, RSV bits, fragmented and oversized control frames, the
    wrong masking, non-minimal length encodings, close codes and reasons of
    every kind, text that is not UTF-8.
    """
    opcode = draw(st.sampled_from([0, 1, 2, 8, 9, 10]) | st.integers(0, 15))
    fin = draw(st.booleans() if draw(st.integers(0, 4)) == 0 else st.just(True))
    rsv = draw(st.just(0) | st.integers(0, 7))
    if opcode == 8:
        data = draw(
            st.just(b"")
            | st.builds(
                lambda code, reason: struct.pack("!H", code) + reason,
                st.sampled_from([1000, 1001, 1002, 1005, 1007, 3000, 4999, 5000, 999, 0]),
                st.binary(max_size=8) | st.text(max_size=8).map(str.encode),
            )
            | st.binary(max_size=3)
        )
    elif opcode == 1:
        data = draw(st.text(max_size=40).map(str.encode) | st.binary(max_size=40))
    else:
        data = draw(payloads(max_size=200))
    mask = masked if draw(st.integers(0, 9)) else not masked
    encoding = draw(st.sampled_from(["minimal", "minimal", "16", "64"]))
    first = 0x80 * fin | rsv << 4 | opcode
    if encoding == "minimal" and len(data) < 126:
        head = bytes([first, 0x80 * mask | len(data)])
    elif encoding != "64" and len(data) < 65536:
        head = bytes([first, 0x80 * mask | 126]) + struct.pack("!H", len(data))
    else:
        head = bytes([first, 0x80 * mask | 127]) + struct.pack("!Q", len(data))
    if not mask:
        return head + data
    key = draw(st.binary(min_size=4, max_size=4))
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


@st.composite
def frame_streams(draw: st.DrawFn, masked: bool) -> list[bytes]:
    """:func:`wire_frames` end to end, cut in chunks anywhere."""
    wire = b"".join(draw(st.lists(wire_frames(masked), max_size=6)))
    cuts = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=4)))
    bounds = [0, *cuts, len(wire)]
    return [wire[a:b] for a, b in pairwise(bounds)]


BUFFER_KINDS = ("bytes", "bytearray", "memoryview", "readonly", "strided", "array", "numpy")


def as_kind(data: bytes, kind: str) -> Any:
    """``data`` as another bytes-like type (same bytes)."""
    if kind == "bytes":
        return data
    if kind == "bytearray":
        return bytearray(data)
    if kind == "memoryview":
        return memoryview(bytearray(data))
    if kind == "readonly":
        return memoryview(data)
    if kind == "strided":
        spread = bytearray(2 * len(data))
        spread[::2] = data
        return memoryview(spread)[::2]
    if kind == "array":
        return array.array("B", data)
    if kind == "numpy":
        numpy = pytest.importorskip("numpy")
        return numpy.frombuffer(data, dtype=numpy.uint8).copy()
    raise AssertionError(kind)


def outcome(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """What a call returned, or the type and message of what it raised."""
    try:
        result = function(*args, **kwargs)
    except Exception as exc:
        return ("raised", type(exc), str(exc))
    return ("returned", type(result), bytes(result) if isinstance(result, (bytearray, memoryview)) else result)


class Spy:
    """Wraps a kernel; counts the calls that reach it."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.function(*args, **kwargs)


@contextmanager
def accelerated(*names: str) -> Iterator[list[str]]:
    """``accelerate(*names)`` for the duration of the block."""
    from wsfast.accelerate import accelerate, deaccelerate

    try:
        yield accelerate(*names)
    finally:
        deaccelerate(*names)


def run_python(code: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that imports wsfast from this checkout."""
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environ.get("PYTHONPATH")]))
    environ.pop("WSFAST_ACCELERATE", None)
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code],
        env=environ,
        capture_output=True,
        text=True,
        timeout=6 * TIMEOUT,
        check=False,
        **kwargs,
    )
