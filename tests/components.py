"""Real components for the scale-out tests: redis-server, nginx, ``wsfast serve`` nodes.

Each is started on 127.0.0.1, on a port of its own, with its files in a
temporary directory, and stopped by PID whatever happens. A component that is
not installed skips the test locally and fails it when ``CI`` or
``WSFAST_REQUIRE_PEERS`` is set (CI installs them all).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.adapters import REPO, REQUIRED
from tests.timeouts import TIMEOUT

__all__ = ["EXAMPLES", "Node", "Redis", "free_port", "nginx", "redis_server", "require_program", "stop", "wsfast_node"]

#: The deployment files the scaling guide (docs/guides/scaling.md) shows, used as they are by these tests.
EXAMPLES = REPO / "examples" / "scaling-out"


def require_program(name: str) -> str:
    """The path of the program ``name``; skip the test without it, fail it in CI."""
    path = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None
    )
    if path is None:
        message = f"{name} is not installed"
        if REQUIRED:
            pytest.fail(f"{message}; it is required when CI is set", pytrace=False)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = TIMEOUT) -> None:
    """Wait until 127.0.0.1:``port`` accepts connections (or ``process`` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{process.args!r} exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop ``process`` by its PID: ``sig``, then SIGKILL if it lingers."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)
        try:
            process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(TIMEOUT)


@dataclass
class Redis:
    """A running redis-server: its URL, and how to stop and start it again."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # The guide's command line, word for word; the script execs redis-server,
        # so the PID is the server's.
        env = {**os.environ, "PORT": str(self.port), "DIR": str(self.directory)}
        self.process = subprocess.Popen(
            ["sh", str(EXAMPLES / "redis.sh")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        stop(self.process)

    def client(self) -> object:
        """A redis-py client, to look at what the nodes did."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=TIMEOUT)


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[Redis]:
    """A redis-server on a free port with its files in ``directory``, stopped by PID."""
    require_program("redis-server")
    directory.mkdir(parents=True, exist_ok=True)
    server = Redis(free_port(), directory, None)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Node:
    """A ``wsfast serve`` process."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str = "/feed") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


@contextlib.contextmanager
def wsfast_node(directory: Path, redis_url: str, *args: str, port: int | None = None) -> Iterator[Node]:
    """A node as the guide's systemd unit (examples/scaling-out/wsfast@.service)
    starts it, on a free port and ``redis_url``, with ``args`` added; its log
    goes to ``directory``; stopped by PID."""
    port = free_port() if port is None else port
    log = directory / f"node-{port}.log"
    exec_start = next(
        line.partition("=")[2]
        for line in (EXAMPLES / "wsfast@.service").read_text().splitlines()
        if line.startswith("ExecStart=")
    )
    argv = shlex.split(exec_start.replace("%i", str(port)).replace("redis://127.0.0.1:6379/0", redis_url))
    assert argv[:3] == ["/usr/bin/env", "wsfast", "serve"], argv
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "wsfast", *argv[2:], "-v", *args], stdout=out, stderr=subprocess.STDOUT
        )
    node = Node(port, process, log)
    try:
        wait_for_port(port, process)
        yield node
    finally:
        stop(process)


@contextlib.contextmanager
def nginx(directory: Path, upstreams: list[int]) -> Iterator[int]:
    """nginx on a free port in front of ``upstreams``, with the guide's config
    (examples/scaling-out/nginx.conf); yields its port."""
    program = require_program("nginx")
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    config = (EXAMPLES / "nginx.conf").read_text()
    servers = "\n".join(f"        server 127.0.0.1:{upstream};" for upstream in upstreams)
    config = config.replace(
        "        server 127.0.0.1:8001;\n        server 127.0.0.1:8002;\n        server 127.0.0.1:8003;", servers
    )
    config = config.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{port};")
    config = config.replace("/var/log/nginx", str(directory)).replace("/run/nginx", str(directory))
    (directory / "nginx.conf").write_text(config)
    process = subprocess.Popen(
        [program, "-p", str(directory), "-c", "nginx.conf", "-g", f"daemon off; pid {directory}/nginx.pid;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, process)
        yield port
    finally:
        stop(process, signal.SIGQUIT)
