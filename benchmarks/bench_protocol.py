"""Protocol benchmarks: whole messages through each library's receive path, no sockets.

One group per row of the table in README.md ("Protocol"): a stream of masked
client frames, cut into 64 KiB reads as a socket would deliver them, is fed to
a fresh server-side connection per round, and the round ends when every
message has come out as a complete message object (``bytes``, or ``str`` for
text). Contenders, in each group:

- ``wsfast[cy]``, ``wsfast[py]``: ``wsfast.Connection("server")`` (OPEN, no
  handshake), ``receive_data(read)`` -> events; a message is its own event.
- ``websockets``: sans-IO ``ServerProtocol(state=OPEN, max_size=None)``,
  ``receive_data(read)`` then ``events_received()`` -> one ``Frame`` per message.
- ``wsproto``: ``WSConnection(ConnectionType.SERVER)`` after an upgrade
  request; a message cut by a read comes out in pieces, which are joined.
- ``aiohttp``: the Cython ``WebSocketReader`` into its ``WebSocketDataQueue``,
  drained after each read as a consumer would.
- ``picows``: ``WSProtocol`` with a fake transport (as in bench_kernels.py);
  no permessage-deflate support, so it is skipped in the deflate groups.

**Which wsfast twin.** ``wsfast.Connection`` uses the kernels that
``wsfast.kernels`` chose at import (``WSFAST_PURE``), and the protocol modules
bind them at import (``from .kernels import FrameParser``). So the row of the
other twin runs a second copy of wsfast's protocol modules, imported under
another package name (``_wsfast_py`` or ``_wsfast_cy``) with ``WSFAST_PURE``
set (or unset) for that import only: the same source files and the same
switch as a ``WSFAST_PURE=1`` process, timed in the same process and group
as the peers. Nothing is patched, and the copy's choice is asserted.

**UTF-8** (text groups). wsfast, aiohttp (``decode_text=True``) and wsproto
validate and decode text themselves. websockets' sans-IO ``Protocol`` and
picows do not check text frames: the driver calls what their users call,
``frame.data.decode()`` (as websockets' own message assembler does) and
picows' ``frame.get_payload_as_utf8_text()``, both strict decodes, and that
call is timed. So every contender ends with a validated ``str``.

**Compressed groups.** The stream is built once the way a client sends it:
one raw-deflate ``zlib`` compressor with context takeover and 15-bit windows,
``Z_SYNC_FLUSH`` per message with the trailing ``00 00 ff ff`` removed, RSV1
set, then masked. "random" groups compress the very messages of the
uncompressed groups (random bytes: deflate stores them, so inflating is a
copy); "JSON-like" groups compress seeded JSON-like UTF-8 text, as sent in
real applications (4-5x smaller on the wire).

Every contender's run is checked once before timing (message count, type and
the last message's content), so ``--benchmark-disable`` is a smoke test; it
runs on a tenth of the messages, to take seconds.
``extra_info`` carries ``label``, ``version``, ``messages``, ``bytes`` (on the
wire), ``utf8`` (who validates), and after timing ``messages_per_s`` (from
the median).

Run: ``taskset -c 1 python -m pytest benchmarks/bench_protocol.py --benchmark-only``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import math
import os
import random
import sys
import time
import types
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import pytest
from _peers import UPGRADE as _UPGRADE
from _peers import AiohttpProtocol as _AiohttpProtocol
from _peers import open_picows_server
from bench_kernels import READ_SIZE, WSFAST_VERSION, KiB, MiB, setup_bench, size_id

import wsfast
import wsfast.extensions
import wsfast.protocol
from wsfast.kernels import _py, build_frame

SEED = 6455
#: Rounds are calibrated to about this many seconds per contender, within the bounds below.
ROUND_TARGET = 0.6
MIN_ROUNDS, MAX_ROUNDS = 7, 40


# -- the two wsfast twins ------------------------------------------------------


def _load_twin(implementation: str) -> tuple[Any, Any]:
    """Import a second copy of wsfast's protocol modules bound to the other kernels.

    The copy lives under ``_wsfast_py`` / ``_wsfast_cy``: a bare package whose
    ``__path__`` is wsfast's own directory, so ``wsfast.protocol``'s relative
    imports (``.frames``, ``.kernels`` ...) load copies too, and the copy's
    ``kernels/__init__`` reads ``WSFAST_PURE`` afresh. The package
    ``__init__`` (server, client, adapters) is not run: only what
    ``Connection`` needs is imported.
    """
    name = "_wsfast_" + ("py" if implementation == "python" else "cy")
    package = types.ModuleType(name)
    package.__path__ = list(wsfast.__path__)
    package.__package__ = name
    sys.modules[name] = package
    saved = os.environ.get("WSFAST_PURE")
    if implementation == "python":
        os.environ["WSFAST_PURE"] = "1"
    else:
        os.environ.pop("WSFAST_PURE", None)
    try:
        protocol = importlib.import_module(name + ".protocol")
        extensions = importlib.import_module(name + ".extensions")
    finally:
        if saved is None:
            os.environ.pop("WSFAST_PURE", None)
        else:
            os.environ["WSFAST_PURE"] = saved
    kernels = sys.modules[name + ".kernels"]
    assert kernels.IMPLEMENTATION == implementation, (name, kernels.IMPLEMENTATION)
    assert protocol.FrameParser is kernels.FrameParser and protocol.Utf8Validator is kernels.Utf8Validator
    return protocol, extensions


#: implementation -> (protocol module, extensions module). The imported wsfast
#: serves its own implementation; the other twin is a copy, loaded here at
#: collection so that conftest's gc.freeze() covers it as it covers wsfast.
TWINS: dict[str, tuple[Any, Any]] = {wsfast.IMPLEMENTATION: (wsfast.protocol, wsfast.extensions)}
if wsfast.IMPLEMENTATION == "cython":
    TWINS["python"] = _load_twin("python")
elif wsfast.kernels.HAS_EXTENSION:
    TWINS["cython"] = _load_twin("cython")


# -- inputs -----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One group: ``count`` messages of ``size`` bytes, text or binary, compressed or not."""

    id: str
    size: int
    count: int
    text: bool = False
    deflate: bool = False

    @property
    def group(self) -> str:
        count = f"{self.count // 1000}k" if self.count >= 1000 else str(self.count)
        kind = " text (JSON-like)" if self.text else ""
        if self.deflate:
            return f"deflate {count} x {size_id(self.size)}" + (kind or " (random)")
        return f"Connection {count} x {size_id(self.size)}" + (kind and " text")


BIG_COUNT = 10  # 1 MiB messages per round: 10 MiB on the wire, enough to time, quick to build
CASES = [
    Case("16B", 16, 10_000),
    Case("1KiB", KiB, 10_000),
    Case("1MiB", MiB, BIG_COUNT),
    Case("1KiB-text", KiB, 10_000, text=True),
    Case("deflate-1KiB", KiB, 10_000, deflate=True),
    Case("deflate-1MiB", MiB, BIG_COUNT, deflate=True),
    Case("deflate-1KiB-text", KiB, 10_000, text=True, deflate=True),
    Case("deflate-1MiB-text", MiB, BIG_COUNT, text=True, deflate=True),
]

_NAMES = ["alice", "bob", "Zoë", "José", "Søren", "Ōtani", "Łukasz", "Ada", "Grace", "Linus"]
_WORDS = (
    "the quick brown fox jumps over lazy dog price status order shipped pending ok error retry "
    "café naïve Grüße déjà vu 😀 🚀 東京 漢字 Привет мир ünïcödé total items user session update"
).split()


@functools.cache
def _json_pool() -> bytes:
    """About 2 MiB of seeded JSON-like records, mostly ASCII, some 2-4 byte characters."""
    rng = random.Random(SEED)
    records = []
    size = 0
    while size < 2 * MiB:
        words = " ".join(rng.choices(_WORDS, k=rng.randint(3, 14)))
        record = (
            f'{{"id":{rng.randrange(10**7)},"user":"{rng.choice(_NAMES)}","text":"{words}",'
            f'"score":{rng.random() * 100:.3f},"ok":{rng.choice(["true", "false"])}}},'
        )
        records.append(record)
        size += len(record) + 8  # a rough byte count is enough here
    return "".join(records).encode("utf-8")


def _json_text(rng: random.Random, size: int) -> bytes:
    """``size`` bytes of valid UTF-8 cut from the pool at a seeded offset."""
    pool = _json_pool()
    start = rng.randrange(len(pool) - 2 * size)
    while pool[start] & 0xC0 == 0x80:  # not inside a code point: skip continuation bytes
        start += 1
    end = start + size
    while pool[end] & 0xC0 == 0x80:  # nor cut one at the end
        end -= 1
    return pool[start:end] + b" " * (size - (end - start))


@dataclass(frozen=True)
class Stream:
    reads: tuple[bytes, ...]
    last: bytes | str  # the last message, as every contender must deliver it
    wire_bytes: int


@functools.cache
def make_stream(case: Case) -> Stream:
    """The client's frames for ``case``, cut every 64 KiB, built once per session.

    Binary payloads come from the same seeded sequence as conftest's
    ``frame_stream`` (payload, then mask key, per frame), so the uncompressed
    binary streams are byte for byte those of bench_kernels' FrameParser rows.
    Frames are built by the active kernels' ``build_frame`` (tests/ check that
    it equals the pure-Python one; the peers' own unmasking checks it again).
    """
    rng = random.Random(SEED)
    # zlib's default level 6 for text. Random bytes are stored whatever the
    # level (level 0 and 6 give the same bytes for 1 KiB messages; for 1 MiB
    # both give stored blocks, split differently), and level 0 builds the
    # stream 30x faster.
    level = 6 if case.text else 0
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 8) if case.deflate else None
    opcode = 0x1 if case.text else 0x2
    frames = []
    data = b""
    for _ in range(case.count):
        data = _json_text(rng, case.size) if case.text else rng.randbytes(case.size)
        wire, rsv = data, 0
        if compressor is not None:
            wire = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
            assert wire.endswith(b"\x00\x00\xff\xff")
            wire, rsv = wire[:-4], 0x4  # RFC 7692 §7.2.1; RSV1 on the (only) frame
        frames.append(build_frame(opcode, wire, rsv=rsv, mask_key=rng.randbytes(4)))
    stream = b"".join(frames)
    reads = tuple(stream[i : i + READ_SIZE] for i in range(0, len(stream), READ_SIZE))
    return Stream(reads, data.decode("utf-8") if case.text else data, len(stream))


# -- contenders -----------------------------------------------------------------

_UPGRADE_DEFLATE = _UPGRADE[:-2] + b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"


Driver = tuple[Callable[[], tuple[Any, ...]], Callable[..., tuple[int, Any]], str, str, str]


def _wsfast(implementation: str, case: Case, reads: tuple[bytes, ...]) -> Driver:
    protocol, extensions = TWINS[implementation]
    connection_cls, codec_cls = protocol.Connection, extensions.PerMessageDeflateCodec

    # What the stream was compressed with (make_stream): context takeover, 15-bit windows.
    settings = {
        "is_server": True,
        "local_no_context_takeover": False,
        "remote_no_context_takeover": False,
        "local_max_window_bits": 15,
        "remote_max_window_bits": 15,
    }

    def make() -> tuple[Any, ...]:
        codecs = [codec_cls(**settings)] if case.deflate else []
        return (connection_cls("server", extensions=codecs),)

    def drive(conn: Any) -> tuple[int, Any]:
        receive = conn.receive_data
        n = 0
        last = None
        for data in reads:
            events = receive(data)
            if events:
                n += len(events)
                last = events[-1]
        return n, last

    label = "wsfast[py]" if implementation == "python" else "wsfast[cy]"
    return make, drive, label, WSFAST_VERSION, "validates (decode)"


def _peer_driver(name: str, case: Case, reads: tuple[bytes, ...], peer: Any, request: Any) -> Driver:
    """Return ``(make, drive, label, version, utf8)``: ``make()`` is untimed, ``drive(*state)`` timed."""
    if name == "websockets":
        server = peer("websockets.server")
        State = peer("websockets.protocol").State
        PerMessageDeflate = peer("websockets.extensions.permessage_deflate").PerMessageDeflate

        def make() -> tuple[Any, ...]:
            proto = server.ServerProtocol(state=State.OPEN, max_size=None)
            if case.deflate:
                # In place: the parser is already suspended in Frame.parse() with this list.
                proto.extensions.append(PerMessageDeflate(False, False, 15, 15))
            return (proto,)

        if case.text:

            def drive(proto: Any) -> tuple[int, Any]:
                receive, events_received = proto.receive_data, proto.events_received
                n = 0
                last = None
                for data in reads:
                    receive(data)
                    for frame in events_received():
                        last = frame.data.decode()  # websockets' Protocol leaves UTF-8 to its assembler
                        n += 1
                return n, last

            utf8 = "not checked by Protocol; the driver's frame.data.decode()"
        else:

            def drive(proto: Any) -> tuple[int, Any]:
                receive, events_received = proto.receive_data, proto.events_received
                n = 0
                last = None
                for data in reads:
                    receive(data)
                    events = events_received()
                    if events:
                        n += len(events)
                        last = events[-1].data
                return n, last

            utf8 = ""
        return make, drive, "websockets", version("websockets"), utf8

    if name == "wsproto":
        wsproto = peer("wsproto")
        wsevents = peer("wsproto.events")
        PerMessageDeflate = peer("wsproto.extensions").PerMessageDeflate

        def make() -> tuple[Any, ...]:
            conn = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
            conn.receive_data(_UPGRADE_DEFLATE if case.deflate else _UPGRADE)
            (event,) = conn.events()
            assert isinstance(event, wsevents.Request), event
            conn.send(wsevents.AcceptConnection(extensions=[PerMessageDeflate()] if case.deflate else []))
            return (conn,)

        def drive(conn: Any) -> tuple[int, Any]:
            receive, events = conn.receive_data, conn.events
            n = 0
            last = None
            parts: list[Any] = []
            for data in reads:
                receive(data)
                for event in events():
                    if event.message_finished:
                        if parts:  # the message came in pieces: join them, as a wsproto user must
                            parts.append(event.data)
                            last = parts[0][:0].join(parts)
                            parts = []
                        else:
                            last = event.data
                        n += 1
                    else:
                        parts.append(event.data)
            return n, last

        return make, drive, "wsproto", version("wsproto"), "validates (incremental decoder)"

    if name == "aiohttp":
        reader_c = peer("aiohttp._websocket.reader_c")
        queue_cls, reader_cls = reader_c.WebSocketDataQueue, reader_c.WebSocketReader

        def make() -> tuple[Any, ...]:
            queue = queue_cls(_AiohttpProtocol(), 2**30, loop=None)
            # (queue, max_msg_size, compress, decode_text)
            return reader_cls(queue, 64 * MiB, case.deflate, True), queue

        def drive(reader: Any, queue: Any) -> tuple[int, Any]:
            feed, buffer = reader.feed_data, queue._buffer
            n = 0
            last = None
            for data in reads:
                feed(data)
                if buffer:  # a consumer takes the messages: (WSMessage, size) pairs
                    n += len(buffer)
                    last = buffer[-1][0].data
                    buffer.clear()
            return n, last

        return make, drive, "aiohttp", version("aiohttp"), "validates (decode_text=True)"

    if name == "picows":
        picows = peer("picows.picows")
        if case.deflate:
            pytest.skip("picows has no permessage-deflate support")
        loop, sock = request.getfixturevalue("picows_env")
        logging.getLogger("wsfast.bench.picows").setLevel(logging.WARNING)
        text = case.text

        class Sink(picows.WSListener):  # what a picows user writes: keep each message
            def __init__(self) -> None:
                self.messages: list[Any] = []
                self.append = self.messages.append

            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                self.append(frame.get_payload_as_utf8_text() if text else frame.get_payload_as_bytes())

        async def open_protocol() -> Any:
            sink = Sink()
            proto = open_picows_server(sock, sink)
            return proto, sink

        def make() -> tuple[Any, ...]:
            return loop.run_until_complete(open_protocol())  # type: ignore[no-any-return]

        def drive(proto: Any, sink: Any) -> tuple[int, Any]:
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
            return len(sink.messages), sink.messages[-1] if sink.messages else None

        utf8 = "not checked by picows; the driver's get_payload_as_utf8_text()" if text else ""
        return make, drive, "picows", version("picows"), utf8

    raise ValueError(name)


# -- the timed run ----------------------------------------------------------------


def _run(benchmark: Any, case: Case, stream: Stream, driver: Driver) -> None:
    """Check one untimed run, then time ``drive`` on a fresh ``make()`` state per round."""
    make, drive, label, ver, utf8 = driver
    setup_bench(benchmark, case.group, label, ver, messages=case.count, frames=case.count, bytes=stream.wire_bytes)
    if case.text:
        benchmark.extra_info["utf8"] = utf8
    started = time.perf_counter()
    if benchmark.disabled:  # --benchmark-disable: one run, checked below, is the smoke test
        n, got = benchmark.pedantic(drive, setup=lambda: (make(), {}), rounds=1)
    else:
        n, got = drive(*make())
    elapsed = time.perf_counter() - started
    kind = str if case.text else (bytes, bytearray)
    assert n == case.count, f"{label}: {n} messages, expected {case.count}"
    assert isinstance(got, kind), f"{label}: last message is a {type(got).__name__}"
    assert got == stream.last, f"{label}: last message differs: {got[:16]!r}"
    if benchmark.disabled:
        return
    rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, math.ceil(ROUND_TARGET / max(elapsed, 1e-6))))
    benchmark.pedantic(drive, setup=lambda: (make(), {}), rounds=rounds)
    median = benchmark.stats.stats.median
    benchmark.extra_info["messages_per_s"] = round(case.count / median)


@pytest.fixture(scope="module", params=CASES, ids=[case.id for case in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    """The group. Module-scoped, so pytest runs a group's contenders back to back.

    A parametrised module-scoped fixture makes pytest order the items by it,
    across both functions below: on a shared machine, whose load drifts over
    minutes, the rows of one group are then measured under the same load.
    """
    case: Case = request.param
    if request.config.getoption("benchmark_disable"):
        # A smoke run checks every contender on a tenth of the messages.
        case = dataclasses.replace(case, count=max(case.count // 10, 2))
    return case


def bench_connection_wsfast(benchmark: Any, impl: Any, case: Case) -> None:
    """wsfast ``Connection("server").receive_data(read)`` -> messages, one twin per ``impl``."""
    implementation = "python" if impl is _py else "cython"
    stream = make_stream(case)
    _run(benchmark, case, stream, _wsfast(implementation, case, stream.reads))


@pytest.mark.parametrize("name", ["picows", "aiohttp", "websockets", "wsproto"])
def bench_connection_peer(benchmark: Any, name: str, case: Case, peer: Any, request: Any) -> None:
    """A peer's server-side receive path fed the same reads (see ``_peer_driver``)."""
    stream = make_stream(case)
    _run(benchmark, case, stream, _peer_driver(name, case, stream.reads, peer, request))
