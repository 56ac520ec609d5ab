"""Helpers for the asyncio and ASGI tests: both event loops, leak checks, Node's ``ws``.

Every coroutine test runs under asyncio's debug mode, on the standard loop
and on uvloop, and fails if it leaves a task behind; the test modules turn
warnings into errors, so an unclosed transport fails its test too.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from tests.adapters import REQUIRED
from tests.timeouts import TIMEOUT

PEERS_DIR = Path(__file__).resolve().parent / "peers"
LOOPS = ["asyncio", "uvloop"]

Runner = Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any]


def _missing(why: str) -> None:
    if REQUIRED:
        pytest.fail(f"{why} (required when CI or WSFAST_REQUIRE_PEERS is set)", pytrace=False)
    pytest.skip(why)


def make_runner(kind: str) -> Runner:
    """A function running ``main()`` to completion on a fresh loop of ``kind``, in debug mode.

    It fails the test when ``main`` takes over ``3 * TIMEOUT`` or leaves a task running.
    """
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            _missing("uvloop is not installed")
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop

    def run(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        async def bounded() -> Any:
            result = await asyncio.wait_for(main(), 3 * TIMEOUT)
            current = asyncio.current_task()
            leaked = [task for task in asyncio.all_tasks() if task is not current]
            assert not leaked, f"tasks left running: {leaked}"
            return result

        loop = factory()
        loop.set_debug(True)
        try:
            return loop.run_until_complete(bounded())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            gc.collect()  # an unclosed transport warns now, inside the test

    return run


async def close_of(ws: Any) -> tuple[int, str]:
    """The ``(code, reason)`` of the ``ConnectionClosed`` that the next ``ws.recv()`` raises."""
    from wsfast import ConnectionClosed

    with pytest.raises(ConnectionClosed) as closed:
        await ws.recv(timeout=TIMEOUT)
    return closed.value.code, closed.value.reason


def run_node_client(scenario: dict[str, Any]) -> dict[str, Any]:
    """Run ``tests/peers/ws_client.mjs`` with ``scenario``; return its report."""
    if shutil.which("node") is None:
        _missing("node is not installed")
    if not (PEERS_DIR / "node_modules" / "ws" / "package.json").exists():
        _missing("Node's ws is not installed: run `npm install --prefix tests/peers`")
    scenario = {"timeoutMs": int(TIMEOUT * 1000), **scenario}
    process = subprocess.run(
        ["node", str(PEERS_DIR / "ws_client.mjs"), json.dumps(scenario)],
        capture_output=True,
        text=True,
        timeout=3 * TIMEOUT,
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    assert process.returncode == 0, f"node exited {process.returncode}: {process.stdout} {process.stderr}"
    report: dict[str, Any] = json.loads(process.stdout)
    assert report["error"] is None, report["error"]
    return report
