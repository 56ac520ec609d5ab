"""wsfast's server over real sockets: handshakes, faults, backpressure, timers, shutdown.

Raw sockets play the misbehaving clients (bad handshakes, slowloris, garbage,
vanishing, never reading, never answering pings); the websockets client plays
the well-behaved one. Every socket has a timeout, every loop a bound, and no
test asserts on elapsed time: timeouts are set small (0.2 - 0.5 s) so that the
behaviour shows within a few seconds.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import queue
import random
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as websockets_connect

import wsfast
from tests.servers import TLS, Recorder, in_loop, make_tls, running_server, url, wait_until
from tests.timeouts import TIMEOUT
from wsfast.extensions import PerMessageDeflate
from wsfast.server import Handler, Server, ServerConnection

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

# --- a raw client: bytes on the wire, nothing hidden ---------------------------------


def upgrade_request(port: int, *, method: str = "GET", path: str = "/", **overrides: str | None) -> bytes:
    """An opening handshake request; ``Header_Name="value"`` replaces a header, None drops it."""
    headers: dict[str, str | None] = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    headers.update({name.replace("_", "-"): value for name, value in overrides.items()})
    lines = [f"{method} {path} HTTP/1.1"] + [f"{name}: {value}" for name, value in headers.items() if value is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def masked_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True) -> bytes:
    """A client frame, written here from RFC 6455 §5.2 (independent of wsfast)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


class RawClient:
    """A TCP client that speaks WebSocket by hand; every read has a timeout."""

    def __init__(
        self, server: Server, *, rcvbuf: int | None = None, timeout: float = TIMEOUT, tls: TLS | None = None
    ) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Before connect(), so that the advertised window stays small.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", server.port))
        if tls is not None:
            sock = tls.client_context.wrap_socket(sock, server_hostname="127.0.0.1")
        self.sock = sock
        self.port = server.port
        self.buffer = b""

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(1 << 20)
        self.buffer += data
        return bool(data)

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not self._fill():
                raise EOFError(f"connection closed with {len(self.buffer)} of {n} bytes")
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def http_response(self) -> tuple[int, dict[str, str], bytes]:
        """``(status, headers with lower-case names, body)`` of one response."""
        for _ in range(1000):
            if b"\r\n\r\n" in self.buffer:
                break
            if not self._fill():
                raise EOFError(f"connection closed inside the response head: {self.buffer!r}")
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self._take(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body

    def handshake(self, **overrides: str | None) -> dict[str, str]:
        """Open the connection; return the 101 response's headers."""
        self.send(upgrade_request(self.port, **overrides))
        status, headers, _ = self.http_response()
        assert status == 101, (status, headers)
        assert headers["sec-websocket-accept"] == ACCEPT
        return headers

    def send_frame(self, opcode: int, payload: bytes = b"", **options: Any) -> None:
        self.send(masked_frame(opcode, payload, **options))

    def recv_frame(self) -> tuple[int, bytes]:
        """``(opcode, payload)`` of the next server frame (which must be unmasked and whole)."""
        b0, b1 = self._take(2)
        assert b0 & 0x80 and not b0 & 0x70, f"fragmented or RSV frame: {b0:#x}"
        assert not b1 & 0x80, "the server masked a frame"
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._take(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._take(8))
        return b0 & 0x0F, self._take(n)

    def recv_close(self, *, skip: tuple[int, ...] = ()) -> tuple[int, str]:
        """Read up to the close frame (frames of the ``skip`` opcodes may come first)."""
        for _ in range(100_000):
            opcode, payload = self.recv_frame()
            if opcode == CLOSE:
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode()
            assert opcode in skip, f"unexpected frame {opcode:#x} before the close"
        raise AssertionError("no close frame")

    def closed_by_server(self) -> bool:
        """Whether the server closed TCP: EOF (or a reset) with nothing more to read."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, ssl.SSLEOFError):
            return True


def ws_client(server: Server, path: str = "/", **options: Any) -> ClientConnection:
    """A well-behaved client: websockets, answering pings by itself."""
    options = {"max_size": None, "compression": None, "open_timeout": TIMEOUT, "close_timeout": TIMEOUT, **options}
    return websockets_connect(url(server, path), proxy=None, **options)


def assert_echoes(client: ClientConnection, message: str | bytes = "still here") -> None:
    client.send(message)
    assert client.recv(timeout=TIMEOUT) == message


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLS:
    return make_tls(tmp_path_factory.mktemp("tls"))


# --- the public contract ---------------------------------------------------------------


def test_server_is_exported_from_wsfast() -> None:
    assert wsfast.Server is Server


def test_running_server_reports_its_free_port_and_clients() -> None:
    recorder = Recorder()
    with running_server(recorder) as server:
        assert server.port > 0 and server.host == "127.0.0.1"
        with ws_client(server) as client:
            ws = recorder.next_open()
            assert in_loop(server, lambda: list(server.clients)) == [ws]
            assert ws.ready_state == 1 and ws.remote_address[0] == "127.0.0.1"
            assert_echoes(client)
        assert wait_until(lambda: not in_loop(server, lambda: list(server.connections)))


# --- opening handshake rejections over the wire -----------------------------------------


@pytest.mark.parametrize(
    ("request_options", "status", "header"),
    [
        ({"Sec_WebSocket_Key": "not base64 of 16 bytes"}, 400, None),
        ({"Sec_WebSocket_Key": None}, 400, None),
        ({"Sec_WebSocket_Version": "8"}, 426, ("sec-websocket-version", "13")),
        ({"Origin": "https://evil.example"}, 403, None),
        ({"method": "POST"}, 405, ("allow", "GET")),
    ],
    ids=["bad-key", "no-key", "version-8", "origin-not-allowed", "post"],
)
def test_handshake_rejection(request_options: dict[str, str], status: int, header: tuple[str, str] | None) -> None:
    recorder = Recorder()
    with running_server(recorder, origins=["https://good.example"]) as server:
        with RawClient(server) as raw:
            raw.send(upgrade_request(server.port, **request_options))
            got, headers, _ = raw.http_response()
            assert got == status
            if header is not None:
                assert headers[header[0]] == header[1]
            assert raw.closed_by_server()
        # The handler never hears of it, and the server goes on.
        assert recorder.opened.empty()
        with RawClient(server) as raw:
            raw.handshake(Origin="https://good.example")


def test_allowed_origin_is_accepted() -> None:
    with running_server(origins=["https://good.example"]) as server, RawClient(server) as raw:
        raw.handshake(Origin="https://good.example")
        raw.send_frame(TEXT, b"hi")
        assert raw.recv_frame() == (TEXT, b"hi")


def test_unknown_subprotocol_is_answered_without_one() -> None:
    with running_server(subprotocols=["chat.v1"]) as server, RawClient(server) as raw:
        headers = raw.handshake(Sec_WebSocket_Protocol="x-unknown")
        assert "sec-websocket-protocol" not in headers


def test_frames_in_the_same_packet_as_the_handshake_are_not_lost() -> None:
    with running_server() as server, RawClient(server) as raw:
        raw.send(upgrade_request(server.port) + masked_frame(TEXT, b"eager") + masked_frame(BINARY, b"\x00\x01"))
        assert raw.http_response()[0] == 101
        assert raw.recv_frame() == (TEXT, b"eager")
        assert raw.recv_frame() == (BINARY, b"\x00\x01")


def test_tls_client_that_never_starts_the_tls_handshake_is_dropped(tls: TLS) -> None:
    with running_server(ssl=tls.server_context, handshake_timeout=0.5) as server:
        with RawClient(server, timeout=TIMEOUT) as silent:  # plain TCP: no ClientHello, nothing
            assert silent.closed_by_server()
        with RawClient(server, tls=tls) as raw:
            raw.handshake()


def http_get(server: Server, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_healthz_over_plain_http() -> None:
    with running_server() as server:
        assert http_get(server, "/healthz") == (200, b"ok\n")
        assert http_get(server, "/nothing-here")[0] == 404
        with ws_client(server) as client:  # WebSocket on the same port
            assert_echoes(client)


def test_connections_beyond_max_connections_are_answered_503() -> None:
    with running_server(max_connections=2) as server:
        with ws_client(server) as first, ws_client(server):
            with RawClient(server) as third:
                third.send(upgrade_request(server.port))
                status, _, _ = third.http_response()
                assert status == 503
            assert_echoes(first)
        # Capacity comes back once they are gone.
        assert wait_until(lambda: len(server.connections) == 0)
        with ws_client(server) as again:
            assert_echoes(again)


def test_slowloris_handshake_is_dropped_after_handshake_timeout() -> None:
    request = upgrade_request(0, User_Agent="a" * 200)  # ~300 bytes: a minute at 5 bytes/s
    assert len(request) > 50  # more bytes than the loop below ever sends
    with running_server(handshake_timeout=0.5) as server:
        with RawClient(server, timeout=0.2) as slow:
            dropped = False
            for sent in range(50):  # 10 s at most
                try:
                    slow.send(request[sent : sent + 1])
                    dropped = slow.closed_by_server()
                except TimeoutError:
                    continue  # 0.2 s without an answer: send the next byte
                except (BrokenPipeError, ConnectionResetError):
                    dropped = True
                if dropped:
                    break
            assert dropped, "the slow handshake was never dropped"
        with ws_client(server) as client:
            assert_echoes(client)


@pytest.mark.parametrize(
    "garbage",
    [random.Random(seed).randbytes(64) for seed in range(3)] + [b"\x16\x03\x01\x00\xa5\x01", b"HELLO?\r\n"],
    ids=["random-0", "random-1", "random-2", "tls-client-hello", "not-a-request-line"],
)
def test_bytes_that_cannot_be_a_request_get_400_without_waiting_for_the_handshake_timeout(garbage: bytes) -> None:
    # Issue 9: 968 of 1,000 such clients were held open until handshake_timeout.
    with running_server(handshake_timeout=10 * TIMEOUT) as server, RawClient(server) as raw:
        raw.send(garbage)
        status, _, _ = raw.http_response()  # the client's timeout is a tenth of the server's
        assert status == 400
        assert raw.closed_by_server()
        with ws_client(server) as client:
            assert_echoes(client)


# --- faults after the handshake ------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"GARBAGE!\r\n",  # 'G' = 0x47: RSV bits and reserved opcode 7
        masked_frame(TEXT, b"unmasked", mask=False),  # RFC 6455 §5.1: clients must mask
        masked_frame(0x3, b"reserved opcode"),
        masked_frame(PING, b"x" * 126),  # control frames carry at most 125 bytes
    ],
    ids=["text", "unmasked-frame", "reserved-opcode", "oversized-ping"],
)
def test_garbage_after_handshake_gets_1002_then_tcp_close(garbage: bytes) -> None:
    recorder = Recorder()
    with running_server(recorder) as server, RawClient(server) as raw:
        raw.handshake()
        raw.send(garbage)
        code, _ = raw.recv_close()
        assert code == 1002
        assert raw.closed_by_server()
        assert recorder.next_close()[0] == 1002


@pytest.mark.parametrize(
    "violation",
    [masked_frame(0x3, b"reserved opcode"), masked_frame(PING, b"fragmented", fin=False)],
    ids=["reserved-opcode", "fragmented-ping"],
)
def test_a_message_before_a_violation_in_the_same_read_is_echoed_before_the_close(violation: bytes) -> None:
    # RFC 6455 §7.1.7: the valid text counts and its reply is written, then the connection fails.
    recorder = Recorder()
    with running_server(recorder) as server, RawClient(server) as raw:
        raw.handshake()
        raw.send(masked_frame(TEXT, b"Hello") + violation + masked_frame(PING, b"too late"))
        assert raw.recv_frame() == (TEXT, b"Hello")
        assert raw.recv_close()[0] == 1002  # and no pong: nothing after the violation counts
        assert raw.closed_by_server()
        assert recorder.next_close()[0] == 1002


def test_client_vanishing_mid_message_is_closed_1006_and_others_are_served() -> None:
    recorder = Recorder()
    with running_server(recorder) as server, ws_client(server) as bystander:
        recorder.next_open()
        with RawClient(server) as raw:
            raw.handshake()
            recorder.next_open()
            frame = masked_frame(BINARY, os.urandom(1000))
            raw.send(frame[: len(frame) // 2])
        assert recorder.next_close() == (1006, "")
        assert_echoes(bystander)
        assert_echoes(bystander, os.urandom(100_000))


@pytest.mark.parametrize("failing", ["on_open", "on_message"])
def test_handler_error_calls_on_error_and_closes_1011(failing: str) -> None:
    class Failing(Recorder):
        def on_open(self, ws: ServerConnection) -> None:
            super().on_open(ws)
            if failing == "on_open":
                raise RuntimeError("on_open failed")

        def on_message(self, ws: ServerConnection, message: str | bytes) -> None:
            raise RuntimeError("on_message failed")

    recorder = Failing()
    with running_server(recorder) as server, RawClient(server) as raw:
        raw.handshake()
        raw.send_frame(TEXT, b"boom")
        code, _ = raw.recv_close()
        assert code == 1011
        ws, error = recorder.errors.get(timeout=TIMEOUT)
        assert isinstance(error, RuntimeError) and str(error) == f"{failing} failed"
        assert ws is recorder.next_open()
        raw.send_frame(CLOSE, struct.pack("!H", 1011))
        assert raw.closed_by_server()
        assert recorder.next_close()[0] == 1011


def test_decorator_handler_errors_reach_on_error() -> None:
    errors: queue.Queue[BaseException] = queue.Queue()

    def setup(server: Server) -> None:
        @server.on_message
        def fail(ws: ServerConnection, message: Any) -> None:
            raise ValueError(message)

        @server.on_error
        def report(ws: ServerConnection, error: BaseException) -> None:
            errors.put(error)

    with running_server(setup=setup) as server, ws_client(server) as client:
        client.send("bad input")
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=TIMEOUT)
        assert client.close_code == 1011
        assert str(errors.get(timeout=TIMEOUT)) == "bad input"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the dying loop thread
@pytest.mark.parametrize("failure", ["raising-callback", "timer-sends-to-a-closed-client"])
def test_a_failing_scheduled_callback_does_not_stop_the_server(failure: str) -> None:
    def raising() -> None:
        raise RuntimeError("scheduled callback failed")

    recorder = Recorder()
    with running_server(recorder) as server, ws_client(server) as bystander:
        first = recorder.next_open()
        if failure == "raising-callback":
            server.call_soon_threadsafe(raising)
        else:
            with ws_client(server):
                gone = recorder.next_open()
            recorder.next_close()
            # A game tick or feed timer that still holds a departed client: send() raises ConnectionClosed.
            in_loop(server, server.call_later, 0.0, gone.send, "too late")
        # The loop runs callbacks in order: once this one ran, the failing one has run too.
        in_loop(server, lambda: None, timeout=1.0)
        assert_echoes(bystander)
        assert first.ready_state == 1


def test_a_failing_http_handler_answers_500() -> None:
    def http_handler(request: Any) -> Any:
        raise RuntimeError("http handler failed")

    recorder = Recorder()
    with (
        running_server(recorder, http_handler=http_handler, handshake_timeout=0.5) as server,
        RawClient(server) as raw,
    ):
        raw.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert str(recorder.errors.get(timeout=TIMEOUT)[1]) == "http handler failed"
        assert raw.http_response()[0] == 500


def test_message_over_max_message_size_is_closed_1009() -> None:
    recorder = Recorder()
    with running_server(recorder, max_message_size=1000) as server, RawClient(server) as raw:
        raw.handshake()
        raw.send_frame(BINARY, bytes(1000))
        assert raw.recv_frame() == (BINARY, bytes(1000))
        raw.send_frame(BINARY, bytes(1001))
        assert raw.recv_close()[0] == 1009
        assert raw.closed_by_server()
        assert recorder.next_close()[0] == 1009


# --- backpressure: clients that do not read -------------------------------------------------

FEED_MESSAGE = 64 * 1024
FEED_FRAME = FEED_MESSAGE + 10  # RFC 6455 §5.2: 2 header bytes + an 8-byte length
WRITE_LIMIT = 1024 * 1024
FEED_LENGTH = 400  # 25 MiB: more than the kernel buffers of both ends can hide



class Feed(Recorder):
    """Subscribes every client to ``feed`` and remembers the one named ``/slow``."""

    def __init__(self) -> None:
        super().__init__(echo=False)
        self.slow: ServerConnection | None = None

    def on_open(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        ws.subscribe("feed")
        if ws.request.path == "/slow":
            self.slow = ws
        super().on_open(ws)


def feed_message(sequence: int) -> bytes:
    """64 KiB whose first 4 bytes say which message it is."""
    return struct.pack("!I", sequence) + bytes([sequence % 256]) * (FEED_MESSAGE - 4)


def sequence_of(payload: bytes) -> int:
    sequence: int = struct.unpack("!I", payload[:4])[0]
    return sequence


@contextlib.contextmanager
def feed_clients(server: Server, recorder: Feed, tls: TLS | None) -> Iterator[tuple[RawClient, ClientConnection]]:
    """A slow raw client (``/slow``, small receive window, never reads) and a fast websockets one."""
    with RawClient(server, rcvbuf=16 * 1024, tls=tls) as slow:
        slow.send(upgrade_request(server.port, path="/slow"))  # the 101 stays unread for now
        options = {"ssl": tls.client_context} if tls else {}
        with websockets_connect(
            url(server, tls=tls is not None), proxy=None, max_size=None, compression=None, **options
        ) as fast:
            for _ in range(2):
                recorder.next_open()
            yield slow, fast


def run_feed(server: Server, recorder: Feed, fast: ClientConnection, messages: int = FEED_LENGTH) -> list[int]:
    """Publish ``messages`` in lockstep with the fast client; return the slow client's queue sizes.

    Lockstep (publish one, the fast client reads it) keeps the fast client's
    queue short, so only the slow client can become a slow consumer.
    """
    slow = recorder.slow
    assert slow is not None
    queued = []
    for sequence in range(messages):
        server.publish("feed", feed_message(sequence))  # from this thread, as a producer would
        assert fast.recv(timeout=TIMEOUT) == feed_message(sequence)
        queued.append(in_loop(server, lambda: slow.buffered_amount))
    return queued


def use_tls(transport: str, tls: TLS) -> dict[str, Any]:
    return {"ssl": tls.server_context} if transport == "tls" else {}


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_slow_consumer_close_policy_closes_it_and_others_keep_receiving(transport: str, tls: TLS) -> None:
    recorder = Feed()
    client_tls = tls if transport == "tls" else None
    with (
        running_server(
            recorder, write_limit=WRITE_LIMIT, slow_consumer="close", close_timeout=0.5, **use_tls(transport, tls)
        ) as server,
        feed_clients(server, recorder, client_tls) as (_, fast),
    ):
        queued = run_feed(server, recorder, fast)
        assert max(queued) <= WRITE_LIMIT + FEED_FRAME
        assert wait_until(lambda: recorder.slow is not None and recorder.slow.ready_state == 3)
        # Its 1008 close frame is never answered (it does not read): aborted, 1006.
        assert recorder.next_close()[0] == 1006
        server.publish("feed", b"after")
        assert fast.recv(timeout=TIMEOUT) == b"after"


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_slow_consumer_that_reads_later_finds_whole_frames_then_1008(transport: str, tls: TLS) -> None:
    recorder = Feed()
    client_tls = tls if transport == "tls" else None
    with (
        # close_timeout bounds how late it may read: the whole feed, then the reading.
        running_server(
            recorder, write_limit=WRITE_LIMIT, slow_consumer="close", close_timeout=TIMEOUT, **use_tls(transport, tls)
        ) as server,
        feed_clients(server, recorder, client_tls) as (slow, fast),
    ):
        run_feed(server, recorder, fast)
        assert wait_until(lambda: recorder.slow is not None and recorder.slow.ready_state != 1)
        assert slow.http_response()[0] == 101
        # What it finds: whole frames, in order, then the close frame.
        for expected in range(FEED_LENGTH):
            opcode, payload = slow.recv_frame()
            if opcode == CLOSE:
                assert struct.unpack("!H", payload[:2])[0] == 1008
                break
            assert (opcode, payload) == (BINARY, feed_message(expected))
        else:
            raise AssertionError("no close frame")


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_slow_consumer_drop_policy_keeps_it_connected_with_a_bounded_queue(transport: str, tls: TLS) -> None:
    recorder = Feed()
    client_tls = tls if transport == "tls" else None
    with (
        running_server(recorder, write_limit=WRITE_LIMIT, slow_consumer="drop", **use_tls(transport, tls)) as server,
        feed_clients(server, recorder, client_tls) as (slow, fast),
    ):
        queued = run_feed(server, recorder, fast)
        assert max(queued) <= WRITE_LIMIT + FEED_FRAME
        assert recorder.slow is not None and recorder.slow.ready_state == 1
        # Now it reads: whole messages in order, some skipped, none corrupted.
        server.publish("feed", b"last")
        assert slow.http_response()[0] == 101
        sequences = []
        for _ in range(FEED_LENGTH + 1):
            opcode, payload = slow.recv_frame()
            assert opcode == BINARY
            if payload == b"last":
                break
            assert payload == feed_message(sequence_of(payload)), f"message {sequence_of(payload)} is corrupt"
            sequences.append(sequence_of(payload))
        else:
            raise AssertionError("the last message never came")
        assert sequences == sorted(set(sequences)) and 0 < len(sequences) < FEED_LENGTH
        assert recorder.closed.empty()


def test_slow_consumer_drop_policy_keeps_a_compressing_client_connected_without_context_takeover() -> None:
    """Messages compressed each on its own can be dropped (server_no_context_takeover)."""
    recorder = Feed()
    compression = PerMessageDeflate(server_no_context_takeover=True)
    with (
        running_server(
            recorder, write_limit=WRITE_LIMIT, slow_consumer="drop", compression=compression, close_timeout=0.5
        ) as server,
        # websockets stops reading once 4 messages wait for recv(): TCP backpressure.
        ws_client(server, "/slow", compression="deflate", max_queue=4, close_timeout=0.5) as slow,
        ws_client(server) as fast,
    ):
        for _ in range(2):
            recorder.next_open()
        assert slow.response is not None and "permessage-deflate" in slow.response.headers["Sec-WebSocket-Extensions"]
        assert recorder.slow is not None
        for _ in range(300):
            message = os.urandom(FEED_MESSAGE)  # incompressible: the kernel buffers fill up
            server.publish("feed", message)
            assert fast.recv(timeout=TIMEOUT) == message
            assert recorder.slow.ready_state == 1
        assert in_loop(server, lambda: recorder.slow.buffered_amount) <= WRITE_LIMIT + FEED_FRAME


def test_one_message_over_write_limit_to_a_reading_client_is_delivered() -> None:
    payload = os.urandom(8 * 1024 * 1024)  # under max_message_size, over write_limit
    with running_server(write_limit=WRITE_LIMIT, close_timeout=0.5) as server, ws_client(server) as client:
        client.send(payload)
        assert client.recv(timeout=TIMEOUT) == payload


# --- clients that send and never read: the server stops reading them ----------------------

FLOOD = 64 * 1024 * 1024  # far more than the TCP buffers of both ends hold
SMALL_LIMIT = 64 * 1024
READ_SIZE = 256 * 1024  # the most one read hands the protocol (Loop.read_view)


def small_buffer_listener() -> socket.socket:
    """A listening socket whose connections inherit fixed 64 KiB TCP buffers
    (no autotuning), so that a server that stops reading blocks its client soon."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener


def send_until_stalled(sock: socket.socket, chunk: bytes, stall: float = 0.5) -> int:
    """Send ``chunk`` again and again without reading, until :data:`FLOOD` bytes
    are sent, the peer took nothing for ``stall`` seconds or it reset the
    connection; return the bytes sent."""
    sent = 0
    pending = memoryview(chunk)
    sock.settimeout(stall)
    with contextlib.suppress(TimeoutError, ConnectionResetError, BrokenPipeError):
        while sent < FLOOD:
            n = sock.send(pending)
            sent += n
            pending = pending[n:] or memoryview(chunk)
    sock.settimeout(TIMEOUT)
    return sent


def test_a_client_flooding_pings_without_reading_is_paused_not_grown() -> None:
    """Pongs count against write_limit: the server stops reading such a client
    (TCP backpressure) rather than queueing pongs without bound, and resumes
    once the client reads."""
    ping = masked_frame(PING, bytes(125))
    pong = bytes([0x80 | PONG, 125]) + bytes(125)
    pings = ping * 512
    recorder = Recorder()
    with (
        running_server(recorder, write_limit=SMALL_LIMIT, sock=small_buffer_listener()) as server,
        RawClient(server, rcvbuf=16 * 1024) as raw,
    ):
        raw.handshake()
        ws = recorder.next_open()
        sent = send_until_stalled(raw.sock, pings)
        assert sent < FLOOD, "the server read every ping: it never stopped reading"
        assert in_loop(server, lambda: ws.buffered_amount) <= SMALL_LIMIT + READ_SIZE
        assert ws.ready_state == 1
        # The client reads now, and finishes its last chunk: a pong for every ping.
        rest = pings[len(pings) - (-sent % len(pings)) :]
        threading.Thread(target=raw.sock.sendall, args=(rest,), daemon=True).start()
        expected = pong * ((sent + len(rest)) // len(ping))
        received = raw._take(len(expected))
        assert received == expected


def test_a_slow_consumer_is_read_no_more_once_it_is_being_closed() -> None:
    """A client that reads nothing of what the server sends it is closed as a
    slow consumer; from then on the server reads nothing more from it, however
    hard it pushes (no CPU spent discarding its input), and aborts it after
    close_timeout.

    The server's own sends make it a slow consumer here (one broadcast larger
    than ``write_limit``, queued in one loop iteration): echoes of its own
    messages would not, deterministically. Whether a read's last echo or one
    in its middle crosses ``write_limit`` depends on how the kernel splits the
    client's data into reads, and crossing it at the end of a read pauses
    reading (TCP backpressure, as for the pongs above) instead of closing.
    """
    message = masked_frame(BINARY, bytes(1024))
    recorder = Recorder()
    with (
        running_server(
            recorder, write_limit=SMALL_LIMIT, close_timeout=TIMEOUT, sock=small_buffer_listener()
        ) as server,
        RawClient(server, rcvbuf=16 * 1024) as raw,
    ):
        raw.handshake()
        ws = recorder.next_open()
        in_loop(server, lambda: [server.broadcast(bytes(1024)) for _ in range(4 * SMALL_LIMIT // 1024)])
        assert ws.ready_state != 1, "never closed as a slow consumer"
        sent = send_until_stalled(raw.sock, message * 64)
        assert sent < FLOOD, "the server went on reading a client it was closing"
        assert recorder.next_close(timeout=2 * TIMEOUT)[0] == 1006  # aborted: it never answered the close


# --- heartbeats and idle connections -----------------------------------------------------------


def test_heartbeat_closes_a_silent_client_1011_and_keeps_a_responsive_one() -> None:
    recorder = Recorder()
    with (
        running_server(recorder, ping_interval=0.2, ping_timeout=0.3, close_timeout=0.5) as server,
        ws_client(server, ping_interval=None) as responsive,  # it answers the server's pings
        RawClient(server) as silent,
    ):
        responsive_ws = recorder.next_open()
        silent.handshake()
        silent_ws = recorder.next_open()
        # The silent client never answers; bounded wait for the server to give up on it.
        assert wait_until(lambda: silent_ws.ready_state == 3)
        assert recorder.next_close() == (1006, "")  # its close went unanswered: aborted
        code, reason = silent.recv_close(skip=(PING,))
        assert code == 1011 and "ping" in reason
        assert silent.closed_by_server()
        assert responsive_ws.ready_state == 1
        assert_echoes(responsive)


def test_idle_timeout_closes_a_silent_client_1001_and_not_a_chatty_one() -> None:
    recorder = Recorder()
    with (
        running_server(recorder, idle_timeout=0.3, ping_interval=None, close_timeout=0.5) as server,
        ws_client(server, ping_interval=None) as chatty,
        RawClient(server) as silent,
    ):
        recorder.next_open()
        silent.handshake()
        silent_ws = recorder.next_open()
        for _ in range(10):  # ~1 s of chatting, several idle timeouts long
            assert_echoes(chatty)
            if silent_ws.ready_state != 1:
                break
            threading.Event().wait(0.1)
        code, _ = silent.recv_close()
        assert code == 1001
        silent.send_frame(CLOSE, struct.pack("!H", 1001))
        assert silent.closed_by_server()
        assert recorder.next_close()[0] == 1001
        assert_echoes(chatty)


# --- graceful shutdown ---------------------------------------------------------------------------


def test_graceful_shutdown_delivers_queued_messages_then_1001() -> None:
    count, size = 80, 64 * 1024  # 5 MiB, queued while the client is not reading
    queued = threading.Event()

    class Burst(Recorder):
        def on_message(self, ws: ServerConnection, message: str | bytes) -> None:
            for sequence in range(count):
                ws.send(struct.pack("!I", sequence) + bytes(size - 4))
            queued.set()

    recorder = Burst()
    # write_limit above the burst: this test is about shutdown, not slow consumers.
    with running_server(recorder, write_limit=16 * 1024 * 1024) as server, ws_client(server) as client:
        client.send("go")
        assert queued.wait(TIMEOUT)
        server.shutdown(timeout=TIMEOUT)
        for sequence in range(count):
            message = client.recv(timeout=TIMEOUT)
            assert len(message) == size and struct.unpack("!I", message[:4])[0] == sequence
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=TIMEOUT)
        assert client.close_code == 1001
        assert recorder.next_close()[0] == 1001  # websockets echoed the server's code
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT).close()


def test_shutdown_is_bounded_when_a_client_never_answers_the_close() -> None:
    recorder = Recorder()
    with running_server(recorder, stop_timeout=0.3) as server, RawClient(server) as deaf:
        deaf.handshake()
        recorder.next_open()
        # running_server's exit calls shutdown(timeout=0.3) and asserts the thread stops.
    assert recorder.next_close() == (1006, "")


# --- several servers on one port -------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT on this platform")
def test_two_servers_share_a_port_with_reuse_port() -> None:
    class Named(Handler):
        def __init__(self, name: str) -> None:
            self.name = name

        def on_open(self, ws: ServerConnection) -> None:
            ws.send(self.name)

    with running_server(Named("first"), reuse_port=True) as first:
        with running_server(Named("second"), reuse_port=True, port=first.port) as second:
            assert second.port == first.port
            seen = set()
            for _ in range(40):  # the kernel spreads connections by hash: both get some
                with ws_client(first) as client:
                    seen.add(client.recv(timeout=TIMEOUT))
                if seen == {"first", "second"}:
                    break
            assert seen == {"first", "second"}


# --- zero-copy sends of buffers ---------------------------------------------------------------------


def _numpy() -> Any:
    return pytest.importorskip("numpy")


#: Buffers a feed sends as they are, without a copy (or with one, when not contiguous).
BUFFERS: dict[str, Callable[[], Any]] = {
    "numpy-float64": lambda: _numpy().arange(1000, dtype=_numpy().float64),
    "numpy-2d-uint16": lambda: _numpy().arange(600, dtype=_numpy().uint16).reshape(20, 30),
    "numpy-strided": lambda: _numpy().arange(1000, dtype=_numpy().int32)[::3],
    "memoryview-slice": lambda: memoryview(bytearray(range(256)) * 10)[100:2000],
    "memoryview-cast": lambda: memoryview(bytearray(range(256)) * 8).cast("Q"),
    "bytearray": lambda: bytearray(b"\x00\xff" * 5000),
}
BUFFER_KINDS = list(BUFFERS)


def as_bytes(buffer: Any) -> bytes:
    """The bytes a buffer holds, in C order: what the client must receive."""
    return bytes(buffer.tobytes()) if hasattr(buffer, "tobytes") else bytes(buffer)


@pytest.mark.parametrize("kind", BUFFER_KINDS)
def test_buffer_sends_arrive_intact(kind: str) -> None:
    make = BUFFERS[kind]

    class Sender(Handler):
        def on_message(self, ws: ServerConnection, message: Any) -> None:
            ws.send(make())

    with running_server(Sender()) as server, ws_client(server) as client:
        client.send("send it")
        assert client.recv(timeout=TIMEOUT) == as_bytes(make())


@pytest.mark.parametrize("kind", BUFFER_KINDS)
def test_buffer_publish_and_broadcast_arrive_intact(kind: str) -> None:
    make = BUFFERS[kind]
    recorder = Feed()
    with running_server(recorder) as server, ws_client(server) as one, ws_client(server) as two:
        recorder.next_open()
        recorder.next_open()
        server.publish("feed", make())
        server.broadcast(make())
        for client in (one, two):
            assert client.recv(timeout=TIMEOUT) == as_bytes(make())
            assert client.recv(timeout=TIMEOUT) == as_bytes(make())


def test_publish_reaches_compressing_and_plain_subscribers_alike() -> None:
    recorder = Feed()
    text = "compressible feed text " * 1000
    with (
        running_server(recorder, compression=True) as server,
        ws_client(server, compression="deflate") as compressing,
        ws_client(server) as plain,
    ):
        recorder.next_open()
        recorder.next_open()
        assert compressing.response is not None and plain.response is not None
        assert "permessage-deflate" in compressing.response.headers.get("Sec-WebSocket-Extensions", "")
        assert "Sec-WebSocket-Extensions" not in plain.response.headers
        for message in (text, pattern_bytes(100_000), text):
            server.publish("feed", message)
        for client in (compressing, plain):
            assert [client.recv(timeout=TIMEOUT) for _ in range(3)] == [text, pattern_bytes(100_000), text]


def pattern_bytes(size: int) -> bytes:
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def test_a_change_made_through_a_kept_reference_to_the_protocol_is_seen_by_the_next_broadcast() -> None:
    """The core keeps ``can_send_prebuilt()`` with the outbox's version, not until
    ``ws.protocol`` is read: a broadcast after a fragmented send started through a
    reference taken earlier continues that message instead of cutting into it."""
    recorder = Recorder(echo=False)
    with running_server(recorder) as server, ws_client(server) as client:
        ws = recorder.next_open()

        def whole_then_a_first_fragment_then_a_broadcast() -> None:
            protocol = ws.protocol
            ws.send("whole")  # the core asks can_send_prebuilt() and keeps the answer
            protocol.send_text("first ", fin=False)
            ws.stream.write(protocol.data_to_send())  # nothing of the protocol's left pending
            server.broadcast("rest")

        in_loop(server, whole_then_a_first_fragment_then_a_broadcast)
        assert client.recv(timeout=TIMEOUT) == "whole"
        assert client.recv(timeout=TIMEOUT) == "first rest"
        assert recorder.errors.empty()


def test_send_of_str_is_text_and_bytes_is_binary() -> None:
    with running_server() as server, RawClient(server) as raw:
        raw.handshake()
        raw.send_frame(TEXT, "é".encode())
        raw.send_frame(BINARY, "é".encode())
        assert raw.recv_frame() == (TEXT, "é".encode())
        assert raw.recv_frame() == (BINARY, "é".encode())


def test_accept_key_example() -> None:
    """The raw client's constants are RFC 6455 §1.3's worked example."""
    import hashlib

    digest = hashlib.sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    assert base64.b64encode(digest).decode() == ACCEPT


def test_the_fast_paths_stand_aside_while_ws_protocol_sends_in_fragments() -> None:
    """``send`` and ``publish`` frame whole messages themselves; while the
    application sends a message in fragments through ``ws.protocol``, they
    go through the protocol instead, which continues that message."""
    recorder = Feed()
    with running_server(recorder) as server, ws_client(server) as client:
        ws = recorder.next_open()

        def fragment(payload: bytes) -> None:
            ws.protocol.send_binary(payload, fin=False)
            ws.stream.write(ws.protocol.data_to_send())  # nothing left pending in the protocol

        def interleave() -> None:
            ws.send(b"whole")
            fragment(b"first ")
            server.publish("feed", b"second")
            fragment(b"third ")
            ws.send(b"fourth")
            ws.send(b"fifth")

        in_loop(server, interleave)
        received = [client.recv(timeout=TIMEOUT) for _ in range(4)]
        assert received == [b"whole", b"first second", b"third fourth", b"fifth"]
