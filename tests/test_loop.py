"""The selector loop and its streams."""

from __future__ import annotations

import importlib.util
import os
import select
import selectors
import socket

import pytest

from tests.timeouts import TIMEOUT
from wsfast import _stream_py, kernels
from wsfast.loop import Loop, Poller, Stream, StreamCore


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
        assert stream.queued == 0 and not stream.frames
    finally:
        ours.close()
        theirs.close()
        loop.close()
