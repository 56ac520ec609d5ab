"""``wsfast bench``: the load generator, run in-process against a wsfast server on loopback."""

from __future__ import annotations

import array
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.timeouts import TIMEOUT
from wsfast.bench import main as run_bench
from wsfast.bench.stats import cpu_busy_seconds, percentiles, process_cpu_seconds
from wsfast.server import Handler, Server, ServerConnection


class BenchHandler(Handler):
    """Echo; a text ``"burst N"`` broadcasts N timestamped binary messages; on ``/close``, close."""

    def __init__(self) -> None:
        self.server: Server | None = None

    def on_message(self, ws: ServerConnection, message: str | bytes) -> None:
        if type(message) is str and message.startswith("burst "):
            assert self.server is not None
            for _ in range(int(message[6:])):
                self.server.broadcast(time.time_ns().to_bytes(8, "big") + bytes(56))
        elif ws.request is not None and ws.request.path == "/close":
            ws.close(1011, "asked to")
        else:
            ws.send(message)


@pytest.fixture
def server() -> Iterator[Server]:
    handler = BenchHandler()
    srv = Server(handler, port=0, ping_interval=None)
    handler.server = srv
    thread = srv.start()
    try:
        yield srv
    finally:
        srv.shutdown(timeout=1.0)
        thread.join(TIMEOUT)
        assert not thread.is_alive()


def url(srv: Server) -> str:
    return f"ws://127.0.0.1:{srv.port}/"


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    status = run_bench([*args, "--json", "--quiet", "--timeout", str(TIMEOUT)])
    out = capsys.readouterr().out
    return status, json.loads(out)


# --- modes -----------------------------------------------------------------------------------


def test_echo_count_is_exact(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    status, result = run_json(capsys, url(server), "--count", "101", "--connections", "4")
    assert status == 0
    assert result["mode"] == "echo"
    assert result["messages"] == result["sent"] == result["latency_samples"] == 101
    assert result["bytes"] == 101 * 32
    assert result["errors"] == 0 and result["connected"] == 4
    latency = result["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert result["generator_cpu"] >= 0


def test_pipeline_count_is_exact(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    status, result = run_json(
        capsys, url(server), "--mode", "pipeline", "--depth", "8", "--count", "1000", "-c", "3", "--size", "1024"
    )
    assert status == 0
    assert result["messages"] == result["sent"] == 1000
    assert result["bytes"] == 1000 * 1024
    assert result["depth"] == 8


def test_pipeline_deeper_than_the_frame_pool(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    status, result = run_json(capsys, url(server), "--mode", "pipeline", "--depth", "300", "--count", "900", "-c", "1")
    assert status == 0
    assert result["messages"] == 900


def test_text_echo(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    status, result = run_json(capsys, url(server), "--text", "--count", "50", "-c", "2", "--size", "100")
    assert status == 0
    assert result["messages"] == 50 and result["text"] is True


def test_feed_with_trigger_counts_exactly(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    status, result = run_json(
        capsys,
        url(server),
        "--mode", "feed", "--timestamped", "--trigger", "burst 5", "--trigger-every", "5",
        "--count", "60", "-c", "4", "--depth", "2",
    )  # fmt: skip
    assert status == 0
    assert result["messages"] == result["latency_samples"] == 60
    assert result["bytes"] == 60 * 64
    assert 0 <= result["latency_ms"]["p50"] < TIMEOUT * 1000


def test_duration_with_warmup_and_rate(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    status, result = run_json(capsys, url(server), "--duration", "0.3", "--warmup", "0.1", "--rate", "200", "-c", "2")
    assert status == 0
    assert 0.25 < result["seconds"] < 1.0
    # 200 messages/s per connection, 2 connections, 0.3 s: about 120.
    assert 0 < result["messages"] <= 2 * 200 * 0.5


def test_server_pid_reports_server_cpu(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    if not os.path.exists(f"/proc/{os.getpid()}/stat"):
        pytest.skip("needs Linux /proc")
    status, result = run_json(capsys, url(server), "--count", "200", "--server-pid", str(os.getpid()))
    assert status == 0
    assert result["server_cpu_s"] is not None and result["server_cpu_s"] >= 0
    assert result["server_cpu_us_per_message"] is not None


def test_human_output_and_progress(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    status = run_bench([url(server), "--duration", "1.2", "-c", "2"])
    captured = capsys.readouterr()
    assert status == 0
    assert "messages/s" in captured.out and "p99 ms" in captured.out and "gen CPU" in captured.out
    assert "msg/s" in captured.err  # the progress line
    assert "\r" not in captured.err  # not a terminal: plain lines


def test_progress_is_rewritten_in_place_on_a_terminal(
    server: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert run_bench([url(server), "--duration", "1.2", "-c", "2"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("\r") and "msg/s" in err and err.endswith("\n")


# --- errors ------------------------------------------------------------------------------------


def test_connection_refused_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert run_bench([f"ws://127.0.0.1:{port}/", "--count", "1", "--quiet"]) == 1
    assert "could be opened" in capsys.readouterr().err


def test_not_a_websocket_server_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        assert run_bench([f"ws://127.0.0.1:{port}/", "--count", "1", "-c", "1", "--quiet"]) == 1
    finally:
        thread.join(TIMEOUT)
        listener.close()
    assert "404" in capsys.readouterr().err


def test_server_closing_is_an_error(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    status, result = run_json(capsys, url(server) + "close", "--count", "10", "-c", "2")
    assert status == 1
    assert result["errors"] == 2
    assert "1011" in result["error_samples"][0]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["http://127.0.0.1:1/"],
        ["ws://127.0.0.1:1/", "--connections", "0"],
        ["ws://127.0.0.1:1/", "--duration", "1", "--count", "5"],
        ["ws://127.0.0.1:1/", "--duration", "-1"],
        ["ws://127.0.0.1:1/", "--mode", "echo", "--depth", "3"],
        ["ws://127.0.0.1:1/", "--timestamped"],
        ["ws://127.0.0.1:1/", "--trigger", "go"],
        ["ws://127.0.0.1:1/", "--mode", "feed", "--rate", "5"],
        ["ws://127.0.0.1:1/", "--size", "-1"],
        ["ws://127.0.0.1:1/", "--mode", "bogus"],
        ["ws://127.0.0.1:1/", "--count", "5", "--warmup", "1"],
    ],
    ids=lambda argv: " ".join(argv) or "no-url",
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        run_bench(argv)
    assert info.value.code == 2


# --- helpers ---------------------------------------------------------------------------------------


def test_percentiles_nearest_rank() -> None:
    samples = array.array("q", range(1, 101))
    result = percentiles(samples, 1.0)
    assert result["p50"] == 50 and result["p90"] == 90 and result["p99"] == 99 and result["max"] == 100
    assert result["mean"] == 50.5
    assert percentiles(array.array("q"), 1.0) == {}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_process_cpu_seconds() -> None:
    before = process_cpu_seconds(os.getpid())
    sum(i * i for i in range(200_000))
    assert process_cpu_seconds(os.getpid()) > before
    busy = cpu_busy_seconds()
    assert busy is not None and len(busy) == os.cpu_count()


def test_python_m_entry_point_help() -> None:
    import subprocess

    completed = subprocess.run(
        [sys.executable, "-m", "wsfast.bench", "--help"], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert completed.returncode == 0
    assert "--connections" in completed.stdout
