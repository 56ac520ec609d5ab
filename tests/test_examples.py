"""Every Python example of README.md and of the documentation site runs as written.

A block is a ```` ```python ```` fence in ``README.md`` or in a page under
``docs/``. How it runs is set by an HTML comment on the line just before its
fence (invisible once rendered), ``<!-- example: KIND -->``:

- no comment: a script that ends by itself, within ``TIMEOUT``, with status
  0 (and some output, if it prints). A ``wsfast serve`` (the echo on any
  path, the demo feed on ``/feed``) listens for it on a port of its own:
  every ``8765`` in the block is replaced by that port.
- ``server``: a server that runs until Ctrl-C. Its ``8765`` is replaced by
  a free port; the test waits until that port answers a WebSocket handshake,
  sends SIGINT, and wants the process gone within ``TIMEOUT`` with status 0
  (or the end of an uncaught ``KeyboardInterrupt``). A ``wsfast.Server``
  block must also have logged ``listening on ws://127.0.0.1:PORT/``.
- ``redis`` (alone, or as ``server, redis``): the block needs a Redis; a
  redis-server is started for it and every ``6379`` in the block is
  replaced by that server's port.
- ``skip: REASON``: not run (a fragment that cannot run alone); the reason
  is required. Prefer a runnable block.

Each block runs in a fresh interpreter, in a temporary directory, with the
test's environment (so ``WSFAST_PURE`` runs it on the pure-Python kernels).
"""

from __future__ import annotations

import os
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
from tests.components import redis_server
from tests.servers import serving
from tests.timeouts import TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted(page for page in (ROOT / "docs").rglob("*.md") if "_build" not in page.parts)]
FENCE = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!-- example: (server|redis|server, redis|skip: \S.*?) -->")
#: The ports the examples use; the test gives each run its own.
EXAMPLE_PORT, REDIS_PORT = "8765", "6379"


@dataclass(frozen=True)
class Block:
    """One ```` ```python ```` block of a page."""

    page: Path
    line: int
    code: str
    #: "script", "server", "redis", "server, redis" or "skip: REASON".
    kind: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    lines = text.splitlines()
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        marker = MARKER.fullmatch(lines[line - 2].strip()) if line >= 2 else None
        blocks.append(Block(page, line, match.group(1), marker.group(1) if marker else "script"))
    return blocks


BLOCKS = [block for page in PAGES for block in blocks_of(page)]


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(ROOT)) for page in PAGES])
def test_every_marker_is_understood(page: Path) -> None:
    lines = page.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if "<!-- example" in line:
            assert MARKER.fullmatch(line.strip()), f"{page.name}:{number}: unknown marker {line.strip()!r}"
            assert lines[number].startswith("```python"), f"{page.name}:{number}: a marker must precede a python block"


def test_readme_and_docs_have_examples() -> None:
    assert sum(block.page.name == "README.md" for block in BLOCKS) >= 3
    assert sum(block.page.name != "README.md" for block in BLOCKS) >= 15


LINK = re.compile(r"\]\((?!https?://|#)([^)#\s]+)")


def test_every_relative_link_of_readme_names_a_file() -> None:
    """README is a landing page: its links into docs/ and the tree must lead somewhere."""
    links = LINK.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    assert links, "README links to nothing"
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"


@pytest.fixture(scope="module")
def demo_server() -> Iterator[int]:
    """``wsfast serve``'s echo and feed, for the script blocks; yields its port."""
    with serving("--rate", "50") as port:
        yield port


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A redis-server for the blocks that need one; yields its port."""
    with redis_server(tmp_path_factory.mktemp("redis")) as redis:
        yield redis.port


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


def run_script(block: Block, code: str, directory: Path) -> None:
    try:
        run = subprocess.run(
            [sys.executable, "-c", code], cwd=directory, capture_output=True, text=True, timeout=TIMEOUT, env=_env()
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.where} did not end within {TIMEOUT} s; output: {exc.stdout!r} {exc.stderr!r}")
    assert run.returncode == 0, f"{block.where} exited with {run.returncode}:\n{run.stderr}"
    if "print(" in block.code:
        assert run.stdout.strip(), f"{block.where} prints, but printed nothing"


def answers_a_handshake(port: int) -> bool:
    try:
        with wsfast.connect(f"ws://127.0.0.1:{port}/", open_timeout=1.0, close_timeout=1.0):
            return True
    except (OSError, wsfast.InvalidHandshake):
        return False


def run_server(block: Block, code: str, port: int, directory: Path) -> None:
    err = directory / "stderr.txt"
    with open(err, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", code], cwd=directory, stdout=subprocess.DEVNULL, stderr=stderr, env=_env()
        )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not answers_a_handshake(port):
            assert process.poll() is None, f"{block.where} exited early:\n{err.read_text()}"
            assert time.monotonic() < deadline, f"{block.where} did not listen on {port} within {TIMEOUT} s"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        status = process.wait(TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(TIMEOUT)
    output = err.read_text()
    interrupted = status in (-signal.SIGINT, 1) and output.rstrip().endswith("KeyboardInterrupt")
    assert status == 0 or interrupted, f"{block.where} stopped with {status}:\n{output}"
    if "serve_forever()" in block.code:
        assert f"listening on ws://127.0.0.1:{port}/" in output, output


def _env() -> dict[str, str]:
    """The test's environment, with this checkout importable from the temporary directory."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


@pytest.mark.parametrize("block", BLOCKS, ids=[block.where for block in BLOCKS])
def test_example_runs_as_written(block: Block, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if block.kind.startswith("skip: "):
        pytest.skip(f"{block.where}: {block.kind[6:]}")
    code = block.code
    if "redis" in block.kind:
        code = code.replace(REDIS_PORT, str(request.getfixturevalue("redis_port")))
    if "server" in block.kind:
        port = free_port()
        run_server(block, code.replace(EXAMPLE_PORT, str(port)), port, tmp_path)
    else:
        run_script(block, code.replace(EXAMPLE_PORT, str(request.getfixturevalue("demo_server"))), tmp_path)
