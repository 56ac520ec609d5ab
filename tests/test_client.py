"""wsfast.connect(), the blocking client, against three servers.

Every behaviour is stated once and checked against each server: the
`websockets` library (its threaded server), Node's `ws` (``tests/peers/ws_server.mjs``)
and wsfast's own :class:`wsfast.Server`. The three behave alike on purpose:

- any path echoes each message, text as text and binary as binary;
- ``/close-with?code=C&reason=R&messages=N`` sends ``"message 0"`` ..
  ``"message N-1"``, then closes with ``C`` and ``R``;
- ``/ping?data=D`` pings the client with ``D`` and, once the pong is back,
  sends the text ``"pong:D"``;
- ``/header?name=H`` sends the value of request header ``H``;
- the subprotocol ``chat`` is supported, permessage-deflate is accepted,
  messages up to 64 MiB are accepted, and ``Origin: https://evil.example`` is
  refused with 403 (a request without ``Origin`` is let in);
- each connection's end is reported as ``(target, code, reason)``, so a test
  sees what the server received.

The servers, the silent TCP servers and the certificates defined here are
also used by ``tests/test_websocket_api.py``.

Everything runs on 127.0.0.1 and every wait is bounded (``TIMEOUT``). Node's
``ws`` must really run in CI: with ``CI`` set, a missing ``node`` or
``tests/peers/node_modules/ws`` (``npm install --prefix tests/peers``) fails
the Node tests instead of skipping them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import os
import queue
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import wsfast
from tests.timeouts import TIMEOUT
from wsfast.handshake import Request
from wsfast.server import Handler, Server, ServerConnection

REPO = Path(__file__).parent.parent
PEERS_DIR = REPO / "tests" / "peers"
NODE_SERVER = PEERS_DIR / "ws_server.mjs"

SUBPROTOCOL = "chat"
GOOD_ORIGIN = "https://good.example"
EVIL_ORIGIN = "https://evil.example"
MAX_SIZE = 64 * 1024 * 1024
SERVER_KINDS = ["websockets", "node-ws", "wsfast"]

_targets = itertools.count()


def pattern(size: int) -> bytes:
    """``size`` bytes ``i % 251``: no period of 2, 4 or 8 hides a masking bug."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


# --- certificates ------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    """A trustme CA and a certificate for 127.0.0.1, as contexts and as PEM files.

    Attributes:
        server_context: for Python servers.
        client_context: trusts the CA; pass as ``ssl=`` to the client.
        cert_file, key_file: the server's certificate chain and key, for Node.
    """

    server_context: ssl.SSLContext
    client_context: ssl.SSLContext
    cert_file: Path
    key_file: Path


def make_certs(directory: Path) -> Certs:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1", "localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_context)
    cert_file, key_file = directory / "server-cert.pem", directory / "server-key.pem"
    with cert_file.open("wb") as file:
        for blob in certificate.cert_chain_pems:
            file.write(blob.bytes())
    certificate.private_key_pem.write_to_path(str(key_file))
    return Certs(server_context, client_context, cert_file, key_file)


# --- the three servers -------------------------------------------------------------------


class EchoServer:
    """One of the servers under the common behaviour described at the top."""

    name = "?"

    def __init__(self, certs: Certs | None) -> None:
        self.certs = certs
        self.port = 0
        self.closes: queue.Queue[tuple[str, int | None, str]] = queue.Queue()
        self._seen: list[tuple[str, int | None, str]] = []

    def url(self, path: str = "/") -> str:
        return f"{'wss' if self.certs else 'ws'}://127.0.0.1:{self.port}{path}"

    def next_close(self, target: str, timeout: float = TIMEOUT) -> tuple[int | None, str]:
        """``(code, reason)`` with which the connection to ``target`` ended, as the server saw it."""
        deadline = time.monotonic() + timeout
        while True:
            for seen in self._seen:
                if seen[0] == target:
                    return seen[1], seen[2]
            self._seen.append(self.closes.get(timeout=max(0.0, deadline - time.monotonic())))

    def stop(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


def unique(path: str) -> str:
    """``path`` made unique with a query parameter, to find its connection's close."""
    separator = "&" if "?" in path else "?"
    return f"{path}{separator}test={next(_targets)}"


class WebsocketsServer(EchoServer):
    """The `websockets` library's threaded server (``websockets.sync.server``)."""

    name = "websockets"

    def __init__(self, certs: Certs | None, port: int = 0) -> None:
        super().__init__(certs)
        from websockets.sync.server import serve

        self._server = serve(
            self._handler,
            "127.0.0.1",
            port,
            ssl=certs.server_context if certs else None,
            origins=[None, GOOD_ORIGIN],
            # Like the others: the first offered that is supported, else none (by
            # default websockets refuses a client offering none or no match).
            select_subprotocol=lambda ws, offered: next((p for p in offered if p == SUBPROTOCOL), None),
            compression="deflate",
            max_size=MAX_SIZE,
            ping_interval=None,
            close_timeout=1,
        )
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="websockets-server", daemon=True)
        self._thread.start()

    def _handler(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        target = ws.request.path
        url = urlsplit(target)
        query = {name: values[0] for name, values in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            if url.path == "/close-with":
                for i in range(int(query.get("messages", "0"))):
                    ws.send(f"message {i}")
                ws.close(int(query.get("code", "1000")), query.get("reason", ""))
            else:
                if url.path == "/ping":
                    if ws.ping(query.get("data", "").encode()).wait(TIMEOUT):
                        ws.send(f"pong:{query.get('data', '')}")
                elif url.path == "/header":
                    ws.send(ws.request.headers.get(query.get("name", ""), ""))
                for message in ws:
                    if url.path not in ("/ping", "/header"):
                        ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            self.closes.put((target, ws.close_code, ws.close_reason or ""))

    def stop(self) -> None:
        stopper = threading.Thread(target=self._server.shutdown, daemon=True)
        stopper.start()
        stopper.join(TIMEOUT)
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive(), "the websockets server did not stop"


def require_node() -> None:
    """Skip when Node or its ``ws`` is missing; in CI (``CI`` set), fail instead."""
    missing = None
    if shutil.which("node") is None:
        missing = "node is not installed"
    elif not (PEERS_DIR / "node_modules" / "ws" / "package.json").exists():
        missing = "Node's ws is not installed: run `npm install --prefix tests/peers`"
    if missing is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{missing} (CI must run the Node peer)")
    pytest.skip(missing)


class ChildServer(EchoServer):
    """A server in a child process that reports as ``ws_server.mjs`` does.

    The child prints ``{"port": N}`` once listening, then one JSON line per
    connection event; it exits when its stdin closes (also when this process
    dies), and is killed by its handle if it does not.
    """

    def __init__(self, certs: Certs | None, command: list[str]) -> None:
        super().__init__(certs)
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )
        self._output: list[str] = []
        started: queue.Queue[int] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(started,), name=f"{self.name}-output", daemon=True)
        self._reader.start()
        try:
            self.port = started.get(timeout=3 * TIMEOUT)
        except queue.Empty:
            self.stop()
            pytest.fail(f"the {self.name} server did not start: {''.join(self._output)}")

    def _read(self, started: queue.Queue[int]) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._output.append(line)
            try:
                report = json.loads(line)
            except ValueError:
                continue  # a warning or a stack trace: kept in _output
            if "port" in report:
                started.put(report["port"])
            elif report.get("event") == "close":
                self.closes.put((report["target"], report["code"], report["reason"]))

    def stop(self) -> None:
        process = self._process
        if process.poll() is None:
            assert process.stdin is not None
            process.stdin.close()  # the child exits when its stdin closes
            try:
                process.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()  # our own child, by its handle
                process.wait(TIMEOUT)
        self._reader.join(TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()


class NodeServer(ChildServer):
    """Node's ``ws`` in a child process (``tests/peers/ws_server.mjs``)."""

    name = "node-ws"

    def __init__(self, certs: Certs | None, port: int = 0) -> None:
        require_node()
        config: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": port,
            "compression": True,
            "subprotocols": [SUBPROTOCOL],
            "origins": [GOOD_ORIGIN],
            "maxPayload": MAX_SIZE,
        }
        if certs is not None:
            config["cert"], config["key"] = str(certs.cert_file), str(certs.key_file)
        super().__init__(certs, ["node", str(NODE_SERVER), json.dumps(config)])


class _Behaviour(Handler):
    """The common behaviour, as a wsfast :class:`Handler`."""

    def __init__(self, server: WsfastServer) -> None:
        self.owner = server

    def on_open(self, ws: ServerConnection) -> None:
        request: Request = ws.request  # type: ignore[assignment]
        query = {name: values[0] for name, values in request.query.items()}
        if request.path == "/close-with":
            for i in range(int(query.get("messages", "0"))):
                ws.send(f"message {i}")
            ws.close(int(query.get("code", "1000")), query.get("reason", ""))
        elif request.path == "/ping":
            self._ping(ws, query.get("data", ""))
        elif request.path == "/header":
            ws.send(request.headers.get(query.get("name", ""), "") or "")

    def _ping(self, ws: ServerConnection, data: str) -> None:
        # The handler API does not report pongs; the client sends nothing else on
        # this path, so the next data it sends after the ping is the pong.
        seen = ws.keepalive.last_seen
        ws.ping(data.encode())
        server = self.owner.server
        checks = iter(range(int(TIMEOUT / 0.01)))

        def check() -> None:
            if ws.ready_state != wsfast.State.OPEN:
                return
            if ws.keepalive.last_seen > seen:
                ws.send(f"pong:{data}")
            elif next(checks, None) is not None:
                server.call_later(0.01, check)

        server.call_later(0.01, check)

    def on_message(self, ws: ServerConnection, message: str | bytes) -> None:
        if ws.request is not None and ws.request.path not in ("/ping", "/header", "/close-with"):
            ws.send(message)

    def on_close(self, ws: ServerConnection, code: int, reason: str) -> None:
        target = ws.request.target if ws.request is not None else "?"
        self.owner.closes.put((target, code, reason))


class WsfastServer(EchoServer):
    """wsfast's own :class:`wsfast.Server`, in a thread."""

    name = "wsfast"

    def __init__(self, certs: Certs | None, port: int = 0, *, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(certs)
        self.server = Server(
            _Behaviour(self),
            host="127.0.0.1",
            port=port,
            ssl=ssl_context or (certs.server_context if certs else None),
            origins=[GOOD_ORIGIN],
            subprotocols=[SUBPROTOCOL],
            compression=True,
            max_message_size=MAX_SIZE,
            write_limit=2 * MAX_SIZE,
            ping_interval=None,
            close_timeout=1.0,
        )
        self.port = self.server.port
        self._thread = self.server.start()

    def stop(self) -> None:
        self.server.shutdown(timeout=1.0)
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive(), "the wsfast server did not stop"


class WsfastChildServer(ChildServer):
    """:class:`WsfastServer` in a child process (see :func:`serve_in_child`).

    Tests of wsfast's own client loop use this one: the server's loop and the
    client's then run in different processes.
    """

    name = "wsfast"

    def __init__(self, certs: Certs | None, port: int = 0) -> None:
        config: dict[str, Any] = {"port": port}
        if certs is not None:
            config["cert"], config["key"] = str(certs.cert_file), str(certs.key_file)
        script = "import json, sys; from tests.test_client import serve_in_child as s; s(json.loads(sys.argv[1]))"
        super().__init__(certs, [sys.executable, "-c", script, json.dumps(config)])


class _PrintedCloses:
    """Stands for the ``closes`` queue in a child: prints each close as a JSON line."""

    def put(self, item: tuple[str, int | None, str]) -> None:
        print(json.dumps({"event": "close", "target": item[0], "code": item[1], "reason": item[2]}), flush=True)


def serve_in_child(config: dict[str, Any]) -> None:
    """The body of :class:`WsfastChildServer`'s process: serve until stdin closes."""
    context = None
    if "cert" in config:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(config["cert"], config["key"])
    server = WsfastServer(None, config.get("port", 0), ssl_context=context)
    server.closes = _PrintedCloses()  # type: ignore[assignment]
    print(json.dumps({"port": server.port}), flush=True)
    try:
        sys.stdin.read()
    finally:
        server.stop()


SERVER_CLASSES: dict[tuple[str, bool], Callable[[Certs | None, int], EchoServer]] = {
    ("websockets", False): WebsocketsServer,
    ("node-ws", False): NodeServer,
    ("node-ws", True): NodeServer,
    ("wsfast", False): WsfastServer,
    ("wsfast", True): WsfastChildServer,
}


@contextlib.contextmanager
def running(kind: str, certs: Certs | None = None, *, port: int = 0, child: bool = False) -> Iterator[EchoServer]:
    """Start a server of ``kind``; always stop it.

    Args:
        port: where to listen; 0 picks a free port.
        child: run wsfast's server in a child process rather than a thread
            (Node's always runs in one; websockets' never does).
    """
    if kind == "websockets":
        pytest.importorskip("websockets")
    server = SERVER_CLASSES[kind, child and kind != "websockets"](certs, port)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", params=SERVER_KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[EchoServer]:
    """Each of the three servers, plain ws://, shared by a module's tests."""
    with running(request.param) as server:
        yield server


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(params=SERVER_KINDS)
def tls_server(request: pytest.FixtureRequest, certs: Certs) -> Iterator[EchoServer]:
    """Each of the three servers on wss:// with a certificate from the ``certs`` CA."""
    with running(request.param, certs) as server:
        yield server


# --- TCP servers that misbehave ------------------------------------------------------------

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class SilentServer:
    """A TCP server on 127.0.0.1 that never says a word, or only the handshake.

    Args:
        handshake: complete the opening handshake (a bare 101 response, no
            extension, no subprotocol) and then stay silent; when False,
            connections are not even accepted (the kernel's backlog completes
            TCP, nothing more).
        gate: when given, answer a handshake only once it is set.
        then: bytes sent right after the 101 response (frames, unmasked).

    Attributes:
        connections: the accepted sockets, in order (read them to see what the
            client sent; ``wait_connections(n)`` waits for the n-th).
    """

    def __init__(self, *, handshake: bool, gate: threading.Event | None = None, then: bytes = b"") -> None:
        self.gate = gate
        self.then = then
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        if handshake:
            self._thread = threading.Thread(target=self._serve, name="silent-server", daemon=True)
            self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        self.listener.settimeout(0.05)
        while not self._stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                answer = self._answer(sock)
                if self.gate is not None and not self.gate.wait(TIMEOUT):
                    raise ValueError("the gate was never opened")
                sock.sendall(answer + self.then)
            except (OSError, ValueError):
                sock.close()
                continue
            self.connections.append(sock)

    def _answer(self, sock: socket.socket) -> bytes:
        sock.settimeout(TIMEOUT)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                raise ValueError("the client left during the handshake")
            head += chunk
        key = ""
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        return (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
        ).encode()

    def wait_connections(self, count: int, timeout: float = TIMEOUT) -> list[socket.socket]:
        deadline = time.monotonic() + timeout
        while len(self.connections) < count:
            assert time.monotonic() < deadline, f"{len(self.connections)} connections, expected {count}"
            time.sleep(0.01)
        return self.connections

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(TIMEOUT)
        self.listener.close()
        for sock in self.connections:
            sock.close()


@contextlib.contextmanager
def silent_server(*, handshake: bool, gate: threading.Event | None = None, then: bytes = b"") -> Iterator[SilentServer]:
    server = SilentServer(handshake=handshake, gate=gate, then=then)
    try:
        yield server
    finally:
        server.stop()


def read_until_eof(sock: socket.socket, timeout: float) -> bytes:
    """What the peer sends until it closes the connection; ``TimeoutError`` if it does not."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of the call)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


class CountingSocket:
    """Wraps a client's socket and counts the bytes received (compression tests)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.received = 0

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        self.received += len(data)
        return data

    def recv_into(self, buffer: bytearray) -> int:
        n = self._sock.recv_into(buffer)
        self.received += n
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


# --- messages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "hello", "héllo wörld", "日本語のテキスト", "emoji \U0001f600\U0001f680", "x" * 70000],
    ids=["empty", "ascii", "latin", "cjk", "emoji", "long"],
)
def test_text_round_trip(server: EchoServer, text: str) -> None:
    with wsfast.connect(server.url()) as ws:
        ws.send(text)
        received = ws.recv(timeout=TIMEOUT)
    assert type(received) is str
    assert received == text


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 4 * 1024 * 1024])
def test_binary_round_trip(server: EchoServer, size: int) -> None:
    payload = pattern(size)
    with wsfast.connect(server.url()) as ws:
        ws.send(payload)
        received = ws.recv(timeout=TIMEOUT)
    assert type(received) is bytes
    assert received == payload


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_any_bytes_like_is_sent_as_binary(server: EchoServer, kind: type) -> None:
    with wsfast.connect(server.url()) as ws:
        ws.send(kind(b"\x00\x01binary\xff"))
        assert ws.recv(timeout=TIMEOUT) == b"\x00\x01binary\xff"


def test_messages_arrive_in_order(server: EchoServer) -> None:
    with wsfast.connect(server.url()) as ws:
        for i in range(200):
            ws.send(f"message {i}" if i % 2 else pattern(i))
        received = [ws.recv(timeout=TIMEOUT) for _ in range(200)]
    assert received == [f"message {i}" if i % 2 else pattern(i) for i in range(200)]


def test_a_burst_of_messages_is_echoed(server: EchoServer) -> None:
    with wsfast.connect(server.url()) as ws:
        for i in range(1000):  # queued, then written at once: the server reads them together
            ws.protocol.send_text(f"burst {i}")
        ws.sock.sendall(b"".join(ws.protocol.data_to_send()))
        assert [ws.recv(timeout=TIMEOUT) for _ in range(1000)] == [f"burst {i}" for i in range(1000)]


def test_a_message_over_max_message_size_fails_with_1009(server: EchoServer) -> None:
    with wsfast.connect(server.url(), max_message_size=1000) as ws:
        ws.send(pattern(1000))
        assert ws.recv(timeout=TIMEOUT) == pattern(1000)
        ws.send(pattern(1001))  # the limit is on what the client receives
        with pytest.raises(wsfast.ConnectionClosed) as caught:
            ws.recv(timeout=TIMEOUT)
    assert caught.value.code == 1009


# --- ping and pong -----------------------------------------------------------------------


def test_ping_is_answered_and_never_delivered_as_a_message(server: EchoServer) -> None:
    with wsfast.connect(server.url()) as ws:
        ws.ping(b"are you there")
        ws.ping()
        ws.send("after the pings")
        assert ws.recv(timeout=TIMEOUT) == "after the pings"


def test_the_client_answers_the_servers_ping(server: EchoServer) -> None:
    with wsfast.connect(server.url("/ping?data=probe")) as ws:
        assert ws.recv(timeout=TIMEOUT) == "pong:probe"


# --- closing -----------------------------------------------------------------------------


def test_server_close_code_and_reason_reach_recv(server: EchoServer) -> None:
    target = unique("/close-with?code=4001&reason=bye")
    with wsfast.connect(server.url(target)) as ws:
        with pytest.raises(wsfast.ConnectionClosed) as caught:
            ws.recv(timeout=TIMEOUT)
        assert (caught.value.code, caught.value.reason) == (4001, "bye")
        with pytest.raises(wsfast.ConnectionClosed):
            ws.recv(timeout=TIMEOUT)  # and again, for every later call
        assert ws.state is wsfast.State.CLOSED
    # The client echoed the close: the server saw a clean closing handshake.
    assert server.next_close(target) == (4001, "bye")


def test_messages_sent_before_the_close_come_first(server: EchoServer) -> None:
    with wsfast.connect(server.url("/close-with?code=4001&reason=bye&messages=3")) as ws:
        assert [ws.recv(timeout=TIMEOUT) for _ in range(3)] == ["message 0", "message 1", "message 2"]
        with pytest.raises(wsfast.ConnectionClosed) as caught:
            ws.recv(timeout=TIMEOUT)
    assert caught.value.code == 4001


@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (1000, "done"), (4002, "client says bye"), (3000, "ü")])
def test_client_close_code_and_reason_reach_the_server(server: EchoServer, code: int, reason: str) -> None:
    target = unique("/echo")
    ws = wsfast.connect(server.url(target))
    ws.close(code, reason)
    assert ws.state is wsfast.State.CLOSED
    assert server.next_close(target) == (code, reason)


def test_context_manager_closes_with_1000(server: EchoServer) -> None:
    target = unique("/echo")
    with wsfast.connect(server.url(target)) as ws:
        ws.send("hi")
        assert ws.recv(timeout=TIMEOUT) == "hi"
    assert ws.state is wsfast.State.CLOSED
    assert server.next_close(target) == (1000, "")


def test_send_after_close_raises_connection_closed(server: EchoServer) -> None:
    ws = wsfast.connect(server.url())
    ws.close()
    with pytest.raises(wsfast.ConnectionClosed):
        ws.send("too late")


@pytest.mark.parametrize("code", [1000, 1001])
def test_iteration_stops_on_a_normal_close(server: EchoServer, code: int) -> None:
    with wsfast.connect(server.url(f"/close-with?code={code}&reason=done&messages=3")) as ws:
        assert list(ws) == ["message 0", "message 1", "message 2"]


def test_iteration_raises_on_an_abnormal_close(server: EchoServer) -> None:
    with wsfast.connect(server.url("/close-with?code=4001&reason=bye&messages=2")) as ws:
        received = []
        with pytest.raises(wsfast.ConnectionClosed) as caught:
            for message in ws:
                received.append(message)
    assert received == ["message 0", "message 1"]
    assert (caught.value.code, caught.value.reason) == (4001, "bye")


# --- negotiation -------------------------------------------------------------------------


def test_compression_is_negotiated_and_shrinks_the_traffic(server: EchoServer) -> None:
    text = "compressible " * 80000  # ~1 MiB
    with wsfast.connect(server.url(), compression=True) as ws:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions") if ws.response else None
        assert extensions is not None and extensions.startswith("permessage-deflate")
        counter = CountingSocket(ws.sock)
        ws.sock = counter  # type: ignore[assignment]
        ws.send(text)
        assert ws.recv(timeout=TIMEOUT) == text
        assert counter.received < len(text) // 10  # it came back compressed
        ws.send(pattern(300000))  # incompressible, and still fine
        assert ws.recv(timeout=TIMEOUT) == pattern(300000)
        for i in range(50):
            ws.send(f"small message {i}")
        assert [ws.recv(timeout=TIMEOUT) for _ in range(50)] == [f"small message {i}" for i in range(50)]


def test_no_compression_unless_offered(server: EchoServer) -> None:
    with wsfast.connect(server.url()) as ws:
        assert ws.response is not None
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        ws.send("plain " * 1000)
        assert ws.recv(timeout=TIMEOUT) == "plain " * 1000


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [((SUBPROTOCOL,), SUBPROTOCOL), (("superchat", SUBPROTOCOL), SUBPROTOCOL), (("other",), None), ((), None)],
    ids=["chat", "second-choice", "unsupported", "none-offered"],
)
def test_subprotocol_negotiation(server: EchoServer, offered: tuple[str, ...], chosen: str | None) -> None:
    with wsfast.connect(server.url(), subprotocols=offered) as ws:
        assert ws.subprotocol == chosen
        assert ws.response is not None
        assert ws.response.headers.get("Sec-WebSocket-Protocol") == chosen
        ws.send("still works")
        assert ws.recv(timeout=TIMEOUT) == "still works"


def test_extra_headers_reach_the_server(server: EchoServer) -> None:
    headers = [("X-Token", "secret-42"), ("Cookie", "session=abc")]
    with wsfast.connect(server.url("/header?name=X-Token"), extra_headers=headers) as ws:
        assert ws.recv(timeout=TIMEOUT) == "secret-42"
    with wsfast.connect(server.url("/header?name=Cookie"), extra_headers=headers) as ws:
        assert ws.recv(timeout=TIMEOUT) == "session=abc"


def test_an_allowed_origin_is_let_in(server: EchoServer) -> None:
    with wsfast.connect(server.url("/header?name=Origin"), origin=GOOD_ORIGIN) as ws:
        assert ws.recv(timeout=TIMEOUT) == GOOD_ORIGIN


def test_a_refused_handshake_raises_invalid_handshake_with_the_status(server: EchoServer) -> None:
    with pytest.raises(wsfast.InvalidHandshake) as caught:
        wsfast.connect(server.url(), origin=EVIL_ORIGIN, open_timeout=TIMEOUT)
    assert caught.value.status == 403


def test_websockets_process_request_refusal_is_reported_with_its_status() -> None:
    websockets_server = pytest.importorskip("websockets.sync.server")

    def refuse(connection: Any, request: Any) -> Any:
        return connection.respond(403, "Forbidden\n")

    with websockets_server.serve(lambda ws: None, "127.0.0.1", 0, process_request=refuse) as refusing:
        thread = threading.Thread(target=refusing.serve_forever, daemon=True)
        thread.start()
        try:
            port = refusing.socket.getsockname()[1]
            with pytest.raises(wsfast.InvalidHandshake) as caught:
                wsfast.connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT)
        finally:
            refusing.shutdown()
            thread.join(TIMEOUT)
    assert caught.value.status == 403


# --- TLS ---------------------------------------------------------------------------------


def test_wss_with_a_trusted_ca(tls_server: EchoServer, certs: Certs) -> None:
    with wsfast.connect(tls_server.url(), ssl=certs.client_context, compression=True) as ws:
        ws.send("secret")
        assert ws.recv(timeout=TIMEOUT) == "secret"
        ws.send(pattern(1024 * 1024))
        assert ws.recv(timeout=TIMEOUT) == pattern(1024 * 1024)


def test_wss_refuses_an_untrusted_certificate(tls_server: EchoServer) -> None:
    untrusting = ssl.create_default_context()  # the system's CAs, not ours
    with pytest.raises(ssl.SSLCertVerificationError):
        wsfast.connect(tls_server.url(), ssl=untrusting, open_timeout=TIMEOUT)


def test_an_ssl_context_with_a_ws_url_is_refused(certs: Certs) -> None:
    with pytest.raises(ValueError, match="wss://"):
        wsfast.connect("ws://127.0.0.1:1/", ssl=certs.client_context)


# --- timeouts and failures ---------------------------------------------------------------


def test_recv_timeout_raises_timeout_error_and_keeps_the_connection(server: EchoServer) -> None:
    with wsfast.connect(server.url()) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.05)
        assert ws.state is wsfast.State.OPEN
        ws.send("still here")
        assert ws.recv(timeout=TIMEOUT) == "still here"


def test_recv_with_a_zero_timeout_polls(server: EchoServer) -> None:
    with wsfast.connect(server.url()) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0)
        assert ws.state is wsfast.State.OPEN
        ws.send("still here")
        assert ws.recv(timeout=TIMEOUT) == "still here"


class SyscallCountingSocket:
    """Wraps a client's socket: counts the timeout changes, and times out the first reads."""

    def __init__(self, sock: socket.socket, timeouts: int = 0) -> None:
        self._sock = sock
        self.settimeout_calls = 0
        self.timeouts = timeouts

    def settimeout(self, timeout: float | None) -> None:
        self.settimeout_calls += 1
        self._sock.settimeout(timeout)

    def recv_into(self, buffer: bytearray) -> int:
        if self.timeouts:
            self.timeouts -= 1
            raise TimeoutError
        return self._sock.recv_into(buffer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def test_messages_cost_no_socket_mode_switch(server: EchoServer) -> None:
    # Each settimeout() is a system call: once set, send and recv keep it.
    with wsfast.connect(server.url()) as ws:
        ws.send("first")
        assert ws.recv() == "first"
        counter = SyscallCountingSocket(ws.sock)
        ws.sock = counter  # type: ignore[assignment]
        for i in range(20):
            ws.send(f"message {i}")
            assert ws.recv() == f"message {i}"
        assert counter.settimeout_calls == 0


def test_recv_without_a_timeout_waits_through_its_internal_waits(server: EchoServer) -> None:
    with wsfast.connect(server.url(), close_timeout=0.05) as ws:
        ws.sock = SyscallCountingSocket(ws.sock, timeouts=3)  # type: ignore[assignment]
        ws.send("late")
        assert ws.recv() == "late"
        ws.sock = SyscallCountingSocket(ws.sock, timeouts=1)  # type: ignore[assignment]
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1)  # the caller's own timeout still ends the wait


def test_open_timeout_against_a_server_that_never_answers() -> None:
    with silent_server(handshake=False) as silent:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            wsfast.connect(silent.url(), open_timeout=0.3)
        assert time.monotonic() - started < TIMEOUT


def test_close_timeout_bounds_a_close_the_server_never_answers() -> None:
    with silent_server(handshake=True) as silent:
        ws = wsfast.connect(silent.url(), close_timeout=0.2)
        assert ws.state is wsfast.State.OPEN
        started = time.monotonic()
        ws.close(1000, "bye")
        assert time.monotonic() - started < TIMEOUT
        (conn,) = silent.wait_connections(1)
        # The server got the close frame (masked: 0x88 0x85), then the client closed TCP.
        assert read_until_eof(conn, TIMEOUT)[:2] == b"\x88\x85"


def test_connection_refused_raises_os_error() -> None:
    with pytest.raises(ConnectionRefusedError):
        wsfast.connect(f"ws://127.0.0.1:{free_port()}/", open_timeout=TIMEOUT)


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "127.0.0.1:80", "ws://"])
def test_an_invalid_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        wsfast.connect(url, open_timeout=0.5)


# --- heartbeat ---------------------------------------------------------------------------


def test_recv_pings_a_quiet_server_and_gets_on_with_the_answer(server: EchoServer) -> None:
    with wsfast.connect(server.url(), ping_interval=0.05, ping_timeout=TIMEOUT) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)  # several pings, each answered: no message, no close
        assert ws.keepalive is not None and ws.keepalive.ping_sent_at is not None
        ws.send("still there")
        assert ws.recv(timeout=TIMEOUT) == "still there"


def test_recv_gives_up_on_a_server_that_leaves_the_ping_unanswered() -> None:
    with silent_server(handshake=True) as silent:
        ws = wsfast.connect(silent.url(), ping_interval=0.1, ping_timeout=0.2)
        with pytest.raises(wsfast.ConnectionClosed) as raised:
            ws.recv(timeout=TIMEOUT)
        assert (raised.value.code, raised.value.reason) == (1011, "keepalive ping timeout")
        (conn,) = silent.wait_connections(1)
        # What the server got: one masked ping, "wsfast" (0x89, 0x80 | 6), and then EOF.
        assert read_until_eof(conn, TIMEOUT)[:2] == b"\x89\x86"
        ws.close()


def test_no_heartbeat_unless_asked(server: EchoServer) -> None:
    with wsfast.connect(server.url()) as ws:
        assert ws.keepalive is None


@pytest.mark.parametrize("options", [{"ping_interval": 0}, {"ping_timeout": -1}])
def test_connect_refuses_bad_heartbeat_arguments(server: EchoServer, options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="ping_"):
        wsfast.connect(server.url(), **options)  # type: ignore[arg-type]


def test_a_refused_connection_names_the_url() -> None:
    url = f"ws://127.0.0.1:{free_port()}/"
    with pytest.raises(ConnectionRefusedError, match=f"cannot connect to {url}"):
        wsfast.connect(url)


def test_a_name_that_does_not_resolve_names_the_url() -> None:
    with pytest.raises(socket.gaierror, match="cannot connect to ws://no-such-host.invalid/"):
        wsfast.connect("ws://no-such-host.invalid/")
