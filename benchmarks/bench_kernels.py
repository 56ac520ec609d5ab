"""Kernel benchmarks: wsfast's twins beside the peers, one group per (kernel, size).

Every contender gets the same seeded input, built outside the timed call, and
its hot method bound beforehand; pytest-benchmark then times just that call
(``benchmark(fn, *args)`` adds no Python frame of ours). Each result carries
``extra_info``: ``label`` (the row name in ``report.py``), ``version``, and
``bytes`` or ``frames`` for the throughput column. Before timing, every
contender's answer is checked once, so ``--benchmark-disable`` is a smoke test.

Run: ``pytest benchmarks/bench_kernels.py --benchmark-only`` (see README.md).
"""

from __future__ import annotations

import codecs
import logging
import math
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import pytest
from _peers import AiohttpProtocol as _AiohttpProtocol
from _peers import open_picows_server

import wsfast
from wsfast.kernels import _py

KiB = 1024
MiB = 1024 * KiB
#: At and above this size, a fixed number of rounds (benchmark.pedantic).
BIG = 16 * MiB
BIG_ROUNDS = 5

MASK_SIZES = [16, 128, KiB, 16 * KiB, MiB, 16 * MiB]
UTF8_SIZES = [16, KiB, 4 * KiB, 64 * KiB, MiB]
UTF8_KINDS = ["ascii", "latin-emoji", "cjk"]
FRAME_COUNT = 10_000
FRAME_SIZES = [16, KiB]
READ_SIZE = 64 * KiB


def size_id(n: int) -> str:
    for unit, scale in (("MiB", MiB), ("KiB", KiB)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def _ids(sizes: list[int]) -> list[str]:
    return [size_id(n).replace(" ", "") for n in sizes]


def _label(impl: Any) -> str:
    return "wsfast[" + impl.__name__.rsplit("._", 1)[1] + "]"


def setup_bench(benchmark: Any, group: str, label: str, version: str, **extra: Any) -> None:
    """Name the row and its group; ``extra`` holds ``bytes`` or ``frames``."""
    benchmark.group = group
    benchmark.extra_info.update(label=label, version=version, **extra)


def run(benchmark: Any, size: int, fn: Callable[..., Any], *args: Any) -> None:
    """Time ``fn(*args)``; fixed rounds for the 16 MiB rows, calibrated below."""
    if size >= BIG:
        benchmark.pedantic(fn, args, rounds=BIG_ROUNDS, warmup_rounds=1)
    else:
        benchmark(fn, *args)


WSFAST_VERSION = wsfast.__version__


# -- mask (copy): bytes in, new masked bytes out ------------------------------

mask_sizes = pytest.mark.parametrize("size", MASK_SIZES, ids=_ids(MASK_SIZES))


@mask_sizes
def bench_mask_wsfast(benchmark: Any, impl: Any, size: int, payload: Any, mask_key: bytes, masked: Any) -> None:
    """wsfast ``mask(data, key)``: a new masked ``bytes``."""
    data = payload(size)
    mask = impl.mask
    assert mask(data, mask_key) == masked(size)
    setup_bench(benchmark, f"mask {size_id(size)}", _label(impl), WSFAST_VERSION, bytes=size)
    run(benchmark, size, mask, data, mask_key)


@mask_sizes
def bench_mask_websockets(benchmark: Any, size: int, payload: Any, mask_key: bytes, masked: Any, peer: Any) -> None:
    """websockets' C ``speedups.apply_mask(data, mask)``: a new masked ``bytes``."""
    apply_mask = peer("websockets.speedups").apply_mask
    data = payload(size)
    assert apply_mask(data, mask_key) == masked(size)
    setup_bench(benchmark, f"mask {size_id(size)}", "websockets", version("websockets"), bytes=size)
    run(benchmark, size, apply_mask, data, mask_key)


@mask_sizes
def bench_mask_wsaccel(benchmark: Any, size: int, payload: Any, mask_key: bytes, masked: Any, peer: Any) -> None:
    """wsaccel ``XorMaskerSimple(key).process(data)``, masker made per call as users do per frame.

    The lambda adds one Python call (~30-50 ns) that the other rows do not pay.
    """
    masker = peer("wsaccel.xormask").XorMaskerSimple
    data = payload(size)
    assert masker(mask_key).process(data) == masked(size)
    setup_bench(benchmark, f"mask {size_id(size)}", "wsaccel", version("wsaccel"), bytes=size)
    run(benchmark, size, lambda: masker(mask_key).process(data))


@mask_sizes
def bench_mask_numpy(benchmark: Any, size: int, payload: Any, mask_key: bytes, masked: Any, peer: Any) -> None:
    """numpy ``bitwise_xor(arr, tiled_key)`` into a new uint8 array (not bytes).

    Timed: the XOR and the allocation of the output array. Not timed: wrapping
    the data in an array and tiling the key to the data's length.
    """
    np = peer("numpy")
    data = payload(size)
    arr = np.frombuffer(data, dtype=np.uint8)
    tiled = np.frombuffer(mask_key * (size // 4 + 1), dtype=np.uint8)[:size].copy()
    xor = np.bitwise_xor
    assert xor(arr, tiled).tobytes() == masked(size)
    setup_bench(benchmark, f"mask {size_id(size)}", "numpy", np.__version__, bytes=size)
    run(benchmark, size, xor, arr, tiled)


@mask_sizes
def bench_mask_memcpy(benchmark: Any, size: int, payload: Any) -> None:
    """Baseline ``bytes(memoryview(data))``: allocate and copy, no XOR at all."""
    view = memoryview(payload(size))
    setup_bench(benchmark, f"mask {size_id(size)}", "baseline: memcpy", "", bytes=size)
    run(benchmark, size, bytes, view)


# -- mask_into (in place) ----------------------------------------------------
#
# All contenders mask the same bytearray (see conftest.shared_buffer), so they
# see the same address, alignment and cache state; repeated calls toggle it.


@mask_sizes
def bench_mask_into_wsfast(
    benchmark: Any, impl: Any, size: int, shared_buffer: Any, mask_key: bytes, masked: Any
) -> None:
    """wsfast ``mask_into(bytearray, key)``, in place."""
    buffer = shared_buffer(size)
    mask_into = impl.mask_into
    mask_into(buffer, mask_key)
    assert buffer == masked(size)
    setup_bench(benchmark, f"mask_into {size_id(size)}", _label(impl), WSFAST_VERSION, bytes=size)
    run(benchmark, size, mask_into, buffer, mask_key)


@mask_sizes
def bench_mask_into_aiohttp(
    benchmark: Any, size: int, shared_buffer: Any, mask_key: bytes, masked: Any, peer: Any
) -> None:
    """aiohttp's Cython ``_websocket_mask_cython(mask: bytes, data: bytearray)``, in place."""
    aiohttp_mask = peer("aiohttp._websocket.mask")._websocket_mask_cython
    buffer = shared_buffer(size)
    aiohttp_mask(mask_key, buffer)
    assert buffer == masked(size)
    setup_bench(benchmark, f"mask_into {size_id(size)}", "aiohttp", version("aiohttp"), bytes=size)
    run(benchmark, size, aiohttp_mask, mask_key, buffer)


@mask_sizes
def bench_mask_into_numpy(
    benchmark: Any, size: int, shared_buffer: Any, mask_key: bytes, masked: Any, peer: Any
) -> None:
    """numpy ``bitwise_xor(arr, tiled_key, out=arr)``, in place; the key is tiled beforehand."""
    np = peer("numpy")
    arr = np.frombuffer(shared_buffer(size), dtype=np.uint8)  # a view: the shared memory
    tiled = np.frombuffer(mask_key * (size // 4 + 1), dtype=np.uint8)[:size].copy()
    xor = np.bitwise_xor
    xor(arr, tiled, arr)
    assert arr.tobytes() == masked(size)
    setup_bench(benchmark, f"mask_into {size_id(size)}", "numpy", np.__version__, bytes=size)
    run(benchmark, size, xor, arr, tiled, arr)


@mask_sizes
def bench_mask_into_memcpy(benchmark: Any, size: int, shared_buffer: Any, payload: Any) -> None:
    """Baseline ``memoryview(buffer)[:] = src``: an in-place copy, no XOR."""
    source = payload(size)
    view = memoryview(shared_buffer(size))
    setup_bench(benchmark, f"mask_into {size_id(size)}", "baseline: memcpy", "", bytes=size)
    run(benchmark, size, view.__setitem__, slice(None), source)
    view.release()


# -- UTF-8 validation --------------------------------------------------------

utf8_cases = pytest.mark.parametrize(
    ("kind", "size"),
    [(kind, size) for kind in UTF8_KINDS for size in UTF8_SIZES],
    ids=[f"{kind}-{i}" for kind in UTF8_KINDS for i in _ids(UTF8_SIZES)],
)


def _utf8_group(kind: str, size: int) -> str:
    return f"utf8 {kind} {size_id(size)}"


@utf8_cases
def bench_utf8_wsfast(benchmark: Any, impl: Any, kind: str, size: int, utf8_text: Any) -> None:
    """wsfast ``validate_utf8(data)`` -> bool."""
    data = utf8_text(kind, size)
    validate = impl.validate_utf8
    assert validate(data) is True
    setup_bench(benchmark, _utf8_group(kind, size), _label(impl), WSFAST_VERSION, bytes=size)
    benchmark(validate, data)


@utf8_cases
def bench_utf8_wsfast_incremental(benchmark: Any, impl: Any, kind: str, size: int, utf8_text: Any) -> None:
    """wsfast ``Utf8Validator().validate(chunk)``, one validator fed the whole text each call."""
    data = utf8_text(kind, size)
    validate = impl.Utf8Validator().validate
    assert validate(data)[:3] == (True, True, size)
    setup_bench(benchmark, _utf8_group(kind, size), _label(impl) + " incremental", WSFAST_VERSION, bytes=size)
    benchmark(validate, data)


@utf8_cases
def bench_utf8_decode(benchmark: Any, kind: str, size: int, utf8_text: Any) -> None:
    """``data.decode("utf-8")``: validates by building a str."""
    data = utf8_text(kind, size)
    setup_bench(benchmark, _utf8_group(kind, size), "bytes.decode", "", bytes=size)
    benchmark(data.decode, "utf-8")


@utf8_cases
def bench_utf8_incremental_decoder(benchmark: Any, kind: str, size: int, utf8_text: Any) -> None:
    """``codecs.getincrementaldecoder("utf-8")().decode(data, final=True)``, decoder made once."""
    data = utf8_text(kind, size)
    decode = codecs.getincrementaldecoder("utf-8")().decode
    setup_bench(benchmark, _utf8_group(kind, size), "codecs incremental", "", bytes=size)
    benchmark(decode, data, True)


@utf8_cases
def bench_utf8_wsaccel(benchmark: Any, kind: str, size: int, utf8_text: Any, peer: Any) -> None:
    """wsaccel ``Utf8Validator().validate(data)``, one validator fed the whole text each call."""
    validate = peer("wsaccel.utf8validator").Utf8Validator().validate
    data = utf8_text(kind, size)
    assert validate(data)[:3] == (True, True, size)
    setup_bench(benchmark, _utf8_group(kind, size), "wsaccel", version("wsaccel"), bytes=size)
    benchmark(validate, data)


# -- parse_header ------------------------------------------------------------

HEADERS = {
    2: _py.frame_header(0x2, 100),
    4: _py.frame_header(0x2, 1000),
    6: _py.frame_header(0x2, 100, mask_key=b"\x37\xfa\x21\x3d"),
    10: _py.frame_header(0x2, 100_000),
    14: _py.frame_header(0x2, 100_000, mask_key=b"\x37\xfa\x21\x3d"),
}


@pytest.mark.parametrize("length", list(HEADERS), ids=[f"{n}B" for n in HEADERS])
def bench_parse_header(benchmark: Any, impl: Any, length: int) -> None:
    """wsfast ``parse_header(buf)`` on a header alone (2/4/10 B unmasked, 6/14 B masked)."""
    header = HEADERS[length]
    assert len(header) == length
    parse = impl.parse_header
    assert parse(header) == _py.parse_header(header)
    setup_bench(benchmark, f"parse_header {length} B", _label(impl), WSFAST_VERSION)
    benchmark(parse, header)


# -- FrameParser and the peers' frame readers --------------------------------
#
# Each contender gets a fresh parser per round (built in pedantic's untimed
# setup), then the timed call feeds it every 64 KiB read of a stream of
# 10,000 masked binary frames, as a server receives them from a client, and
# ends with every frame's payload available as bytes.


def _drivers(name: str, reads: tuple[bytes, ...], peer: Any, request: Any) -> tuple[Callable, Callable, str, str]:
    """Return ``(make, drive, label, version)`` for one contender.

    ``make()`` builds a fresh parser state (untimed); ``drive(state)`` feeds all
    reads and returns ``(frames_seen, last_payload)``.
    """
    if name == "aiohttp":
        reader_c = peer("aiohttp._websocket.reader_c")
        queue_cls, reader_cls = reader_c.WebSocketDataQueue, reader_c.WebSocketReader

        def make() -> Any:
            queue = queue_cls(_AiohttpProtocol(), 2**30, loop=None)
            return reader_cls(queue, 64 * MiB, False, False), queue

        def drive(reader: Any, queue: Any) -> tuple[int, bytes]:
            feed = reader.feed_data
            for data in reads:
                feed(data)
            return len(queue._buffer), queue._buffer[-1][0].data

        return make, drive, "aiohttp", version("aiohttp")

    if name == "websockets":
        protocol = peer("websockets.protocol")

        def make() -> Any:
            return (protocol.Protocol(protocol.Side.SERVER, state=protocol.OPEN, max_size=None),)

        def drive(conn: Any) -> tuple[int, bytes]:
            receive, events_received = conn.receive_data, conn.events_received
            n = 0
            for data in reads:
                receive(data)
                events = events_received()
                n += len(events)
            return n, events[-1].data

        return make, drive, "websockets", version("websockets")

    if name == "wsproto":
        frame_protocol = peer("wsproto.frame_protocol")

        def make() -> Any:
            return (frame_protocol.FrameProtocol(client=False, extensions=[]),)

        def drive(proto: Any) -> tuple[int, bytes]:
            receive, received_frames = proto.receive_bytes, proto.received_frames
            n = 0
            last = None
            for data in reads:
                receive(data)
                for last in received_frames():  # noqa: B007 (kept for the check)
                    n += 1  # a frame cut by a read comes out in two pieces
            return n, last.payload

        return make, drive, "wsproto", version("wsproto")

    if name == "picows":
        picows = peer("picows.picows")
        loop, sock = request.getfixturevalue("picows_env")
        logging.getLogger("wsfast.bench.picows").setLevel(logging.WARNING)

        class Sink(picows.WSListener):  # what a picows user writes: keep each payload as bytes
            def __init__(self) -> None:
                self.payloads: list[bytes] = []
                self.append = self.payloads.append

            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                self.append(frame.get_payload_as_bytes())

        async def open_protocol() -> Any:
            sink = Sink()
            proto = open_picows_server(sock, sink)
            return proto, sink

        def make() -> Any:
            return loop.run_until_complete(open_protocol())

        def drive(proto: Any, sink: Any) -> tuple[int, bytes]:
            # asyncio drives a BufferedProtocol with recv_into(get_buffer()) then
            # buffer_updated(n); the copy below stands for the kernel's recv copy.
            get_buffer, buffer_updated = proto.get_buffer, proto.buffer_updated
            for data in reads:
                view = memoryview(data)
                while view:
                    buffer = get_buffer(-1)
                    n = min(len(buffer), len(view))
                    buffer[:n] = view[:n]
                    buffer_updated(n)
                    view = view[n:]
            return len(sink.payloads), sink.payloads[-1]

        return make, drive, "picows", version("picows")

    if name == "baseline":

        def make() -> Any:
            return (memoryview(bytearray(READ_SIZE)),)

        def drive(view: Any) -> tuple[int, bytes]:
            for data in reads:
                view[: len(data)] = data
            return 0, b""

        return make, drive, "baseline: copy reads", ""

    raise ValueError(name)


def _run_frames(
    benchmark: Any, payload_size: int, reads: tuple[bytes, ...], last: bytes | None,
    make: Callable[[], Any], drive: Callable[..., tuple[int, bytes]], label: str, ver: str,
) -> None:  # fmt: skip
    """Check one untimed run, then time ``drive`` on a fresh ``make()`` state per round.

    ``last`` is the expected payload of the last frame (None: no check); a
    contender must report at least FRAME_COUNT frames and end on that payload.
    """
    state = make()
    started = time.perf_counter()
    n, got = drive(*state)
    elapsed = time.perf_counter() - started
    if last is not None:
        assert n >= FRAME_COUNT and got and last.endswith(got), (n, got[:16])
    setup_bench(
        benchmark, f"FrameParser 10k x {size_id(payload_size)}", label, ver,
        frames=FRAME_COUNT, bytes=sum(map(len, reads)),
    )  # fmt: skip
    rounds = max(5, min(30, math.ceil(0.4 / max(elapsed, 1e-6))))  # ~0.4 s, 5 to 30 rounds
    benchmark.pedantic(drive, setup=lambda: (make(), {}), rounds=rounds)


frame_sizes = pytest.mark.parametrize("payload_size", FRAME_SIZES, ids=_ids(FRAME_SIZES))


@frame_sizes
def bench_frame_parser_wsfast(benchmark: Any, impl: Any, payload_size: int, frame_stream: Any) -> None:
    """wsfast ``FrameParser(masked=True).feed(read)`` -> list of Frame with bytes payloads."""
    reads, last = frame_stream(payload_size, FRAME_COUNT, READ_SIZE)
    parser_cls = impl.FrameParser

    def make() -> Any:
        return (parser_cls(masked=True),)

    def drive(parser: Any) -> tuple[int, bytes]:
        feed = parser.feed
        n = 0
        for data in reads:
            frames = feed(data)
            n += len(frames)
        return n, frames[-1].payload

    _run_frames(benchmark, payload_size, reads, last, make, drive, _label(impl), WSFAST_VERSION)


@frame_sizes
@pytest.mark.parametrize("name", ["picows", "aiohttp", "websockets", "wsproto", "baseline"])
def bench_frame_parser_peer(
    benchmark: Any, name: str, payload_size: int, frame_stream: Any, peer: Any, request: Any
) -> None:
    """A peer's frame reader fed the same reads (see ``_drivers`` for how each is driven)."""
    reads, last = frame_stream(payload_size, FRAME_COUNT, READ_SIZE)
    make, drive, label, ver = _drivers(name, reads, peer, request)
    _run_frames(benchmark, payload_size, reads, None if name == "baseline" else last, make, drive, label, ver)
