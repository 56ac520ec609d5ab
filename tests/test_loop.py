"""The selector loop and its streams.

The :class:`Stream` tests drive a stream over a scripted socket: each write
takes as many bytes as the script says, or raises what it says (EAGAIN, a
TLS want-read or want-write, a broken pipe), so that every partial and failed
write happens exactly where the test wants it.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import select
import selectors
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from tests.timeouts import TIMEOUT
from wsfast import _stream_py, kernels
from wsfast.loop import Loop, Poller, Stream, StreamCore

STEP_MODULES = [_stream_py]
if importlib.util.find_spec("wsfast._stream_c") is not None:
    from wsfast import _stream_c

    STEP_MODULES.append(_stream_c)
STEPS = [module.step for module in STEP_MODULES]
TWIN_IDS = [module.__name__.rsplit(".", 1)[1] for module in STEP_MODULES]


def test_two_loops_do_not_share_the_receive_buffer() -> None:
    """Two loops in two threads: what one reads must not overwrite what the other is handling.

    A server and a wsfast client (or two servers) in one process are two
    loops in two threads. Run in one thread, deterministically: loop B runs once while loop A is in
    its ``on_data`` callback, as B's thread can at any time.
    """
    loop_a, loop_b = Loop(), Loop()
    a_in, a_out = socket.socketpair()
    b_in, b_out = socket.socketpair()
    seen: list[tuple[bytes, bytes]] = []

    def run_once(loop: Loop) -> None:
        loop.call_soon_threadsafe(loop.stop)
        loop.run()

    def on_data_a(view: memoryview) -> None:
        before = bytes(view)
        b_out.sendall(b"B" * len(view))
        run_once(loop_b)
        seen.append((before, bytes(view)))

    try:
        Stream(loop_a, a_in, on_data=on_data_a, on_close=lambda: None)
        Stream(loop_b, b_in, on_data=lambda view: None, on_close=lambda: None)
        a_out.sendall(b"A" * 100)
        run_once(loop_a)
    finally:
        for sock in (a_in, a_out, b_in, b_out):
            sock.close()
        loop_a.close()
        loop_b.close()
    assert seen == [(b"A" * 100, b"A" * 100)]


# --- Stream over a scripted socket ------------------------------------------------------


class ScriptedSocket:
    """The part of a socket a :class:`Stream` uses, with writes that follow a script.

    Each write takes the next step of ``script``: a byte count (the socket
    takes at most that many), an exception class to raise, or, once the
    script is empty, everything. A socket pair supplies the file descriptor
    the loop's poller watches.
    """

    def __init__(self, *script: int | type[BaseException]) -> None:
        self.script = collections.deque(script)
        self.written = bytearray()
        #: What each write call was given, in order.
        self.attempts: list[bytes] = []
        self.closed = False
        self._pair = socket.socketpair()

    def fileno(self) -> int:
        return self._pair[0].fileno()

    def setblocking(self, flag: bool) -> None:
        pass

    def send(self, data: Any) -> int:
        return self._write(bytes(data))

    def sendmsg(self, buffers: list[Any]) -> int:
        return self._write(b"".join(bytes(memoryview(buffer).cast("B")) for buffer in buffers))

    def recv_into(self, view: memoryview) -> int:
        raise BlockingIOError

    def close(self) -> None:
        self.closed = True
        for sock in self._pair:
            sock.close()

    def _write(self, data: bytes) -> int:
        self.attempts.append(data)
        step = self.script.popleft() if self.script else len(data)
        if isinstance(step, type):
            raise step()
        taken = data[:step]
        self.written += taken
        return len(taken)


class ScriptedTLSSocket(ssl.SSLSocket):
    """A :class:`ScriptedSocket` that a :class:`Stream` takes for TLS: its
    handshake and its writes follow scripts, and it has no bytes pending."""

    def __init__(self, *script: int | type[BaseException], handshake: tuple[type[BaseException], ...] = ()) -> None:
        self.plain = ScriptedSocket(*script)
        self.handshake_steps = collections.deque(handshake)
        self.handshakes = 0
        self._sslobj = None
        socket.socket.__init__(self, fileno=os.dup(self.plain.fileno()))

    def do_handshake(self, block: bool = False) -> None:
        self.handshakes += 1
        if self.handshake_steps:
            raise self.handshake_steps.popleft()()

    def send(self, data: Any, flags: int = 0) -> int:
        return self.plain.send(data)

    def recv_into(self, buffer: Any, nbytes: int | None = None, flags: int = 0) -> int:
        raise ssl.SSLWantReadError()

    def pending(self) -> int:
        return 0

    def close(self) -> None:
        self.plain.close()
        socket.socket.close(self)


class Watched:
    """Records the events a loop's poller is asked to watch for each socket."""

    def __init__(self, loop: Loop) -> None:
        self.events: list[int] = []
        modify = loop.selector.modify

        def record(fileobj: Any, events: int, callback: Any) -> None:
            self.events.append(events)
            modify(fileobj, events, callback)

        loop.selector.modify = record  # type: ignore[method-assign]

    @property
    def last(self) -> int:
        return self.events[-1] if self.events else selectors.EVENT_READ


READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


@pytest.fixture
def loop() -> Iterator[Loop]:
    loop = Loop()
    yield loop
    loop.close()


def stream_on(loop: Loop, sock: Any, closes: list[str] | None = None) -> Stream:
    """A stream over a scripted socket: the pure-Python core only.

    The compiled core writes to the file descriptor itself, not through the
    socket object, so a script cannot drive it; these tests run in the
    ``WSFAST_PURE=1`` half of the suite, and the compiled core's partial writes
    are covered over real sockets below.
    """
    if StreamCore is not _stream_py.StreamCore:
        pytest.skip("a scripted socket drives the pure-Python stream core only (the WSFAST_PURE=1 run)")
    return Stream(
        loop,
        sock,
        on_data=lambda view: None,
        on_close=lambda: closes.append("closed") if closes is not None else None,
    )


def test_a_partial_write_keeps_the_rest_queued_and_watches_for_writability(loop: Loop) -> None:
    sock = ScriptedSocket(3)
    watched = Watched(loop)
    stream = stream_on(loop, sock)
    stream.write([b"head", b"payload"])
    stream.flush()
    assert sock.written == b"hea"
    assert stream.queued == 8 and stream.head_started
    assert watched.last == READ | WRITE
    stream.flush()
    assert sock.written == b"headpayload"
    assert stream.queued == 0 and not stream.head_started
    assert watched.last == READ
    stream.close()


def test_a_partial_scatter_gather_write_resumes_inside_a_buffer(loop: Loop) -> None:
    big = bytes(range(256)) * 512  # 128 KiB: over the join limit, written with sendmsg
    sock = ScriptedSocket(70_000, 1)
    stream = stream_on(loop, sock)
    stream.write([b"\x82\x7f", big])
    stream.write([b"tail"])
    stream.flush()  # the socket takes 70,000 bytes: full, wait for writability
    assert len(sock.written) == 70_000 and stream.head_started
    stream.flush()  # then one byte
    assert len(sock.written) == 70_001
    stream.flush()
    assert sock.written == b"\x82\x7f" + big + b"tail"
    assert stream.queued == 0
    stream.close()


def test_eagain_writes_nothing_and_retries_once_writable(loop: Loop) -> None:
    sock = ScriptedSocket(BlockingIOError)
    watched = Watched(loop)
    stream = stream_on(loop, sock)
    stream.write([b"frame"])
    stream.flush()
    assert sock.written == b"" and stream.queued == 5
    assert watched.last == READ | WRITE
    stream.flush()
    assert sock.written == b"frame" and stream.queued == 0
    assert watched.last == READ
    stream.close()


def test_frames_written_while_the_socket_is_full_wait_for_writability(loop: Loop) -> None:
    sock = ScriptedSocket(BlockingIOError)
    stream = stream_on(loop, sock)
    stream.write([b"one"])
    stream.flush()
    stream.write([b"two"])  # watched for writability: the loop flushes when it is
    assert sock.attempts == [b"one"]
    stream.flush()
    assert sock.written == b"onetwo"
    stream.close()


def test_close_after_flush_waits_for_the_queue_then_closes_once(loop: Loop) -> None:
    sock = ScriptedSocket(2)
    closes: list[str] = []
    stream = stream_on(loop, sock, closes)
    stream.write([b"close frame"])
    stream.close_after_flush()
    stream.write([b"late"])  # after close_after_flush: dropped
    stream.flush()
    assert not stream.closed and not sock.closed
    stream.flush()
    assert sock.written == b"close frame"
    assert stream.closed and sock.closed and closes == ["closed"]
    stream.close()
    assert closes == ["closed"]


def test_close_after_flush_with_nothing_queued_closes_at_once(loop: Loop) -> None:
    sock = ScriptedSocket()
    closes: list[str] = []
    stream = stream_on(loop, sock, closes)
    stream.close_after_flush()
    assert stream.closed and sock.closed and closes == ["closed"]


def test_a_failed_write_closes_the_stream(loop: Loop) -> None:
    sock = ScriptedSocket(BrokenPipeError)
    closes: list[str] = []
    stream = stream_on(loop, sock, closes)
    stream.write([b"frame"])
    stream.flush()
    assert stream.closed and closes == ["closed"] and stream.queued == 0


def run_once(loop: Loop) -> None:
    loop.call_soon_threadsafe(loop.stop)
    loop.run()


def test_tls_handshake_want_read_then_want_write_then_done_flushes_the_queue(loop: Loop) -> None:
    sock = ScriptedTLSSocket(handshake=(ssl.SSLWantReadError, ssl.SSLWantWriteError))
    watched = Watched(loop)
    ready: list[str] = []
    stream = Stream(
        loop, sock, on_data=lambda view: None, on_close=lambda: None, on_ready=lambda: ready.append("ready")
    )
    stream.write([b"queued during the handshake"])
    run_once(loop)  # the handshake starts from the loop: want-read
    assert sock.handshakes == 1 and watched.last == READ and not ready
    stream._on_event(sock, READ)  # readable: want-write
    assert sock.handshakes == 2 and watched.last == READ | WRITE
    stream._on_event(sock, WRITE)  # writable: done
    assert ready == ["ready"] and watched.last == READ
    assert sock.plain.written == b"queued during the handshake"
    stream.close()


def test_tls_want_write_retries_with_the_very_same_bytes(loop: Loop) -> None:
    sock = ScriptedTLSSocket(ssl.SSLWantWriteError, 4)
    stream = Stream(loop, sock, on_data=lambda view: None, on_close=lambda: None)
    stream._on_event(sock, READ)  # the handshake completes at once
    stream.write([b"ab", b"cd"])
    stream.flush()
    stream.write([b"ef"])  # queued behind the pending chunk, not merged into it
    stream.flush()
    stream.flush()
    assert sock.plain.attempts == [b"abcd", b"abcd", b"ef"]
    assert sock.plain.written == b"abcdef" and stream.queued == 0
    stream.close()


def test_tls_want_read_while_writing_keeps_the_chunk_for_later(loop: Loop) -> None:
    sock = ScriptedTLSSocket(ssl.SSLWantReadError)
    watched = Watched(loop)
    stream = Stream(loop, sock, on_data=lambda view: None, on_close=lambda: None)
    stream._on_event(sock, READ)
    stream.write([b"renegotiating"])
    stream.flush()
    assert stream.queued == 13 and watched.last == READ | WRITE
    stream.flush()
    assert sock.plain.attempts == [b"renegotiating", b"renegotiating"] and stream.queued == 0
    stream.close()


@pytest.mark.parametrize("backend", ["epoll", "selectors"])
def test_a_parked_socket_reports_nothing_until_watched_again(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if backend == "selectors":
        monkeypatch.delattr(select, "epoll", raising=False)
    elif not hasattr(select, "epoll"):
        pytest.skip("no epoll on this platform")
    poller = Poller()
    reader, writer = socket.socketpair()
    with reader, writer:

        def callback(fileobj: object, events: int) -> None:
            """Never called: poll() only returns the callbacks."""

        poller.register(reader, selectors.EVENT_READ, callback)
        writer.send(b"x")
        poller.modify(reader, 0, callback)
        assert poller.poll(0) == []
        poller.modify(reader, selectors.EVENT_READ, callback)
        assert poller.poll(0) == [(reader, callback, selectors.EVENT_READ)]
        poller.modify(reader, 0, callback)
        poller.unregister(reader)
        poller.close()


@pytest.mark.parametrize("backend", ["epoll", "selectors"])
def test_a_step_stamps_the_time_then_calls_back_and_survives_a_failing_callback(
    backend: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if backend == "selectors":
        monkeypatch.delattr(select, "epoll", raising=False)
    elif not hasattr(select, "epoll"):
        pytest.skip("no epoll on this platform")
    poller = Poller()
    loop = Loop()
    first, first_peer = socket.socketpair()
    second, second_peer = socket.socketpair()
    calls: list[tuple[object, int, float]] = []
    with first, first_peer, second, second_peer:

        def failing(fileobj: object, events: int) -> None:
            calls.append((fileobj, events, loop.now))
            raise RuntimeError("callback failed")

        def recording(fileobj: object, events: int) -> None:
            calls.append((fileobj, events, loop.now))

        poller.register(first, selectors.EVENT_READ, failing)
        poller.register(second, selectors.EVENT_READ | selectors.EVENT_WRITE, recording)
        first_peer.send(b"x")
        step = poller.stepper()
        loop.now = -1.0
        now = step(loop, TIMEOUT)
        assert now == loop.now > 0
        assert sorted((events for _, events, _ in calls)) == [selectors.EVENT_READ, selectors.EVENT_WRITE]
        assert {fileobj for fileobj, _, _ in calls} == {first, second}
        assert all(seen == now for _, _, seen in calls), "the time is stamped before the callbacks run"
        assert "error in an I/O callback" in caplog.text
        poller.unregister(first)
        poller.unregister(second)
        poller.close()
        loop.close()


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="no epoll on this platform")
@pytest.mark.parametrize("twin", STEPS, ids=[module.__name__.rsplit(".", 1)[1] for module in STEP_MODULES])
def test_step_twins_skip_unregistered_descriptors_and_wait_no_longer_than_asked(twin: Any) -> None:
    epoll = select.epoll()
    reader, writer = socket.socketpair()
    with reader, writer:
        epoll.register(reader.fileno(), select.EPOLLIN)
        writer.send(b"x")
        loop = Loop()
        assert twin(epoll, {}, loop, TIMEOUT) == loop.now  # ready, with no handler: skipped
        calls: list[int] = []
        epoll.unregister(reader.fileno())
        assert twin(epoll, {reader.fileno(): (reader, lambda f, e: calls.append(e))}, loop, 0.0) == loop.now
        assert calls == []  # nothing ready: back at once
        loop.close()
    epoll.close()


def test_streams_write_with_the_compiled_core_when_the_extension_is_used() -> None:
    compiled = kernels.IMPLEMENTATION == "cython" and importlib.util.find_spec("wsfast._stream_c") is not None
    assert (StreamCore is not _stream_py.StreamCore) is compiled


def test_frames_larger_than_the_socket_buffer_arrive_whole_and_in_order() -> None:
    """Partial writes keep the rest of a frame uncopied; every buffer type goes out as given."""
    loop = Loop()
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
    payloads = [os.urandom(n) for n in (1, 70_000, 3, 200_000, 0, 5_000)]
    frames = [[b"H", bytearray(p)] if i % 2 else [memoryview(p), b"T"] for i, p in enumerate(payloads)]
    expected = b"".join(b"".join(bytes(b) for b in frame) for frame in frames)
    try:
        stream = Stream(loop, ours, on_data=lambda view: None, on_close=lambda: None)
        for frame in frames:
            stream.write(frame)
        assert stream.queued == len(expected)
        received = bytearray()
        theirs.settimeout(TIMEOUT)
        for _ in range(10_000):
            stream.flush()
            if len(received) == len(expected):
                break
            received += theirs.recv(1 << 16)
        assert bytes(received) == expected
        assert stream.queued == 0 and stream.frame_count == 0
    finally:
        ours.close()
        theirs.close()
        loop.close()


def test_the_write_queue_counts_frames_pops_them_in_order_and_clears() -> None:
    """Both cores: ``frame_count``, ``pop_frame()``, ``drop_unsent()`` and ``clear_frames()``."""
    loop = Loop()
    ours, theirs = socket.socketpair()
    try:
        stream = Stream(loop, ours, on_data=lambda view: None, on_close=lambda: None)
        stream.write([b"H", b"one"])
        stream.write([b"feed"], droppable=True)
        stream.write([b"three"])
        assert (stream.frame_count, stream.queued) == (3, 13)
        stream.drop_unsent(droppable_only=True)
        assert (stream.frame_count, stream.queued) == (2, 9)
        assert stream.pop_frame() == ([b"H", b"one"], 4, False)
        assert stream.frame_count == 1 and stream.queued == 9  # the caller takes its bytes off as it writes them
        stream.clear_frames()
        assert (stream.frame_count, stream.queued, stream.head_started) == (0, 0, False)
        with pytest.raises(IndexError, match="empty queue"):
            stream.pop_frame()
    finally:
        ours.close()
        theirs.close()
        loop.close()


# --- the iteration (LoopCore), on both twins -------------------------------------------


class _Flushed:
    """A stream that records its flush."""

    sock = None

    def __init__(self, order: list[str]) -> None:
        self.order = order

    def flush(self) -> None:
        self.order.append("flush")


def _recording_loop(twin: Any, order: list[str]) -> Any:
    """A loop core of ``twin`` whose inbox and timers record that they ran, and
    whose timers stop it."""

    class Recording(twin.LoopCore):  # type: ignore[misc, name-defined]
        def _run_inbox(self) -> None:
            order.append("inbox")
            self._inbox.clear()

        def _run_timers(self) -> None:
            order.append("timers")
            self._timers.clear()
            self._stopping = True

    return Recording()


@pytest.mark.parametrize("twin", STEP_MODULES, ids=TWIN_IDS)
def test_an_iteration_with_work_pending_polls_without_waiting_then_runs_inbox_timers_and_flushes(twin: Any) -> None:
    order: list[str] = []
    loop = _recording_loop(twin, order)
    loop._inbox.append((print, ()))
    loop._timers.append((0.0, 0, None))  # due
    loop._to_flush.append(_Flushed(order))
    timeouts: list[float] = []

    def step(core: Any, timeout: float) -> float:
        timeouts.append(timeout)
        core.now = 5.0
        return 5.0

    loop._run(step, None)
    assert timeouts == [0.0]
    assert order == ["inbox", "timers", "flush"]
    assert loop._to_flush == [] and loop.now == 5.0


@pytest.mark.parametrize("twin", STEP_MODULES, ids=TWIN_IDS)
def test_an_idle_iteration_waits_until_the_next_timer_or_for_ever(twin: Any) -> None:
    order: list[str] = []
    loop = _recording_loop(twin, order)
    timeouts: list[float] = []

    def step(core: Any, timeout: float) -> float:
        timeouts.append(timeout)
        if len(timeouts) == 1:
            core._timers.append((core.now + 60.0, 0, None))  # not due in this iteration
        else:
            core._stopping = True
        return float(core.now)

    loop._run(step, None)
    assert timeouts[0] == -1.0  # nothing pending, no timer: until something is ready
    assert 59.0 < timeouts[1] <= 60.0
    assert order == []  # nothing was due
