"""uvicorn in a subprocess on a free 127.0.0.1 port, for the ASGI tests and benchmarks."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.timeouts import TIMEOUT

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port nothing listens on now (the OS may hand it out again: use it at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def uvicorn_subprocess(app: str, *flags: str) -> Iterator[int]:
    """Run ``uvicorn APP FLAGS`` from the repository root; yield its port once it accepts.

    The process is stopped by its own handle whatever happens.
    """
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--lifespan", "off", "--log-level", "warning", *flags]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn exited {process.returncode}: {process.communicate()[0]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"uvicorn did not listen on {port} within {TIMEOUT} seconds")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=TIMEOUT)
