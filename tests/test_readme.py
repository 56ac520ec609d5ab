"""Every Python block of README.md runs as written: a README example that fails is a failing test.

How a block runs is set by an HTML comment on the line just before its
```` ```python ```` fence (invisible on GitHub):

- no comment: a script that ends by itself, within ``TIMEOUT``, with status
  0 (and some output, if it prints). A ``wsfast serve`` (the echo on any path, the demo feed on ``/feed``)
  listens for it on a port of its own: every ``8765`` in the block is
  replaced by that port.
- ``<!-- readme-test: server -->``: a server that runs until Ctrl-C. Its
  ``8765`` is replaced by a free port; the test waits until that port
  answers a WebSocket handshake, sends SIGINT, and wants the process gone
  within ``TIMEOUT`` with status 0 (or the end of an uncaught
  ``KeyboardInterrupt``). A ``wsfast.Server`` block must also have logged
  ``listening on ws://127.0.0.1:PORT/``.
- ``<!-- readme-test: skip: REASON -->``: not run (a fragment that cannot
  run alone); the reason is required. Prefer a runnable block.

Each block runs in a fresh interpreter, in a temporary directory, with the
test's environment (so ``WSFAST_PURE`` runs it on the pure-Python kernels).
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import wsfast
from tests.servers import serving
from tests.timeouts import TIMEOUT

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!-- readme-test: (server|skip: \S.*?) -->")
#: The port README's examples use; the test gives each run its own.
README_PORT = "8765"


@dataclass(frozen=True)
class Block:
    """One ```` ```python ```` block of README.md."""

    line: int
    code: str
    #: "script", "server" or "skip: REASON".
    kind: str


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        marker = MARKER.fullmatch(lines[line - 2].strip()) if line >= 2 else None
        blocks.append(Block(line, match.group(1), marker.group(1) if marker else "script"))
    return blocks


BLOCKS = readme_blocks()


def test_readme_has_python_examples_and_every_marker_is_understood() -> None:
    assert len(BLOCKS) >= 8
    lines = README.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if "readme-test" in line:
            assert MARKER.fullmatch(line.strip()), f"README.md:{number}: unknown marker {line.strip()!r}"
            assert lines[number].startswith("```python"), f"README.md:{number}: a marker must precede a python block"


@pytest.fixture(scope="module")
def demo_server() -> Iterator[int]:
    """``wsfast serve``'s echo and feed, for the script blocks; yields its port."""
    with serving("--rate", "50") as port:
        yield port


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


def run_script(block: Block, port: int, directory: Path) -> None:
    code = block.code.replace(README_PORT, str(port))
    try:
        run = subprocess.run(
            [sys.executable, "-c", code], cwd=directory, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"README.md:{block.line} did not end within {TIMEOUT} s; output: {exc.stdout!r} {exc.stderr!r}")
    assert run.returncode == 0, f"README.md:{block.line} exited with {run.returncode}:\n{run.stderr}"
    if "print(" in block.code:
        assert run.stdout.strip(), f"README.md:{block.line} prints, but printed nothing"


def answers_a_handshake(port: int) -> bool:
    try:
        with wsfast.connect(f"ws://127.0.0.1:{port}/", open_timeout=1.0, close_timeout=1.0):
            return True
    except (OSError, wsfast.InvalidHandshake):
        return False


def run_server(block: Block, directory: Path) -> None:
    port = free_port()
    code = block.code.replace(README_PORT, str(port))
    err = directory / "stderr.txt"
    with open(err, "w") as stderr:
        command = [sys.executable, "-c", code]
        process = subprocess.Popen(command, cwd=directory, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not answers_a_handshake(port):
            assert process.poll() is None, f"README.md:{block.line} exited early:\n{err.read_text()}"
            assert time.monotonic() < deadline, f"README.md:{block.line} did not listen on {port} within {TIMEOUT} s"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        status = process.wait(TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(TIMEOUT)
    output = err.read_text()
    interrupted = status in (-signal.SIGINT, 1) and output.rstrip().endswith("KeyboardInterrupt")
    assert status == 0 or interrupted, f"README.md:{block.line} stopped with {status}:\n{output}"
    if "serve_forever()" in block.code:
        assert f"listening on ws://127.0.0.1:{port}/" in output, output


@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{block.line}" for block in BLOCKS])
def test_readme_example_runs_as_written(block: Block, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if block.kind.startswith("skip: "):
        pytest.skip(f"README.md:{block.line}: {block.kind[6:]}")
    if block.kind == "server":
        run_server(block, tmp_path)
    else:
        run_script(block, request.getfixturevalue("demo_server"), tmp_path)
