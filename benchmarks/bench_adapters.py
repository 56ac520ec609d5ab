"""``wsfast.accelerate()`` benchmarks: each library's own framing before and after, in one run.

Every benchmark drives a library's OWN code path (its protocol object, frame
builder, masker or validator, found where the library itself looks it up) on
the same seeded input twice, in the same group: once with the library as
installed (label ``LIB``, after ``wsfast.deaccelerate(LIB)``) and once after
``wsfast.accelerate(LIB)`` (label ``LIB+wsfast``). The patch state is set in
each benchmark's setup and undone at its teardown, and checked (the hot name
is, or is not, wsfast's replacement), so no row inherits another's state.
Objects whose class or helpers the library binds at construction are built
after the state is set.

Groups are ``LIB: what SIZE``; sizes are 1 KiB, 64 KiB and 1 MiB masked
messages (client frames: a client masks them, a server unmasks them), and the
same sizes of valid UTF-8 text (ASCII, and Latin + emoji) for the libraries
that validate UTF-8 themselves (autobahn, websocket-client, ws4py; websockets,
wsproto, aiohttp and tornado decode with Python's codec instead, which wsfast
does not replace). Before timing, every contender's answer is checked once,
so ``--benchmark-disable`` is a smoke test.

Run (see ADAPTERS.md for the table these give)::

    pytest benchmarks/bench_adapters.py --benchmark-only --benchmark-json=benchmarks/results/adapters.json
    python benchmarks/bench_adapters.py benchmarks/results/adapters.json     # speed-up table (several files:
                                                                             # median of the runs and range)
    pytest benchmarks/bench_adapters.py --benchmark-disable -q               # smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest

try:
    import wsfast
except ImportError:  # run as a script from a plain checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import wsfast

from wsfast import kernels

KiB = 1024
MiB = 1024 * KiB
SIZES = [KiB, 64 * KiB, MiB]
UTF8_KINDS = ["ascii", "latin-emoji"]
MASK_KEY = b"\x37\xfa\x21\x3d"

#: registry name -> (row label, PyPI distribution)
LIBRARIES = {
    "websockets": ("websockets", "websockets"),
    "wsproto": ("wsproto", "wsproto"),
    "aiohttp": ("aiohttp", "aiohttp"),
    "autobahn": ("autobahn", "autobahn"),
    "websocket_client": ("websocket-client", "websocket-client"),
    "ws4py": ("ws4py", "ws4py"),
    "tornado": ("tornado", "tornado"),
    "gunicorn": ("gunicorn", "gunicorn"),
}


def size_id(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB else f"{n // KiB} KiB"


def _ids(sizes: list[int]) -> list[str]:
    return [size_id(n).replace(" ", "") for n in sizes]


def dist_version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "?"


MODES = {False: "base", True: "wsfast"}

# Each group's two rows (LIB, then LIB+wsfast) run back to back, so that a change in
# the machine's load between them is as small as it can be.
sizes = pytest.mark.parametrize(
    ("size", "accelerated"),
    [(size, on) for size in SIZES for on in MODES],
    ids=[f"{i}-{MODES[on]}" for i in _ids(SIZES) for on in MODES],
)
utf8_cases = pytest.mark.parametrize(
    ("kind", "size", "accelerated"),
    [(kind, size, on) for kind in UTF8_KINDS for size in SIZES for on in MODES],
    ids=[f"{kind}-{i}-{MODES[on]}" for kind in UTF8_KINDS for i in _ids(SIZES) for on in MODES],
)


@pytest.fixture
def patch_state() -> Iterator[Callable[[str, bool], None]]:
    """``patch_state(lib, on)`` accelerates or restores ``lib`` now; teardown always restores it."""
    touched: list[str] = []

    def apply(name: str, on: bool) -> None:
        touched.append(name)
        wsfast.deaccelerate(name)  # a known start, whatever ran before
        if on:
            assert wsfast.accelerate(name) == [name]
        assert (name in wsfast.accelerated()) is on

    yield apply
    for name in touched:
        wsfast.deaccelerate(name)


def is_ours(value: Any) -> bool:
    """Whether ``value`` (a function, staticmethod or class) is a wsfast replacement."""
    return getattr(getattr(value, "__func__", value), "__wsfast_original__", None) is not None


def setup_row(
    benchmark: Any,
    patch_state: Callable[[str, bool], None],
    name: str,
    on: bool,
    what: str,
    nbytes: int,
    hot: Callable[[], Any],
) -> None:
    """``what`` names the path (``"receive"``); the group is ``LIB: what SIZE``."""
    """Set the patch state, check it on the hot name ``hot()``, and label the row."""
    patch_state(name, on)
    assert is_ours(hot()) is on, (
        f"{name}: the hot name is {'not ' if on else ''}wsfast's while it should{'' if on else ' not'} be"
    )
    label, distribution = LIBRARIES[name]
    benchmark.group = f"{label}: {what} {size_id(nbytes)}"
    benchmark.extra_info.update(
        label=label + ("+wsfast" if on else ""),
        library=label,
        path=what,
        size=size_id(nbytes),
        version=dist_version(distribution),
        accelerated=on,
        bytes=nbytes,
        wsfast=wsfast.__version__,
        wsfast_implementation=wsfast.IMPLEMENTATION,
    )


def unframe(data: bytes) -> bytes:
    """The payload of the one masked frame in ``data`` (wsfast's parser is the oracle)."""
    frames = kernels.FrameParser(masked=True).feed(data)
    assert len(frames) == 1, len(frames)
    return bytes(frames[0].payload)


def client_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """One masked frame, as a client sends it."""
    return kernels.build_frame(opcode, payload, mask_key=MASK_KEY)


# -- websockets: sans-IO Protocol (Frame.parse / Frame.serialize, patched on the kernels) ---------


@sizes
def bench_websockets_receive(
    benchmark: Any, accelerated: bool, patch_state: Any, size: int, payload: Any, peer: Any
) -> None:
    """Server ``Protocol.receive_data(frame)`` + ``events_received()``: one masked binary message unmasked."""
    protocol = peer("websockets.protocol")
    frames = peer("websockets.frames")
    setup_row(benchmark, patch_state, "websockets", accelerated, "receive", size,
              lambda: vars(frames.Frame)["parse"])  # fmt: skip
    data = payload(size)
    wire = client_frame(data)
    conn = protocol.Protocol(protocol.Side.SERVER, state=protocol.OPEN, max_size=None)
    receive, events = conn.receive_data, conn.events_received

    def run() -> Any:
        receive(wire)
        return events()

    (event,) = run()
    assert event.data == data
    benchmark(run)


@sizes
def bench_websockets_send(
    benchmark: Any, accelerated: bool, patch_state: Any, size: int, payload: Any, peer: Any
) -> None:
    """Client ``Protocol.send_binary(data)`` + ``data_to_send()``: one message masked with a fresh random key."""
    protocol = peer("websockets.protocol")
    frames = peer("websockets.frames")
    setup_row(benchmark, patch_state, "websockets", accelerated, "send", size,
              lambda: vars(frames.Frame)["serialize"])  # fmt: skip
    data = payload(size)
    conn = protocol.Protocol(protocol.Side.CLIENT, state=protocol.OPEN, max_size=None)
    send, drain = conn.send_binary, conn.data_to_send

    def run() -> Any:
        send(data)
        return drain()

    assert unframe(b"".join(run())) == data
    benchmark(run)


# -- wsproto: FrameProtocol (looks up XorMaskerSimple per frame) -----------------------------------


@sizes
def bench_wsproto_receive(
    benchmark: Any, accelerated: bool, patch_state: Any, size: int, payload: Any, peer: Any
) -> None:
    """Server ``FrameProtocol.receive_bytes(frame)`` + ``received_frames()``: one masked binary frame."""
    fp = peer("wsproto.frame_protocol")
    setup_row(benchmark, patch_state, "wsproto", accelerated, "receive", size,
              lambda: fp.XorMaskerSimple)  # fmt: skip
    data = payload(size)
    wire = client_frame(data)
    proto = fp.FrameProtocol(client=False, extensions=[])
    receive, received = proto.receive_bytes, proto.received_frames

    def run() -> Any:
        receive(wire)
        return list(received())

    (frame,) = run()
    assert frame.payload == data
    benchmark(run)


@sizes
def bench_wsproto_send(benchmark: Any, accelerated: bool, patch_state: Any, size: int, payload: Any, peer: Any) -> None:
    """Client ``FrameProtocol.send_data(data)``: one binary frame masked with a fresh random key."""
    fp = peer("wsproto.frame_protocol")
    setup_row(benchmark, patch_state, "wsproto", accelerated, "send", size,
              lambda: fp.XorMaskerSimple)  # fmt: skip
    data = payload(size)
    send = fp.FrameProtocol(client=True, extensions=[]).send_data
    assert unframe(send(data, True)) == data
    benchmark(send, data, True)


# -- aiohttp: the writer's mask path, the pure-Python reader, and the Cython reader ------------------


class _Transport:
    """What aiohttp's WebSocketWriter needs from a transport: writes are dropped after the check."""

    def __init__(self) -> None:
        self.last = b""

    def is_closing(self) -> bool:
        return False

    def write(self, data: Any) -> None:
        self.last = data


class _Protocol:
    """What aiohttp's WebSocketDataQueue asks of its protocol; 'paused' so the queue never calls back."""

    _reading_paused = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@pytest.fixture
def aiohttp_without_extensions(peer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """aiohttp's pure-Python ``websocket_mask`` where its writer and reader_py look it up, as with
    ``AIOHTTP_NO_EXTENSIONS=1``: accelerate() leaves its default Cython mask alone (already native)."""
    helpers = peer("aiohttp._websocket.helpers")
    for module in ("aiohttp._websocket.writer", "aiohttp._websocket.reader_py"):
        monkeypatch.setattr(peer(module), "websocket_mask", helpers._websocket_mask_python)


@sizes
@pytest.mark.usefixtures("aiohttp_without_extensions")
def bench_aiohttp_writer(
    benchmark: Any, accelerated: bool, patch_state: Any, size: int, payload: Any, peer: Any
) -> None:
    """Client ``WebSocketWriter._write_websocket_frame(data, BINARY, 0)`` without aiohttp's extensions: the
    synchronous framing + masking step of ``send_frame`` (random mask, bytearray copy, in-place
    ``websocket_mask``), without its lock."""
    writer_module = peer("aiohttp._websocket.writer")
    setup_row(benchmark, patch_state, "aiohttp", accelerated, "writer (client send)", size,
              lambda: writer_module.websocket_mask)  # fmt: skip
    data = payload(size)
    transport = _Transport()
    writer = writer_module.WebSocketWriter(_Protocol(), transport, use_mask=True)  # type: ignore[arg-type]
    write = writer._write_websocket_frame
    write(data, 0x2, 0)
    assert unframe(bytes(transport.last)) == data
    benchmark(write, data, 0x2, 0)


def _aiohttp_reader(module: Any, size: int, data: bytes) -> Callable[[], Any]:
    """``feed_data(frame)`` then the queue's own ``read()`` (as ``ws.receive()`` awaits it), driven by hand:
    with a message buffered it completes without suspending. Reading keeps the queue's byte count (and so
    its flow control) balanced across millions of calls."""
    queue = module.WebSocketDataQueue(_Protocol(), 2**30, loop=None)
    reader = module.WebSocketReader(queue, 2 * size + 1024, False, False)  # no compression, text as bytes
    feed, read = reader.feed_data, queue.read
    wire = client_frame(data)

    def run() -> Any:
        feed(wire)
        coroutine = read()
        try:
            coroutine.send(None)
        except StopIteration as done:
            return done.value
        raise AssertionError("queue.read() suspended: the reader produced no message")

    message = run()
    assert message.data == data, message
    return run


@sizes
@pytest.mark.usefixtures("aiohttp_without_extensions")
def bench_aiohttp_reader_py(
    benchmark: Any, accelerated: bool, patch_state: Any, size: int, payload: Any, peer: Any
) -> None:
    """Server pure-Python ``reader_py.WebSocketReader.feed_data(frame)`` (used with AIOHTTP_NO_EXTENSIONS
    or without the compiled reader): one masked binary message unmasked by ``websocket_mask``."""
    reader_py = peer("aiohttp._websocket.reader_py")
    setup_row(benchmark, patch_state, "aiohttp", accelerated, "reader_py (server receive)", size,
              lambda: reader_py.websocket_mask)  # fmt: skip
    benchmark(_aiohttp_reader(reader_py, size, payload(size)))


# -- autobahn: the per-frame masker and the UTF-8 validator WebSocketProtocol looks up ----------------


@sizes
def bench_autobahn_masker(
    benchmark: Any, accelerated: bool, patch_state: Any, size: int, payload: Any, peer: Any
) -> None:
    """``create_xor_masker(mask, len).process(data)`` from ``autobahn.websocket.protocol``: one masker per
    frame, as ``processData``/``sendFrame`` make them (autobahn's own: NVX SIMD via CFFI when built)."""
    protocol = peer("autobahn.websocket.protocol")
    setup_row(benchmark, patch_state, "autobahn", accelerated, "masker", size,
              lambda: protocol.create_xor_masker)  # fmt: skip
    data = payload(size)
    create = protocol.create_xor_masker

    def run() -> Any:
        return create(MASK_KEY, size).process(data)

    assert bytes(run()) == kernels.mask(data, MASK_KEY)
    benchmark(run)


@utf8_cases
def bench_autobahn_utf8(
    benchmark: Any, accelerated: bool, patch_state: Any, kind: str, size: int, utf8_text: Any, peer: Any
) -> None:
    """``Utf8Validator().validate(text)`` from ``autobahn.websocket.protocol``, validator made once."""
    protocol = peer("autobahn.websocket.protocol")
    setup_row(benchmark, patch_state, "autobahn", accelerated, f"utf8 {kind}", size,
              lambda: protocol.Utf8Validator)  # fmt: skip
    data = utf8_text(kind, size)
    validate = protocol.Utf8Validator().validate
    assert validate(data)[:2] == (True, True)
    benchmark(validate, data)


# -- websocket-client: ABNF framing (ABNF.mask -> _mask) and validate_utf8 -----------------------------


@sizes
def bench_websocket_client_send(
    benchmark: Any, accelerated: bool, patch_state: Any, size: int, payload: Any, peer: Any
) -> None:
    """``ABNF.create_frame(data, OPCODE_BINARY).format()``: what ``WebSocket.send_binary`` frames and
    masks (random key from os.urandom) before the socket write."""
    abnf = peer("websocket._abnf")
    setup_row(benchmark, patch_state, "websocket_client", accelerated, "send", size,
              lambda: vars(abnf.ABNF)["mask"])  # fmt: skip
    data = payload(size)
    create, binary = abnf.ABNF.create_frame, abnf.ABNF.OPCODE_BINARY

    def run() -> Any:
        return create(data, binary).format()

    assert unframe(run()) == data
    benchmark(run)


@utf8_cases
def bench_websocket_client_utf8(
    benchmark: Any, accelerated: bool, patch_state: Any, kind: str, size: int, utf8_text: Any, peer: Any
) -> None:
    """``websocket._utils.validate_utf8(text)``, as ``ABNF.validate`` calls it for text frames."""
    utils = peer("websocket._utils")
    setup_row(benchmark, patch_state, "websocket_client", accelerated, f"utf8 {kind}", size,
              lambda: utils._validate_utf8)  # fmt: skip
    data = utf8_text(kind, size)
    validate = utils.validate_utf8
    assert validate(data) is True
    benchmark(validate, data)


# -- ws4py: Frame.build / Stream.parser (Frame.mask, Frame.unmask) and its Utf8Validator ------------------


@sizes
def bench_ws4py_send(benchmark: Any, accelerated: bool, patch_state: Any, size: int, payload: Any, peer: Any) -> None:
    """``BinaryMessage(data).single(mask=True)``: ``Frame.build`` with a random key, as a ws4py client sends."""
    messaging = peer("ws4py.messaging")
    framing = peer("ws4py.framing")
    setup_row(benchmark, patch_state, "ws4py", accelerated, "send", size,
              lambda: vars(framing.Frame)["mask"])  # fmt: skip
    data = payload(size)
    message = messaging.BinaryMessage(data)
    single = message.single
    assert unframe(bytes(single(mask=True))) == data
    benchmark(single, mask=True)


@sizes
def bench_ws4py_receive(
    benchmark: Any, accelerated: bool, patch_state: Any, size: int, payload: Any, peer: Any
) -> None:
    """Server ``Stream().parser.send(frame)``: one masked binary message parsed and unmasked."""
    streaming = peer("ws4py.streaming")
    framing = peer("ws4py.framing")
    setup_row(benchmark, patch_state, "ws4py", accelerated, "receive", size,
              lambda: vars(framing.Frame)["unmask"])  # fmt: skip
    data = payload(size)
    wire = client_frame(data)
    stream = streaming.Stream()
    parse = stream.parser.send

    def run() -> Any:
        parse(wire)
        message, stream.message = stream.message, None  # as WebSocket.process hands it over
        return message

    message = run()
    assert message is not None and message.completed and bytes(message.data) == data and not stream.errors
    benchmark(run)


@utf8_cases
def bench_ws4py_utf8(
    benchmark: Any, accelerated: bool, patch_state: Any, kind: str, size: int, utf8_text: Any, peer: Any
) -> None:
    """``Utf8Validator().validate(text)`` from ``ws4py.streaming`` (what Stream feeds text frames to)."""
    streaming = peer("ws4py.streaming")
    setup_row(benchmark, patch_state, "ws4py", accelerated, f"utf8 {kind}", size,
              lambda: streaming.Utf8Validator)  # fmt: skip
    data = utf8_text(kind, size)
    validate = streaming.Utf8Validator().validate
    assert validate(data)[:2] == (True, True)
    benchmark(validate, data)


# -- tornado: _websocket_mask, as WebSocketProtocol13 calls it per frame ------------------------------


@sizes
def bench_tornado_mask(benchmark: Any, accelerated: bool, patch_state: Any, size: int, payload: Any, peer: Any) -> None:
    """``tornado.websocket._websocket_mask(mask, data)`` -> bytes: what ``_write_frame`` (client) and
    ``_receive_frame_loop`` (server) call per frame (tornado's own: its C ``speedups``)."""
    websocket = peer("tornado.websocket")
    setup_row(benchmark, patch_state, "tornado", accelerated, "mask", size,
              lambda: websocket._websocket_mask)  # fmt: skip
    data = payload(size)
    mask = websocket._websocket_mask
    assert mask(MASK_KEY, data) == kernels.mask(data, MASK_KEY)
    benchmark(mask, MASK_KEY, data)


# -- gunicorn: the ASGI worker's WebSocketProtocol._unmask, per frame received ------------------------


@sizes
def bench_gunicorn_unmask(
    benchmark: Any, accelerated: bool, patch_state: Any, size: int, payload: Any, peer: Any
) -> None:
    """``WebSocketProtocol._unmask(payload, key)``: what ``_read_frame`` calls for every frame a client sends."""
    websocket = peer("gunicorn.asgi.websocket")
    setup_row(benchmark, patch_state, "gunicorn", accelerated, "unmask (server receive)", size,
              lambda: vars(websocket.WebSocketProtocol)["_unmask"])  # fmt: skip
    data = payload(size)
    unmask = websocket.WebSocketProtocol.__new__(websocket.WebSocketProtocol)._unmask
    assert unmask(data, MASK_KEY) == kernels.mask(data, MASK_KEY)
    benchmark(unmask, data, MASK_KEY)


# -- the speed-up table: python benchmarks/bench_adapters.py RESULT.json --------------------------------

#: What each adapter patches, for the table (see each adapter's docstring).
PATCHED = {
    "websockets": "`Frame.parse`, `Frame.serialize` (its C `apply_mask` is left alone)",
    "wsproto": "`frame_protocol.XorMaskerSimple`",
    "aiohttp": "`websocket_mask` in `_websocket.writer` and `reader_py`, when pure Python (not its Cython mask)",
    "autobahn": "`create_xor_masker`, `XorMaskerNull`, `Utf8Validator` in `websocket.protocol`",
    "websocket-client": "`ABNF.mask`, `_abnf._mask`, `_utils._validate_utf8`",
    "ws4py": "`Frame.mask`/`unmask`, `streaming.Utf8Validator`",
    "tornado": "`_websocket_mask` in `tornado.websocket` and `tornado.util`",
    "gunicorn": "`asgi.websocket.WebSocketProtocol._unmask`",
}


def speedups(data: dict[str, Any], stat: str = "median") -> dict[tuple[str, str, str], tuple[float, float]]:
    """``{(library, path, size): (t_before, t_after)}`` for each group that has both rows."""
    pairs: dict[tuple[str, str, str], dict[bool, float]] = {}
    for bench in data["benchmarks"]:
        extra = bench.get("extra_info", {})
        if "accelerated" in extra:
            key = (extra["library"], extra["path"], extra["size"])
            pairs.setdefault(key, {})[bool(extra["accelerated"])] = bench["stats"][stat]
    return {key: (pair[False], pair[True]) for key, pair in pairs.items() if len(pair) == 2}


def fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _ratio(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def fmt_ratio(ratios: list[float]) -> str:
    """The median speed-up of the runs, and their range when there are several."""
    text = _ratio(statistics.median(ratios)) + "x"
    if len(ratios) > 1:
        text += f" ({_ratio(min(ratios))}-{_ratio(max(ratios))})"
    return text


def table(runs: list[dict[str, Any]], stat: str = "median") -> str:
    """Markdown: one row per (library, path) with the speed-up per size, then the times of every group.

    With several runs, a speed-up is the median of the runs' speed-ups (each the ratio of that
    run's two ``stat`` times), followed by the lowest and highest; the times are the medians.
    """
    per_run = [speedups(data, stat) for data in runs]
    keys = list(dict.fromkeys(key for result in per_run for key in result))
    sizes_seen = list(dict.fromkeys(size for _, _, size in keys))
    rows: dict[tuple[str, str], dict[str, str]] = {}
    detail = [f"| group | {stat} before | {stat} after | speed-up |", "|---|---:|---:|---:|"]
    for key in keys:
        found = [result[key] for result in per_run if key in result]
        ratios = [before / after for before, after in found]
        library, path, size = key
        rows.setdefault((library, path), {})[size] = fmt_ratio(ratios)
        before = statistics.median(b for b, _ in found)
        after = statistics.median(a for _, a in found)
        detail.append(f"| {library}: {path} {size} | {fmt_time(before)} | {fmt_time(after)} | {fmt_ratio(ratios)} |")
    out = [f"| library | path | {' | '.join(sizes_seen)} |", "|---|---|" + "---:|" * len(sizes_seen)]
    for (library, path), cells in rows.items():
        out.append(f"| {library} | {path} | {' | '.join(cells.get(size, '') for size in sizes_seen)} |")
    return "\n".join([*out, "", *detail])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Speed-up table from --benchmark-json files of bench_adapters.py")
    parser.add_argument("json", type=Path, nargs="+", help="one file per run; several runs give a range")
    parser.add_argument("--stat", default="median", choices=["median", "mean", "min"])
    args = parser.parse_args(argv)
    runs = [json.loads(path.read_text()) for path in args.json]
    info = runs[0].get("machine_info", {}).get("wsfast_bench", {})
    if info:
        print(
            f"Machine: {info['cpu_model']}, {info['cpu_count']} CPUs, affinity {info['affinity']}. {info['python']}. "
            f"wsfast {info['wsfast']} ({info['wsfast_implementation']}, simd={info['wsfast_simd']})."
        )
    versions = sorted({(b["extra_info"]["library"], b["extra_info"]["version"]) for b in runs[0]["benchmarks"]
                       if "library" in b.get("extra_info", {})})  # fmt: skip
    print("Versions: " + ", ".join(f"{name} {ver}" for name, ver in versions) + ".")
    print(
        f"Speed-up = {args.stat} time before / {args.stat} time after wsfast.accelerate(), above 1 is faster; "
        f"{len(runs)} run(s)" + (": median of the runs (lowest-highest)." if len(runs) > 1 else ".")
    )
    print()
    print(table(runs, args.stat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
