"""The selector loop and its streams."""

from __future__ import annotations

import select
import selectors
import socket

import pytest

from wsfast.loop import Loop, Poller, Stream


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
