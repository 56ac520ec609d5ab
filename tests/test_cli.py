"""The ``wsfast`` command line: ``info``, ``serve``'s flags, and ``serve`` run for real.

In-process tests build the server that ``serve`` builds (``create_server``)
on port 0; subprocess tests run ``python -m wsfast serve`` on a free port of
127.0.0.1 and stop it with a signal, by PID, within a bounded time.
"""

from __future__ import annotations

import http.client
import logging
import math
import os
import queue
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest

from tests.servers import serving
from tests.timeouts import TIMEOUT
from wsfast.cli import build_parser, main
from wsfast.cli.demo import FEED_HEADER, Feed, feed_message
from wsfast.handshake import Headers, Request
from wsfast.page import WORKER_HEADER, http_handler, index_html

websockets_sync = pytest.importorskip("websockets.sync.client")
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(
    port: int, path: str, *, method: str = "GET", context: ssl.SSLContext | None = None
) -> tuple[int, dict[str, str], bytes]:
    if context is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=TIMEOUT, context=context)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


# --- wsfast info and the parser -------------------------------------------------------


def test_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("wsfast ")
    assert "implementation: " in out


def test_serve_defaults() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.mode, args.workers) == ("127.0.0.1", 8765, None, 1)
    assert (args.rate, args.size, args.compression) == (20.0, 64, False)
    assert (args.subprotocol, args.origin, args.tls_cert, args.tls_key) == ([], [], None, None)


def test_serve_flags() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--host=::1",
            "--port=0",
            "--mode=feed",
            "--rate=1000.5",
            "--size=128",
            "--subprotocol=chat.v2",
            "--subprotocol=chat",
            "--tls-cert=c.pem",
            "--tls-key=k.pem",
            "--max-message-size=1024",
            "--origin=http://localhost:8765",
            "--origin=https://example.com",
            "--compression",
            "--workers=4",
        ]
    )
    assert (args.host, args.port, args.mode, args.rate, args.size) == ("::1", 0, "feed", 1000.5, 128)
    assert args.subprotocol == ["chat.v2", "chat"]
    assert args.origin == ["http://localhost:8765", "https://example.com"]
    assert (args.tls_cert, args.tls_key, args.max_message_size) == ("c.pem", "k.pem", 1024)
    assert (args.compression, args.workers) == (True, 4)
    assert build_parser().parse_args(["serve", "--no-compression"]).compression is False


def test_serve_help_lists_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc_info:
        main(["serve", "--help"])
    assert exc_info.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--host",
        "--port",
        "--mode",
        "--rate",
        "--size",
        "--subprotocol",
        "--tls-cert",
        "--tls-key",
        "--max-message-size",
        "--origin",
        "--compression",
        "--workers",
    ):
        assert flag in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required: COMMAND"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["serve", "--bogus"], "unrecognized arguments: --bogus"),
        (["serve", "--port", "x"], "'x' is not a port number"),
        (["serve", "--port", "70000"], "70000 is not a port number"),
        (["serve", "--mode", "chat"], "invalid choice: 'chat'"),
        (["serve", "--workers", "0"], "--workers: 0 is not >= 1"),
        (["serve", "--rate", "0"], "--rate: 0 is not a positive number"),
        (["serve", "--rate", "nan"], "--rate: nan is not a positive number"),
        (["serve", "--size", "8"], "--size: 8 is too small"),
        (["serve", "--max-message-size", "-1"], "--max-message-size: -1 is not >= 1"),
        (["serve", "--subprotocol", "bad name"], "'bad name' is not a valid subprotocol name"),
        (["serve", "--origin", "example.com"], "'example.com' is not an origin"),
        (["serve", "--origin", "http://example.com/path"], "is not an origin"),
        (["serve", "--tls-key", "key.pem"], "--tls-key needs --tls-cert"),
    ],
)
def test_bad_arguments_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc_info:
        main(argv)
    assert exc_info.value.code == 2
    err = capsys.readouterr().err
    command = argv[0] if argv and argv[0] in ("serve", "bench", "info") else None
    assert err.startswith(f"usage: wsfast {command} " if command else "usage: wsfast")
    assert message in err


def test_a_missing_certificate_exits_1_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.pem"
    assert main(["serve", "--port", "0", "--tls-cert", str(missing)]) == 1
    err = capsys.readouterr().err
    assert f"wsfast serve: error: cannot load the TLS certificate or key: --tls-cert {missing}: No such file" in err


def test_a_file_that_is_not_pem_exits_1_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    assert main(["serve", "--port", "0", "--tls-cert", str(cert), "--tls-key", str(key)]) == 1
    err = capsys.readouterr().err
    assert f"--tls-cert {cert} and --tls-key {key}: not a PEM certificate chain and its private key" in err


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_in_use_exits_1(workers: str, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "--workers", workers]) == 1  # before any fork
    assert f"wsfast serve: error: cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


# --- the feed and the page handler --------------------------------------------------------


def test_feed_message_layout() -> None:
    message = feed_message(7, 101.25, 64, timestamp=1700000000.5)
    assert len(message) == 64
    assert struct.unpack(">Qdd", message[:24]) == (7, 1700000000.5, 101.25)
    assert message[24:] == bytes(40)
    assert FEED_HEADER.size == 24
    assert len(feed_message(2**64 - 1, 0.0, 24)) == 24
    with pytest.raises(ValueError, match="at least 24 bytes"):
        feed_message(0, 0.0, 23)


class _Recorder:
    """Stands in for a Server: records publishes and the one pending timer."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []
        self.timer: tuple[float, Any] | None = None

    def publish(self, topic: str, data: bytes) -> int:
        self.published.append((topic, data))
        return 1

    def call_later(self, delay: float, callback: Any) -> Any:
        self.timer = (delay, callback)
        return types.SimpleNamespace(cancel=lambda: None)


def test_feed_publishes_in_sequence_and_skips_a_backlog() -> None:
    server = _Recorder()
    feed = Feed(server, rate=1000.0, size=32)  # type: ignore[arg-type]
    feed.start()
    assert server.timer is not None and server.timer[0] == 0.0
    server.timer[1]()
    assert [topic for topic, _ in server.published] == ["feed"]
    # The loop stalled for 10 s: at most 50 ms worth (50 messages) is caught up.
    feed._next -= 10.0
    server.timer[1]()
    assert len(server.published) == 1 + 50
    assert 0.0 < server.timer[0] <= 0.001 + 1e-6
    sequences = [struct.unpack(">Q", data[:8])[0] for _, data in server.published]
    assert sequences == list(range(51))
    assert all(len(data) == 32 for _, data in server.published)
    values = [struct.unpack(">d", data[16:24])[0] for _, data in server.published]
    assert all(v > 0 and math.isfinite(v) for v in values)


@pytest.mark.parametrize("rate", [0.0, -1.0, math.inf, math.nan])
def test_feed_rejects_bad_rates(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        Feed(_Recorder(), rate=rate, size=64)  # type: ignore[arg-type]


def _request(path: str, method: str = "GET") -> Request:
    return Request(method, path, "HTTP/1.1", Headers([("Host", "127.0.0.1")]))


def test_http_handler_serves_the_page_and_healthz() -> None:
    page = http_handler(_request("/?x=1"))
    assert page is not None and page.status == 200
    assert page.headers.get("Content-Type") == "text/html; charset=utf-8"
    assert page.body == index_html() and page.body.startswith(b"<!doctype html>")
    assert http_handler(_request("/index.html")) == page
    health = http_handler(_request("/healthz"))
    assert health is not None and (health.status, health.body) == (200, b"ok\n")
    assert health.headers.get(WORKER_HEADER) == str(os.getpid())
    head = http_handler(_request("/", "HEAD"))
    assert head is not None and head.body == b""
    assert head.headers.get("Content-Length") == str(len(index_html()))
    post = http_handler(_request("/healthz", "POST"))
    assert post is not None and post.status == 405
    assert http_handler(_request("/nothing-here")) is None


def test_page_has_no_external_resources() -> None:
    page = index_html().decode()
    for needle in ("http://", "https://", "//cdn", "<script src", '<link rel="stylesheet"'):
        assert needle not in page
    for element_id in (
        "state",
        "rate",
        "throughput",
        "latency",
        "feed-count",
        "feed-last",
        "chart",
        "message",
        "send",
        "send-binary",
        "close",
        "log",
    ):
        assert f'id="{element_id}"' in page


# --- serve's server, in process -----------------------------------------------------------------


def test_echo_and_feed_by_path() -> None:
    with serving("--rate", "500") as port:
        with websockets_sync.connect(f"ws://127.0.0.1:{port}/anything", open_timeout=TIMEOUT) as ws:
            ws.send("hello")
            assert ws.recv(timeout=TIMEOUT) == "hello"
            ws.send(bytes(range(256)))
            assert ws.recv(timeout=TIMEOUT) == bytes(range(256))
        with websockets_sync.connect(f"ws://127.0.0.1:{port}/feed", open_timeout=TIMEOUT) as ws:
            ws.send("not echoed")
            for _ in range(5):
                message = ws.recv(timeout=TIMEOUT)
                assert isinstance(message, bytes) and len(message) == 64


def test_mode_echo_closes_feed_clients() -> None:
    with serving("--mode", "echo") as port:
        with websockets_sync.connect(f"ws://127.0.0.1:{port}/feed", open_timeout=TIMEOUT) as ws:
            with pytest.raises(ConnectionClosed) as exc_info:
                ws.recv(timeout=TIMEOUT)
        assert exc_info.value.rcvd is not None
        assert exc_info.value.rcvd.code == 1008
        assert "--mode echo" in exc_info.value.rcvd.reason


def test_mode_feed_closes_echo_clients() -> None:
    with serving("--mode", "feed") as port:
        with websockets_sync.connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as ws:
            with pytest.raises(ConnectionClosed) as exc_info:
                ws.recv(timeout=TIMEOUT)
        assert exc_info.value.rcvd is not None and exc_info.value.rcvd.code == 1008


def test_subprotocol_origin_size_and_compression_flags() -> None:
    flags = ["--subprotocol", "b", "--subprotocol", "a", "--origin", "http://good.test", "--max-message-size", "100"]
    with serving(*flags, "--compression") as port:
        url = f"ws://127.0.0.1:{port}/"
        with websockets_sync.connect(
            url,
            subprotocols=["a", "b"],
            origin="http://good.test",
            open_timeout=TIMEOUT,  # type: ignore[list-item,arg-type]
        ) as ws:
            assert ws.subprotocol == "b"
            assert "permessage-deflate" in (ws.response.headers.get("Sec-WebSocket-Extensions") or "")
            ws.send("x" * 100)
            assert ws.recv(timeout=TIMEOUT) == "x" * 100
            ws.send("x" * 101)
            with pytest.raises(ConnectionClosed) as exc_info:
                ws.recv(timeout=TIMEOUT)
            assert exc_info.value.rcvd is not None and exc_info.value.rcvd.code == 1009
        with pytest.raises(InvalidStatus) as refused:
            websockets_sync.connect(url, origin="http://evil.test", open_timeout=TIMEOUT)  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403


# --- python -m wsfast serve, in a subprocess ---------------------------------------------------


class Serve:
    """``python -m wsfast serve FLAGS`` on a free port; stop it with :meth:`stop`."""

    def __init__(self, *flags: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        for _attempt in range(3):  # another process may take the free port first
            self.port = free_port()
            command = [sys.executable, "-m", "wsfast", "serve", "--port", str(self.port), *flags]
            self.proc = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
            )
            self._lines: queue.Queue[str | None] = queue.Queue()
            self.stderr: list[str] = []
            threading.Thread(target=self._read, daemon=True).start()
            self.banner = self.wait_for("listening on")
            if self.banner is not None:
                return
            self.kill()
            if not any("cannot listen" in line for line in self.stderr):
                break
        pytest.fail(f"wsfast serve did not start: {''.join(self.stderr)}")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, text: str) -> str | None:
        """The first stderr line containing ``text``, or ``None`` at EOF or timeout."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if line is None:
                return None
            self.stderr.append(line)
            if text in line:
                return line

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum``; return the exit status (fails after TIMEOUT)."""
        os.kill(self.proc.pid, signum)
        try:
            return self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"wsfast serve ignored signal {signum}: {''.join(self.stderr)}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)

    def __enter__(self) -> Serve:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()


def test_serve_echo_page_healthz_and_sigterm() -> None:
    with Serve("--mode", "echo") as server:
        port = server.port
        assert server.banner == (
            f"wsfast serve: listening on ws://127.0.0.1:{port} (echo) — open http://127.0.0.1:{port}/ in a browser\n"
        )
        with websockets_sync.connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as ws:
            ws.send("round trip")
            assert ws.recv(timeout=TIMEOUT) == "round trip"
            status, headers, body = http_get(port, "/")
            assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
            assert b'<canvas id="chart"' in body
            status, headers, body = http_get(port, "/healthz")
            assert (status, body) == (200, b"ok\n")
            assert headers[WORKER_HEADER.lower()] == str(server.proc.pid)
            assert http_get(port, "/nothing")[0] == 404
            # A graceful stop closes open clients with 1001 (going away).
            assert server.stop(signal.SIGTERM) == 0
            with pytest.raises(ConnectionClosed) as exc_info:
                ws.recv(timeout=TIMEOUT)
            assert exc_info.value.rcvd is not None and exc_info.value.rcvd.code == 1001
        assert server.wait_for("stopped after") is not None


def test_serve_sigint_stops_cleanly() -> None:
    with Serve() as server:
        assert "(echo + feed on /feed at 20 msg/s x 64 B)" in (server.banner or "")
        assert server.stop(signal.SIGINT) == 0
        assert server.wait_for("wsfast serve: stopped after") is not None
        assert not any("Traceback" in line for line in server.stderr)


def test_serve_feed_messages() -> None:
    with Serve("--mode", "feed", "--rate", "200", "--size", "64") as server:
        with websockets_sync.connect(f"ws://127.0.0.1:{server.port}/feed", open_timeout=TIMEOUT) as ws:
            messages = [ws.recv(timeout=TIMEOUT) for _ in range(40)]
        assert server.stop() == 0
    assert all(isinstance(m, bytes) and len(m) == 64 for m in messages)
    fields = [FEED_HEADER.unpack_from(m) for m in messages]  # type: ignore[arg-type]
    sequences = [seq for seq, _, _ in fields]
    assert sequences == list(range(sequences[0], sequences[0] + 40))
    stamps = [stamp for _, stamp, _ in fields]
    assert stamps == sorted(stamps) and abs(stamps[-1] - time.time()) < 60
    assert all(value > 0 and math.isfinite(value) for _, _, value in fields)
    assert all(m[24:] == bytes(40) for m in messages)  # type: ignore[index]


def test_serve_workers_share_the_port() -> None:
    with Serve("--workers", "2", "--mode", "echo") as server:
        assert "with 2 workers (pids " in (server.banner or "")
        pids = set()
        for _ in range(50):
            status, headers, body = http_get(server.port, "/healthz")
            assert (status, body) == (200, b"ok\n")
            pids.add(int(headers[WORKER_HEADER.lower()]))
        assert len(pids) == 2 and server.proc.pid not in pids
        for _ in range(4):  # each worker echoes
            with websockets_sync.connect(f"ws://127.0.0.1:{server.port}/", open_timeout=TIMEOUT) as ws:
                ws.send("w")
                assert ws.recv(timeout=TIMEOUT) == "w"
        assert server.stop(signal.SIGTERM) == 0
        assert server.wait_for("stopped 2 workers") is not None
    for pid in pids:  # the parent reaped them: they are gone, not zombies
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_serve_workers_stop_together_when_one_dies() -> None:
    with Serve("--workers", "2", "--mode", "echo") as server:
        pids = {int(http_get(server.port, "/healthz")[1][WORKER_HEADER.lower()]) for _ in range(50)}
        assert len(pids) == 2
        victim, survivor = sorted(pids)
        os.kill(victim, signal.SIGKILL)
        assert server.proc.wait(TIMEOUT) == 1
        assert server.wait_for(f"(pid {victim}) exited with status -9; stopping the others") is not None
    with pytest.raises(ProcessLookupError):
        os.kill(survivor, 0)


def test_serve_tls(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key_file.write_bytes(cert.private_key_pem.bytes())
    client = ssl.create_default_context()
    ca.configure_trust(client)
    with Serve("--mode", "echo", "--tls-cert", str(cert_file), "--tls-key", str(key_file)) as server:
        port = server.port
        assert f"listening on wss://127.0.0.1:{port} (echo) — open https://127.0.0.1:{port}/" in (server.banner or "")
        with websockets_sync.connect(f"wss://127.0.0.1:{port}/", ssl=client, open_timeout=TIMEOUT) as ws:
            ws.send(b"secret")
            assert ws.recv(timeout=TIMEOUT) == b"secret"
        status, _, body = http_get(port, "/healthz", context=client)
        assert (status, body) == (200, b"ok\n")
        assert server.stop() == 0


def test_the_page_says_when_the_origin_allowlist_refuses_it(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="wsfast.page"), serving("--origin", "https://app.example.com") as port:
        for _ in range(2):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
            connection.request("GET", "/")
            response = connection.getresponse()
            body = response.read().decode()
            connection.close()
            assert response.status == 200 and int(response.headers["Content-Length"]) == len(body.encode())
            origin = f"http://127.0.0.1:{port}"
            assert '<p id="origin-warning" class="card warning" role="alert">' in body
            assert f"its Origin allowlist does not include {origin}. Allow it with --origin {origin}" in body
    warnings = [record.getMessage() for record in caplog.records if record.name == "wsfast.page"]
    assert warnings == [
        f"the page was opened from {origin}, which the Origin allowlist does not include: "
        f"its WebSockets will be refused (403); allow it with --origin {origin}"
    ]


def test_the_page_has_no_warning_when_its_origin_is_allowed() -> None:
    with serving("--origin", "http://localhost") as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        connection.request("GET", "/", headers={"Host": "localhost"})
        body = connection.getresponse().read()
        connection.close()
    assert b'<p id="origin-warning" class="card warning" role="alert" hidden></p>' in body
