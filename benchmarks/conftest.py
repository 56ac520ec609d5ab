"""Shared fixtures for the wsfast benchmarks.

- ``impl``: the installed kernel twins, ids ``py`` and ``cy`` (as in tests/).
- ``peer``: imports a competing library, skipping when it is absent, or
  failing when ``WSFAST_REQUIRE_PEERS=1`` (CI) says every peer must be there.
- ``payload``, ``mask_key``, ``utf8_text``, ``frame_stream``: seeded inputs,
  built once per session and never inside a timed call; ``masked`` gives the
  expected mask output, ``shared_buffer`` the one bytearray that every
  in-place contender masks.
- The objects pytest created before the run are frozen out of the garbage
  collector (``gc.freeze()``), so a contender's GC cost does not depend on
  how many benchmarks were collected.
- Machine info (CPU model, cores, Python, versions of wsfast and each peer)
  goes into the ``machine_info`` of ``--benchmark-json`` output.

Unless given on the command line, ``--benchmark-max-time`` defaults to 0.5 s
here (pytest-benchmark's own default is 1 s) so that the whole suite fits in a
few minutes on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import importlib
import os
import platform
import random
import socket
import sys
from contextlib import suppress
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest

try:
    import wsfast
except ImportError:  # a plain checkout, not installed: use the tree we are in
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import wsfast

from wsfast.kernels import _py

SEED = 6455
#: The masking key of RFC 6455 §5.7's examples.
MASK_KEY = b"\x37\xfa\x21\x3d"

IMPLS: list[Any] = [_py]
with suppress(ImportError):
    from wsfast.kernels import _cy

    IMPLS.append(_cy)
IMPL_IDS = ["py", "cy"][: len(IMPLS)]

if os.environ.get("WSFAST_BUILD_EXTENSION") == "yes" and len(IMPLS) < 2:
    raise ImportError("WSFAST_BUILD_EXTENSION=yes but wsfast.kernels._cy is not importable")

REQUIRE_PEERS = os.environ.get("WSFAST_REQUIRE_PEERS") == "1"

#: Distribution names reported in machine info; the benchmarks import these.
PEERS = ("websockets", "aiohttp", "wsaccel", "picows", "wsproto", "numpy")
DEFAULT_MAX_TIME = "0.5"


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads its options
def pytest_configure(config: pytest.Config) -> None:
    given = [*config.invocation_params.args, *config.getini("addopts"), *os.environ.get("PYTEST_ADDOPTS", "").split()]
    if not any(arg.startswith("--benchmark-max-time") for arg in given):
        config.option.benchmark_max_time = DEFAULT_MAX_TIME


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze the harness' own objects out of the garbage collector's reach.

    Contenders that allocate GC-tracked objects per frame (tuples, dataclasses)
    trigger collections, and a full collection's cost grows with every object
    in the process, pytest's included, so the cost would change with ``-k``. After ``gc.freeze()`` a collection only
    scans what the contenders themselves created. The GC stays on: it is part
    of what a real server pays (``--benchmark-disable-gc`` turns it off).
    """
    gc.collect()
    gc.freeze()


def pytest_benchmark_group_stats(config: Any, benchmarks: list[dict[str, Any]], group_by: str) -> Any:
    """Show groups in run order (16 B before 1 KiB), not alphabetically."""
    if group_by != "group":
        return None  # fall back to pytest-benchmark's own grouping
    groups: dict[str, list[dict[str, Any]]] = {}
    for bench in benchmarks:
        groups.setdefault(bench["group"], []).append(bench)
    return list(groups.items())


def _dist_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _cpu_model() -> str:
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_line() -> dict[str, Any]:
    """The facts every published number must carry."""
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity": affinity,  # the CPUs this run may use (taskset -c ...)
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "wsfast": wsfast.__version__,
        "wsfast_implementation": wsfast.IMPLEMENTATION,
        "wsfast_simd": getattr(wsfast.kernels, "SIMD", "?"),
        "peers": {name: _dist_version(name) for name in PEERS},
    }


def pytest_benchmark_update_machine_info(config: Any, machine_info: dict[str, Any]) -> None:
    machine_info["wsfast_bench"] = machine_line()


def pytest_report_header(config: pytest.Config) -> str:
    info = machine_line()
    peers = ", ".join(f"{k} {v or 'absent'}" for k, v in info["peers"].items())
    return (
        f"wsfast {info['wsfast']} ({info['wsfast_implementation']}, simd={info['wsfast_simd']}) on "
        f"{info['cpu_model']}, {info['cpu_count']} CPUs, affinity {info['affinity']}; peers: {peers}"
    )


# -- fixtures ---------------------------------------------------------------


@pytest.fixture(params=IMPLS, ids=IMPL_IDS)
def impl(request: pytest.FixtureRequest) -> Any:
    """A wsfast kernel module: ``wsfast.kernels._py`` or ``wsfast.kernels._cy``."""
    return request.param


def _import_peer(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if REQUIRE_PEERS:
            pytest.fail(f"peer {module!r} is required (WSFAST_REQUIRE_PEERS=1) but cannot be imported: {exc}")
        pytest.skip(f"peer {module!r} not installed: {exc}")


@pytest.fixture(scope="session")
def peer() -> Any:
    """``peer("websockets.speedups")`` imports a peer module, or skips (fails under CI)."""
    return _import_peer


@pytest.fixture(scope="session")
def mask_key() -> bytes:
    return MASK_KEY


@functools.cache
def random_bytes(size: int) -> bytes:
    """``size`` seeded pseudo-random bytes; the same for every run and contender."""
    return random.Random(SEED + size).randbytes(size)


@pytest.fixture(scope="session")
def payload() -> Any:
    """``payload(size)`` -> seeded random bytes."""
    return random_bytes


@functools.cache
def masked_bytes(size: int) -> bytes:
    """The expected ``mask(payload(size), MASK_KEY)``: the pure-Python twin is the oracle."""
    return _py.mask(random_bytes(size), MASK_KEY)


@pytest.fixture(scope="session")
def masked() -> Any:
    """``masked(size)`` -> ``payload(size)`` masked with ``mask_key``, for checks."""
    return masked_bytes


@functools.cache
def _shared_buffer(size: int) -> bytearray:
    return bytearray(size)


def inplace_buffer(size: int) -> bytearray:
    """The one bytearray of ``size`` bytes that every in-place contender masks.

    Sharing it means the same address, alignment and cache state for all of
    them. It is reset to ``payload(size)`` (in place) on every call.
    """
    buffer = _shared_buffer(size)
    buffer[:] = random_bytes(size)
    return buffer


@pytest.fixture(scope="session")
def shared_buffer() -> Any:
    """``shared_buffer(size)`` -> the shared in-place bytearray, holding ``payload(size)``."""
    return inplace_buffer


UTF8_SAMPLES = {
    "ascii": "The quick brown fox jumps over the lazy dog; 0123456789. ",
    "latin-emoji": "Grüße, café 😀 naïve ",
    "cjk": "漢字かな混じり文 ",
}


@functools.cache
def make_utf8_text(kind: str, size: int) -> bytes:
    """Exactly ``size`` bytes of valid UTF-8 of the given kind.

    The sample is repeated, cut at ``size`` bytes, trimmed back to a code
    point boundary and padded with ASCII spaces (at most 3) to ``size``.
    """
    sample = UTF8_SAMPLES[kind].encode("utf-8")
    data = (sample * (size // len(sample) + 1))[:size]
    data = data.decode("utf-8", "ignore").encode("utf-8")  # drop a cut code point
    data += b" " * (size - len(data))
    assert len(data) == size
    data.decode("utf-8")
    return data


@pytest.fixture(scope="session")
def utf8_text() -> Any:
    """``utf8_text(kind, size)`` -> valid UTF-8 bytes; kind in ``UTF8_SAMPLES``."""
    return make_utf8_text


@functools.cache
def make_frame_stream(payload_size: int, count: int, read_size: int) -> tuple[tuple[bytes, ...], bytes]:
    """``count`` masked binary frames, as a client sends them, cut into reads.

    Returns ``(reads, last_payload)``: the stream split every ``read_size``
    bytes (frames straddle reads, as on a socket), and the unmasked payload
    of the last frame, for a correctness check.
    """
    rng = random.Random(SEED)
    frames = []
    data = b""
    for _ in range(count):
        data = rng.randbytes(payload_size)
        frames.append(_py.build_frame(0x2, data, mask_key=rng.randbytes(4)))
    stream = b"".join(frames)
    reads = tuple(stream[i : i + read_size] for i in range(0, len(stream), read_size))
    return reads, data


@pytest.fixture(scope="session")
def frame_stream() -> Any:
    """``frame_stream(payload_size, count, read_size)`` -> (reads, last_payload)."""
    return make_frame_stream


@pytest.fixture(scope="module")
def picows_env() -> Any:
    """An event loop (picows' constructor wants a running one) and a socket to show it."""
    loop = asyncio.new_event_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    yield loop, sock
    sock.close()
    loop.close()
