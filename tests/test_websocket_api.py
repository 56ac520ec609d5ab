"""wsfast.WebSocket, the browser's API in Python, against three servers.

The servers (`websockets`, Node's `ws`, wsfast's own) and their common
behaviour are those of ``tests/test_client.py``: any path echoes,
``/close-with?code=C&reason=R&messages=N`` closes after ``N`` messages,
``/header?name=H`` sends a request header back; the subprotocol ``chat`` and
permessage-deflate are supported and ``Origin: https://evil.example`` gets a 403.

Callbacks run in the loop's thread; :class:`Events` puts each one in a queue
that the test reads with a deadline, so every test is bounded in time.
Heartbeats and reconnection use short intervals (tenths of a second) against
servers on 127.0.0.1, and no test asserts on how long something took.

Most tests create their WebSocket inside the thread of a client loop (the
``loop`` fixture), with the callbacks attached before the loop gets to run
it: a WebSocket created in another thread may open before the callbacks are
attached, and its ``onopen`` is then lost (reported; see
``test_the_default_shared_loop`` for the shared loop, whose server waits for
the test's go-ahead).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import wsfast
from tests.test_client import (
    EVIL_ORIGIN,
    SERVER_KINDS,
    SUBPROTOCOL,
    Certs,
    EchoServer,
    WsfastChildServer,
    free_port,
    make_certs,
    pattern,
    read_until_eof,
    running,
    silent_server,
    unique,
)
from tests.timeouts import TIMEOUT
from wsfast import CloseEvent, ErrorEvent, MessageEvent, Reconnect, ReconnectEvent, WebSocket
from wsfast.loop import Loop

CONNECTING, OPEN, CLOSING, CLOSED = 0, 1, 2, 3
#: How long to wait for what must follow at once on 127.0.0.1 (a close after
#: an error, a TLS handshake): shorter than TIMEOUT, so that a regression
#: fails fast.
SOON = TIMEOUT / 10

# wsfast's server runs in a child process here, as the other two servers do:
# this process holds the client's loop alone. (A server and a client in one
# process: test_an_in_process_server_and_client_do_not_corrupt_each_other.)


@pytest.fixture(scope="module", params=SERVER_KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[EchoServer]:
    """Each of the three servers, plain ws://, shared by the module's tests."""
    with running(request.param, child=True) as server:
        yield server


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(params=SERVER_KINDS)
def tls_server(request: pytest.FixtureRequest, certs: Certs) -> Iterator[EchoServer]:
    """Each of the three servers on wss://."""
    with running(request.param, certs, child=True) as server:
        yield server


@dataclass(frozen=True)
class Seen:
    """One callback: which one, its event, and ``ready_state`` when it ran."""

    kind: str
    event: Any
    ready_state: int
    thread: int


class Events:
    """Records every callback of a :class:`WebSocket`, in order, for a test to read."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.queue: queue.Queue[Seen] = queue.Queue()
        ws.onopen = self._recorder("open")
        ws.onmessage = self._recorder("message")
        ws.onclose = self._recorder("close")
        ws.onerror = self._recorder("error")
        ws.onreconnect = self._recorder("reconnect")

    def _recorder(self, kind: str) -> Any:
        def record(event: Any) -> None:
            self.queue.put(Seen(kind, event, self.ws.ready_state, threading.get_ident()))

        return record

    def next(self, timeout: float = TIMEOUT) -> Seen:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no callback within {timeout} s") from None

    def expect(self, kind: str, timeout: float = TIMEOUT) -> Any:
        """The next callback must be ``kind``; return its event."""
        seen = self.next(timeout)
        assert seen.kind == kind, f"expected on{kind}, got on{seen.kind}({seen.event!r})"
        return seen.event

    def until(self, kind: str, timeout: float = TIMEOUT) -> list[Seen]:
        """Every callback up to and including the next ``kind``."""
        deadline = time.monotonic() + timeout
        seen: list[Seen] = []
        while not seen or seen[-1].kind != kind:
            seen.append(self.next(max(0.0, deadline - time.monotonic())))
        return seen

    def quiet(self, seconds: float) -> list[Seen]:
        """The callbacks of the next ``seconds`` (a test expecting none asserts ``== []``)."""
        deadline = time.monotonic() + seconds
        seen: list[Seen] = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                seen.append(self.queue.get(timeout=left))
            except queue.Empty:
                break
        return seen


def wait_for(predicate: Any, timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    """A client loop running in its own thread for the module's WebSockets."""
    loop = Loop()
    thread = threading.Thread(target=loop.run, name="test-client-loop", daemon=True)
    thread.start()
    yield loop
    loop.stop()
    thread.join(TIMEOUT)
    loop.close()
    assert not thread.is_alive(), "the client loop did not stop"


@contextlib.contextmanager
def websocket(
    loop: Loop, url: str, *args: Any, prepare: Callable[[WebSocket], None] | None = None, **kwargs: Any
) -> Iterator[tuple[WebSocket, Events]]:
    """A WebSocket on ``loop`` with its recorded events; closed (reconnection stopped) at the end.

    It is created in the loop's thread, so no callback can fire before the
    recorder is attached (nor before ``prepare(ws)`` has run, which may
    replace some of the recorder's callbacks).
    """
    created: concurrent.futures.Future[tuple[WebSocket, Events]] = concurrent.futures.Future()

    def create() -> None:
        try:
            ws = WebSocket(url, *args, loop=loop, **kwargs)
            events = Events(ws)
            if prepare is not None:
                prepare(ws)
            created.set_result((ws, events))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            created.set_exception(exc)

    loop.call_soon_threadsafe(create)
    ws, events = created.result(TIMEOUT)
    try:
        yield ws, events
    except BaseException:
        ws.close()
        raise
    ws.close()
    assert wait_for(lambda: ws.ready_state == CLOSED), "the WebSocket did not close"


def recv_exactly(sock: Any, size: int) -> bytes:
    """``size`` bytes from a raw server's side of a connection (bounded by ``TIMEOUT``)."""
    sock.settimeout(TIMEOUT)
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"EOF after {data!r}"
        data += chunk
    return data


# Frames as a server sends them (RFC 6455 §5.2: unmasked).
CLOSE_1000 = b"\x88\x02\x03\xe8"
CLOSE_1001 = b"\x88\x02\x03\xe9"
#: A client's close frame with a 2-byte payload: 0x88, 0x82, 4-byte mask, code.
CLIENT_CLOSE_SIZE = 8


# --- open, messages, close ---------------------------------------------------------------


def test_open_messages_close_in_order(server: EchoServer, loop: Loop) -> None:
    target = unique("/echo")
    initial: list[int] = []
    with websocket(loop, server.url(target), prepare=lambda ws: initial.append(ws.ready_state)) as (ws, events):
        opened = events.next()
        assert (opened.kind, opened.event, opened.ready_state) == ("open", None, OPEN)
        ws.send("hello")
        ws.send(b"\x00binary\xff")
        assert events.expect("message") == MessageEvent("hello")
        assert events.expect("message") == MessageEvent(b"\x00binary\xff")
        assert ws.ready_state == OPEN
        ws.close()
        closed = events.next()
        assert (closed.kind, closed.event, closed.ready_state) == ("close", CloseEvent(1000, "", True), CLOSED)
        assert ws.ready_state == CLOSED
        assert events.quiet(0.1) == []
    assert initial == [CONNECTING]
    assert server.next_close(target) == (1000, "")


def test_close_with_a_code_and_reason(server: EchoServer, loop: Loop) -> None:
    target = unique("/echo")
    with websocket(loop, server.url(target)) as (ws, events):
        events.expect("open")
        ws.close(4000, "done here")
        assert events.expect("close") == CloseEvent(4000, "done here", True)
    assert server.next_close(target) == (4000, "done here")


@pytest.mark.parametrize("code", [1000, 3000, 4999])
def test_close_accepts_1000_and_3000_to_4999(server: EchoServer, loop: Loop, code: int) -> None:
    with websocket(loop, server.url()) as (ws, events):
        events.expect("open")
        ws.close(code, "ok")
        assert events.expect("close") == CloseEvent(code, "ok", True)


def test_the_servers_close_reaches_onclose(server: EchoServer, loop: Loop) -> None:
    with websocket(loop, server.url("/close-with?code=4001&reason=bye&messages=2")) as (ws, events):
        events.expect("open")
        assert events.expect("message") == MessageEvent("message 0")
        assert events.expect("message") == MessageEvent("message 1")
        closed = events.next()
        assert (closed.kind, closed.event, closed.ready_state) == ("close", CloseEvent(4001, "bye", True), CLOSED)
        assert events.quiet(0.1) == []  # no reconnection without a policy


def test_the_servers_close_is_echoed(server: EchoServer, loop: Loop) -> None:
    target = unique("/close-with?code=4001&reason=bye")
    with websocket(loop, server.url(target)) as (ws, events):
        events.expect("open")
        assert events.expect("close") == CloseEvent(4001, "bye", True)
    assert server.next_close(target, timeout=SOON) == (4001, "bye")


def test_close_from_a_callback_is_closing_at_once(server: EchoServer, loop: Loop) -> None:
    states: list[int] = []

    def close_on_open(ws: WebSocket) -> None:
        def close_now(event: None) -> None:
            ws.close()
            states.append(ws.ready_state)

        ws.onopen = close_now

    with websocket(loop, server.url(), prepare=close_on_open) as (ws, events):
        assert events.expect("close") == CloseEvent(1000, "", True)
    assert states == [CLOSING]


@pytest.mark.parametrize(
    ("binary_type", "kind"), [("bytes", bytes), ("bytearray", bytearray), ("memoryview", memoryview)]
)
def test_binary_type(server: EchoServer, loop: Loop, binary_type: str, kind: type) -> None:
    with websocket(loop, server.url()) as (ws, events):
        ws.binary_type = binary_type
        events.expect("open")
        ws.send(pattern(70000))
        ws.send("text stays str")
        data = events.expect("message").data
        assert type(data) is kind
        assert bytes(data) == pattern(70000)
        assert events.expect("message") == MessageEvent("text stays str")


def test_large_messages_and_buffered_amount_back_to_zero(server: EchoServer, loop: Loop) -> None:
    with websocket(loop, server.url()) as (ws, events):
        events.expect("open")
        ws.send(pattern(4 * 1024 * 1024))
        ws.send("é" * 100000)
        assert events.expect("message").data == pattern(4 * 1024 * 1024)
        assert events.expect("message").data == "é" * 100000
        assert wait_for(lambda: ws.buffered_amount == 0)


def test_buffered_amount_counts_what_the_network_did_not_take(loop: Loop) -> None:
    size = 32 * 1024 * 1024  # more than the socket buffers hold: the server never reads
    with silent_server(handshake=True) as silent, websocket(loop, silent.url(), close_timeout=0.2) as (ws, events):
        events.expect("open")
        ws.send(pattern(size))
        assert wait_for(lambda: 0 < ws.buffered_amount < size)  # partly written, the rest waits
        assert events.quiet(0.2) == []
        assert ws.buffered_amount > 0  # and keeps waiting


def test_compression(server: EchoServer, loop: Loop) -> None:
    with websocket(loop, server.url(), compression=True) as (ws, events):
        events.expect("open")
        ws.send("squeeze me " * 50000)
        assert events.expect("message") == MessageEvent("squeeze me " * 50000)


@pytest.mark.parametrize(("offered", "protocol"), [((SUBPROTOCOL,), SUBPROTOCOL), (("superchat",), ""), ((), "")])
def test_protocol_is_the_negotiated_subprotocol(
    server: EchoServer, loop: Loop, offered: tuple[str, ...], protocol: str
) -> None:
    with websocket(loop, server.url(), offered) as (ws, events):
        events.expect("open")
        assert ws.protocol == protocol


def test_extra_headers_reach_the_server(server: EchoServer, loop: Loop) -> None:
    url = server.url("/header?name=X-Token")
    with websocket(loop, url, extra_headers=[("X-Token", "t0k3n")]) as (ws, events):
        events.expect("open")
        assert events.expect("message") == MessageEvent("t0k3n")


def test_wss_with_a_trusted_ca(tls_server: EchoServer, certs: Certs, loop: Loop) -> None:
    with websocket(loop, tls_server.url(), ssl=certs.client_context, open_timeout=SOON) as (ws, events):
        events.expect("open")
        ws.send("over TLS")
        ws.send(pattern(1024 * 1024))
        assert events.expect("message") == MessageEvent("over TLS")
        assert events.expect("message") == MessageEvent(pattern(1024 * 1024))


def test_the_default_shared_loop() -> None:
    """Without ``loop=``, WebSockets share one background thread; callbacks run there."""
    gate = threading.Event()  # the server answers once the callbacks are attached
    with silent_server(handshake=True, gate=gate, then=b"\x81\x05hello" + CLOSE_1000) as silent:
        ws = WebSocket(silent.url())
        events = Events(ws)
        gate.set()
        opened = events.next()
        assert (opened.kind, opened.ready_state) == ("open", OPEN)
        assert opened.thread != threading.get_ident()
        assert events.expect("message") == MessageEvent("hello")
        assert events.expect("close") == CloseEvent(1000, "", True)
        assert ws.ready_state == CLOSED


# --- the browser's rules -----------------------------------------------------------------


def test_send_before_open_raises() -> None:
    loop = Loop()  # never run: the WebSocket stays CONNECTING
    try:
        ws = WebSocket("ws://127.0.0.1:9/", loop=loop)
        assert ws.ready_state == CONNECTING
        with pytest.raises(wsfast.ConnectionClosed):
            ws.send("too early")
        assert ws.buffered_amount == 0
    finally:
        loop.close()


def test_send_after_close_raises(server: EchoServer, loop: Loop) -> None:
    with websocket(loop, server.url()) as (ws, events):
        events.expect("open")
        ws.close()
        events.expect("close")
        with pytest.raises(wsfast.ConnectionClosed):
            ws.send("too late")


@pytest.mark.parametrize("code", [0, 999, 1001, 1002, 1005, 1006, 1011, 1015, 2999, 5000])
def test_close_refuses_codes_the_browser_refuses(code: int) -> None:
    loop = Loop()  # never run
    try:
        ws = WebSocket("ws://127.0.0.1:9/", loop=loop)
        with pytest.raises(ValueError):
            ws.close(code)
        assert ws.ready_state == CONNECTING  # nothing happened
    finally:
        loop.close()


def test_close_refuses_a_reason_over_123_bytes() -> None:
    loop = Loop()  # never run
    try:
        ws = WebSocket("ws://127.0.0.1:9/", loop=loop)
        with pytest.raises(ValueError):
            ws.close(1000, "é" * 62)  # 124 bytes
        assert ws.ready_state == CONNECTING
        ws.close(1000, "é" * 61 + "x")  # 123 bytes: fine
        assert ws.ready_state == CLOSED
    finally:
        loop.close()


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "127.0.0.1:80"])
def test_an_invalid_url_raises_at_once(url: str) -> None:
    loop = Loop()
    try:
        with pytest.raises(ValueError):
            WebSocket(url, loop=loop)
    finally:
        loop.close()


# --- resolving and connecting -------------------------------------------------------------


@pytest.fixture(scope="module")
def wsfast_server() -> Iterator[EchoServer]:
    with running("wsfast", child=True) as server:
        yield server


class Resolver:
    """``socket.getaddrinfo`` with names of its own: each maps to addresses, and
    ``slow`` names wait for :attr:`release` (bounded) before they answer."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: dict[str, list[tuple[int, tuple[Any, ...]]]] = {}
        self.slow: set[str] = set()
        self.release = threading.Event()
        self.asked: queue.Queue[str] = queue.Queue()
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host not in self.names:
                return real(host, port, *args, **kwargs)
            self.asked.put(host)
            if host in self.slow:
                self.release.wait(3 * TIMEOUT)
            return [(family, socket.SOCK_STREAM, 6, "", address) for family, address in self.names[host]]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Resolver]:
    resolver = Resolver(monkeypatch)
    yield resolver
    resolver.release.set()


def test_a_slow_name_lookup_does_not_stall_the_other_websockets_of_the_loop(
    wsfast_server: EchoServer, loop: Loop, resolver: Resolver
) -> None:
    resolver.names["slow.test"] = [(socket.AF_INET, ("127.0.0.1", wsfast_server.port))]
    resolver.slow.add("slow.test")
    with websocket(loop, f"ws://slow.test:{wsfast_server.port}/") as (slow, slow_events):
        assert resolver.asked.get(timeout=TIMEOUT) == "slow.test"
        with websocket(loop, wsfast_server.url()) as (fast, fast_events):
            fast_events.expect("open")  # while slow.test is still being resolved
            assert slow.ready_state == CONNECTING
        resolver.release.set()
        slow_events.expect("open")


def test_every_address_is_tried_in_turn_ipv6_and_ipv4(
    wsfast_server: EchoServer, loop: Loop, resolver: Resolver
) -> None:
    closed = free_port()
    resolver.names["dual.test"] = [
        (socket.AF_INET6, ("::1", closed, 0, 0)),
        (socket.AF_INET, ("127.0.0.1", closed)),
        (socket.AF_INET, ("127.0.0.1", wsfast_server.port)),
    ]
    with websocket(loop, f"ws://dual.test:{wsfast_server.port}/") as (ws, events):
        events.expect("open")
        ws.send("reached")
        assert events.expect("message") == MessageEvent("reached")


def test_when_every_address_fails_the_error_names_the_url(loop: Loop, resolver: Resolver) -> None:
    closed = free_port()
    resolver.names["nowhere.test"] = [(socket.AF_INET, ("127.0.0.1", closed)), (socket.AF_INET, ("127.0.0.1", closed))]
    url = f"ws://nowhere.test:{closed}/"
    with websocket(loop, url) as (ws, events):
        error = events.expect("error").error
        assert isinstance(error, ConnectionRefusedError) and url in str(error)
        assert events.expect("close") == CloseEvent(1006, "", False)


def test_a_name_that_does_not_resolve_is_an_error_naming_the_url(loop: Loop) -> None:
    url = "ws://no-such-host.invalid/"
    with websocket(loop, url) as (ws, events):
        error = events.expect("error").error
        assert isinstance(error, socket.gaierror) and url in str(error)
        assert events.expect("close") == CloseEvent(1006, "", False)


def test_closing_while_the_name_is_resolved_ends_the_attempt(loop: Loop, resolver: Resolver) -> None:
    resolver.names["slow.test"] = [(socket.AF_INET, ("127.0.0.1", free_port()))]
    resolver.slow.add("slow.test")
    with websocket(loop, "ws://slow.test/") as (ws, events):
        assert resolver.asked.get(timeout=TIMEOUT) == "slow.test"
        ws.close()
        events.expect("error")
        assert events.expect("close") == CloseEvent(1006, "", False)
        resolver.release.set()
        assert events.quiet(0.2) == []  # the late answer is ignored


# --- failures ----------------------------------------------------------------------------


def test_connection_refused_fires_error_then_close(loop: Loop) -> None:
    with websocket(loop, f"ws://127.0.0.1:{free_port()}/") as (ws, events):
        error = events.expect("error")
        assert isinstance(error, ErrorEvent) and isinstance(error.error, OSError)
        closed = events.next()
        assert (closed.kind, closed.event, closed.ready_state) == ("close", CloseEvent(1006, "", False), CLOSED)
        assert events.quiet(0.1) == []


def test_a_refused_handshake_fires_error_then_close(server: EchoServer, loop: Loop) -> None:
    with websocket(loop, server.url(), origin=EVIL_ORIGIN) as (ws, events):
        error = events.expect("error").error
        assert isinstance(error, wsfast.InvalidHandshake) and error.status == 403
        closed = events.next(timeout=SOON)
        assert (closed.kind, closed.event, closed.ready_state) == ("close", CloseEvent(1006, "", False), CLOSED)


def test_open_timeout_fires_error_then_close(loop: Loop) -> None:
    with silent_server(handshake=False) as silent, websocket(loop, silent.url(), open_timeout=0.2) as (ws, events):
        assert isinstance(events.expect("error").error, TimeoutError)
        assert events.expect("close", timeout=SOON) == CloseEvent(1006, "", False)
        assert ws.ready_state == CLOSED


def test_close_while_connecting_fires_error_then_close(loop: Loop) -> None:
    with silent_server(handshake=False) as silent, websocket(loop, silent.url()) as (ws, events):
        assert events.quiet(0.1) == []
        ws.close()
        assert events.expect("error").error is not None
        assert events.expect("close", timeout=SOON) == CloseEvent(1006, "", False)
        assert ws.ready_state == CLOSED


def test_close_timeout_closes_tcp_when_the_server_does_not(loop: Loop) -> None:
    with silent_server(handshake=True) as silent, websocket(loop, silent.url(), close_timeout=0.2) as (ws, events):
        events.expect("open")
        (conn,) = silent.wait_connections(1)
        ws.close()
        assert recv_exactly(conn, CLIENT_CLOSE_SIZE)[:2] == b"\x88\x82"
        conn.sendall(CLOSE_1000)  # the server answers the close, and keeps TCP open
        assert events.expect("close") == CloseEvent(1000, "", True)
        assert read_until_eof(conn, 2.0) == b""  # the client gave up waiting and closed TCP


def test_the_end_of_the_previous_connection_does_not_close_the_new_one(loop: Loop) -> None:
    policy = Reconnect(initial=0.01, maximum=0.02)
    with (
        silent_server(handshake=True) as silent,
        websocket(loop, silent.url(), reconnect=policy, close_timeout=0.2) as (ws, events),
    ):
        events.expect("open")
        (first,) = silent.wait_connections(1)
        first.sendall(CLOSE_1001)  # going away, but TCP stays open for now
        assert events.expect("close") == CloseEvent(1001, "", True)
        assert events.expect("reconnect").attempt == 1
        events.expect("open")
        silent.wait_connections(2)
        first.close()  # the previous connection ends at last
        assert events.quiet(0.3) == []
        assert ws.ready_state == OPEN


def send_stray_bytes_after_the_close(loop: Loop) -> None:
    """A sloppy server: closes with 1001, then sends a ping anyway."""
    with silent_server(handshake=True) as silent:
        with websocket(loop, silent.url(), close_timeout=0.2) as (ws, events):
            events.expect("open")
            (conn,) = silent.wait_connections(1)
            conn.sendall(CLOSE_1001)
            assert events.expect("close") == CloseEvent(1001, "", True)
            conn.sendall(b"\x89\x00")
            assert events.quiet(0.1) == []


def test_bytes_after_the_close_do_not_stop_the_loop() -> None:
    own = Loop()  # not the module's, should this test kill it
    thread = threading.Thread(target=own.run, name="own-loop", daemon=True)
    thread.start()
    try:
        send_stray_bytes_after_the_close(own)
        assert thread.is_alive(), "the loop thread died"
        with silent_server(handshake=True) as silent, websocket(own, silent.url(), close_timeout=0.2) as (ws, events):
            events.expect("open", timeout=1.0)
    finally:
        own.stop()
        thread.join(TIMEOUT)
        own.close()


def test_bytes_after_the_close_are_ignored(loop: Loop, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        send_stray_bytes_after_the_close(loop)
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []


# --- heartbeat ---------------------------------------------------------------------------


def test_heartbeat_detects_a_silent_server(loop: Loop) -> None:
    with silent_server(handshake=True) as silent:
        url = silent.url()
        with websocket(loop, url, ping_interval=0.2, ping_timeout=0.3, close_timeout=0.2) as (ws, events):
            events.expect("open")
            assert isinstance(events.expect("error").error, TimeoutError)
            closed = events.next()
            assert (closed.kind, closed.event, closed.ready_state) == ("close", CloseEvent(1006, "", False), CLOSED)
        (conn,) = silent.wait_connections(1)
        # What the server got: one masked ping, "wsfast" (0x89, 0x80 | 6), and then EOF.
        assert read_until_eof(conn, TIMEOUT)[:2] == b"\x89\x86"


def test_heartbeat_keeps_a_healthy_connection(server: EchoServer, loop: Loop) -> None:
    with websocket(loop, server.url(), ping_interval=0.05, ping_timeout=0.5) as (ws, events):
        events.expect("open")
        assert events.quiet(0.5) == []  # about 10 pings, all answered
        ws.send("alive")
        assert events.expect("message") == MessageEvent("alive")


def test_heartbeat_failure_reconnects(loop: Loop) -> None:
    policy = Reconnect(initial=0.05, maximum=0.1)
    options: dict[str, Any] = dict(ping_interval=0.2, ping_timeout=0.3, close_timeout=0.2, reconnect=policy)
    with silent_server(handshake=True) as silent, websocket(loop, silent.url(), **options) as (ws, events):
        events.expect("open")
        assert isinstance(events.expect("error").error, TimeoutError)
        assert events.expect("close") == CloseEvent(1006, "", False)
        reconnect = events.next()
        assert (reconnect.kind, reconnect.ready_state) == ("reconnect", CONNECTING)
        assert reconnect.event.attempt == 1 and 0 < reconnect.event.delay <= 0.05
        events.expect("open")
        assert ws.ready_state == OPEN
        assert isinstance(events.expect("error").error, TimeoutError)
        events.expect("close")
        assert events.expect("reconnect").attempt == 2
        assert len(silent.connections) >= 2


# --- reconnection ------------------------------------------------------------------------


def test_reconnects_after_the_server_restarts(loop: Loop) -> None:
    port = free_port()
    first = WsfastChildServer(None, port=port)
    policy = Reconnect(initial=0.05, maximum=0.2)
    restarted: WsfastChildServer | None = None
    try:
        with websocket(loop, f"ws://127.0.0.1:{port}/", reconnect=policy) as (ws, events):
            events.expect("open")
            first.stop()
            # The server said goodbye with 1001: that is not the end, reconnect.
            assert events.expect("close") == CloseEvent(1001, "server shutting down", True)
            reconnecting = events.next()
            assert (reconnecting.kind, reconnecting.ready_state) == ("reconnect", CONNECTING)
            attempts: list[ReconnectEvent] = [reconnecting.event]
            while len(attempts) < 4:
                seen = events.until("reconnect")
                assert [(s.kind, s.ready_state) for s in seen] == [
                    ("error", CONNECTING),
                    ("close", CLOSED),
                    ("reconnect", CONNECTING),
                ]
                assert isinstance(seen[0].event.error, ConnectionRefusedError)
                assert seen[1].event == CloseEvent(1006, "", False)
                attempts.append(seen[-1].event)
            assert [a.attempt for a in attempts] == [1, 2, 3, 4]
            for attempt, ceiling in zip(attempts, [0.05, 0.1, 0.2, 0.2], strict=True):
                assert ceiling * (1 - policy.jitter) <= attempt.delay <= ceiling

            restarted = WsfastChildServer(None, port=port)
            seen = events.until("open")
            assert all(s.kind in ("error", "close", "reconnect") for s in seen[:-1])
            assert ws.ready_state == OPEN
            ws.send("back again")
            assert events.expect("message") == MessageEvent("back again")
    finally:
        first.stop()
        if restarted is not None:
            restarted.stop()


def test_max_attempts_bounds_the_attempts(loop: Loop) -> None:
    policy = Reconnect(initial=0.01, maximum=0.02, max_attempts=3)
    with websocket(loop, f"ws://127.0.0.1:{free_port()}/", reconnect=policy) as (ws, events):
        attempts = []
        for _ in range(3):
            seen = events.until("reconnect")
            assert [s.kind for s in seen] == ["error", "close", "reconnect"]
            attempts.append(seen[-1].event.attempt)
        assert attempts == [1, 2, 3]
        assert [s.kind for s in events.until("close")] == ["error", "close"]
        assert events.quiet(0.2) == []  # no fourth attempt
        assert ws.ready_state == CLOSED


def test_a_normal_close_from_the_server_is_not_retried(server: EchoServer, loop: Loop) -> None:
    policy = Reconnect(initial=0.01, maximum=0.02)
    with websocket(loop, server.url("/close-with?code=1000&reason=bye"), reconnect=policy) as (ws, events):
        events.expect("open")
        assert events.expect("close") == CloseEvent(1000, "bye", True)
        assert events.quiet(0.2) == []
        assert ws.ready_state == CLOSED


def test_an_abnormal_close_from_the_server_is_retried(server: EchoServer, loop: Loop) -> None:
    policy = Reconnect(initial=0.01, maximum=0.02)
    with websocket(loop, server.url("/close-with?code=4001&reason=again"), reconnect=policy) as (ws, events):
        events.expect("open")
        assert events.expect("close") == CloseEvent(4001, "again", True)
        assert events.expect("reconnect").attempt == 1
        events.expect("open")  # and the server closes it again, and so on


def test_close_stops_reconnecting(loop: Loop) -> None:
    policy = Reconnect(initial=0.3, maximum=0.3, jitter=0)
    with websocket(loop, f"ws://127.0.0.1:{free_port()}/", reconnect=policy) as (ws, events):
        assert events.until("reconnect")[-1].event == ReconnectEvent(1, 0.3)
        ws.close()
        assert wait_for(lambda: ws.ready_state == CLOSED)
        assert events.quiet(0.5) == []


def test_reconnect_policy_validation() -> None:
    for bad in [dict(initial=0), dict(initial=2, maximum=1), dict(factor=0.5), dict(jitter=2), dict(max_attempts=0)]:
        with pytest.raises(ValueError):
            Reconnect(**bad)  # type: ignore[arg-type]


def test_reconnect_delays_grow_and_stay_bounded() -> None:
    policy = Reconnect(initial=0.1, maximum=1.0, factor=2, jitter=0.5)
    for attempt, base in enumerate([0.1, 0.2, 0.4, 0.8, 1.0, 1.0], start=1):
        for _ in range(20):
            assert base / 2 <= policy.delay(attempt) <= base


# --- threads and loops -------------------------------------------------------------------


def test_a_loop_run_in_the_tests_own_thread(server: EchoServer) -> None:
    own = Loop()
    seen: list[tuple[str, Any, int]] = []
    try:
        ws = WebSocket(server.url(), loop=own)

        def on_open(event: None) -> None:
            seen.append(("open", event, threading.get_ident()))
            ws.send("one")
            ws.send(b"two")

        def on_message(event: MessageEvent) -> None:
            seen.append(("message", event, threading.get_ident()))
            if event.data == b"two":
                ws.close(4000, "enough")

        def on_close(event: CloseEvent) -> None:
            seen.append(("close", event, threading.get_ident()))
            own.stop()

        ws.onopen, ws.onmessage, ws.onclose = on_open, on_message, on_close
        ws.onerror = lambda event: seen.append(("error", event, threading.get_ident()))
        own.call_later(TIMEOUT, own.stop)  # the bound, should the test fail
        own.run()
    finally:
        own.close()
    me = threading.get_ident()
    assert seen == [
        ("open", None, me),
        ("message", MessageEvent("one"), me),
        ("message", MessageEvent(b"two"), me),
        ("close", CloseEvent(4000, "enough", True), me),
    ]


def test_callbacks_run_in_the_loops_thread(server: EchoServer, loop: Loop) -> None:
    with websocket(loop, server.url()) as (ws, events):
        opened = events.next()
        assert opened.kind == "open" and opened.thread == loop_thread_id(loop)
        ws.send("hi")
        assert events.next().thread == opened.thread != threading.get_ident()


def loop_thread_id(loop: Loop) -> int:
    ident: concurrent.futures.Future[int] = concurrent.futures.Future()
    loop.call_soon_threadsafe(lambda: ident.set_result(threading.get_ident()))
    return ident.result(TIMEOUT)


def test_sends_from_several_threads_all_arrive(server: EchoServer, loop: Loop) -> None:
    # 400 messages in flight at most: see test_client.py::test_a_burst_of_messages_is_echoed.
    threads, count = 8, 50
    with websocket(loop, server.url()) as (ws, events):
        events.expect("open")
        start = threading.Barrier(threads)

        def sender(t: int) -> None:
            start.wait(TIMEOUT)
            buffer = bytearray(8)
            for n in range(count):
                if n % 2:
                    ws.send(f"{t}:{n}")
                else:
                    buffer[:] = f"{t}:{n}".encode().ljust(8, b".")
                    ws.send(buffer)  # reused at once: the send must not see the next value

        workers = [threading.Thread(target=sender, args=(t,)) for t in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(TIMEOUT)
        received = [events.expect("message").data for _ in range(threads * count)]
        assert wait_for(lambda: ws.buffered_amount == 0)
    decoded = [m if isinstance(m, str) else m.rstrip(b".").decode() for m in received]
    for t in range(threads):
        assert [m for m in decoded if m.startswith(f"{t}:")] == [f"{t}:{n}" for n in range(count)]


def test_an_in_process_server_and_client_do_not_corrupt_each_other() -> None:
    """Two loops in two threads of one process: each reads into its own buffer.

    (When they shared one, about half of these rounds were corrupted.)
    """
    own = Loop()  # not the module's: corrupted input may break it
    thread = threading.Thread(target=own.run, name="in-process-client-loop", daemon=True)
    thread.start()
    messages = [bytes([i]) * (50000 + i) for i in range(100)]
    try:
        with running("wsfast") as server:  # in this process, in a thread
            for _ in range(10):  # a race: rounds make it show
                with websocket(own, server.url()) as (ws, events):
                    events.expect("open")
                    for message in messages:
                        ws.send(message)
                    for i, message in enumerate(messages):
                        seen = events.next(timeout=2.0)
                        intact = seen.kind == "message" and seen.event.data == message
                        assert intact, f"message {i}: on{seen.kind}, {str(seen.event)[:80]}"
    finally:
        own.stop()
        thread.join(TIMEOUT)
        own.close()


# --- waiting for the end, from a script --------------------------------------------------


def test_run_forever_returns_once_the_server_closes_and_no_reconnection_follows(
    wsfast_server: EchoServer, loop: Loop
) -> None:
    with websocket(loop, wsfast_server.url("/close-with?code=1000&messages=2")) as (ws, events):
        done = concurrent.futures.Future[None]()
        threading.Thread(target=lambda: done.set_result(ws.run_forever()), daemon=True).start()
        assert done.result(TIMEOUT) is None
        assert [seen.kind for seen in events.until("close")] == ["open", "message", "message", "close"]


def test_wait_closed_times_out_while_open_and_is_true_after_close(wsfast_server: EchoServer, loop: Loop) -> None:
    with websocket(loop, wsfast_server.url()) as (ws, events):
        events.expect("open")
        assert ws.wait_closed(0.05) is False
        ws.close()
        assert ws.wait_closed(TIMEOUT) is True
        assert events.expect("close") == CloseEvent(1000, "", True)


def test_wait_closed_waits_through_reconnection_until_the_attempts_run_out(loop: Loop) -> None:
    policy = Reconnect(initial=0.01, maximum=0.02, max_attempts=2)
    with websocket(loop, f"ws://127.0.0.1:{free_port()}/", reconnect=policy) as (ws, events):
        assert ws.wait_closed(TIMEOUT) is True
        assert [seen.kind for seen in events.until("close")] == ["error", "close"]
        assert events.expect("reconnect").attempt == 1
        events.until("reconnect")
        events.until("close")
        assert ws.ready_state == CLOSED


def test_the_with_form_closes_with_1000_and_waits(wsfast_server: EchoServer) -> None:
    messages: queue.Queue[Any] = queue.Queue()
    target = unique("/")
    with WebSocket(wsfast_server.url(target), onmessage=lambda event: messages.put(event.data)) as ws:
        deadline = time.monotonic() + TIMEOUT
        while ws.ready_state != OPEN and time.monotonic() < deadline:
            time.sleep(0.01)
        ws.send("inside")
        assert messages.get(timeout=TIMEOUT) == "inside"
    assert ws.ready_state == CLOSED
    assert wsfast_server.next_close(target) == (1000, "")


def test_wait_closed_from_a_callback_is_an_error(wsfast_server: EchoServer, loop: Loop) -> None:
    errors: queue.Queue[BaseException] = queue.Queue()

    def prepare(ws: WebSocket) -> None:
        # onopen may run before the with statement below binds its ws.
        def wait_in_the_loop(event: None) -> None:
            try:
                ws.wait_closed(1)
            except RuntimeError as exc:
                errors.put(exc)

        ws.onopen = wait_in_the_loop

    with websocket(loop, wsfast_server.url(), prepare=prepare):
        assert "loop thread" in str(errors.get(timeout=TIMEOUT))
