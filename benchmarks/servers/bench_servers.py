"""Server benchmarks under pytest: the rows of ``run.py``, one ``benchmark.pedantic`` round each.

    pytest benchmarks/servers --benchmark-only        # the full matrix (a few minutes)
    pytest benchmarks/servers --benchmark-disable     # smoke: each server once, 0.5 s

Each row starts its server in its own process pinned to CPU 0 and runs
``wsfast bench`` pinned to CPU 1 (see ``run.py``). The timed call is the
generator's run, so pytest-benchmark's time column is only the row's length;
the numbers are in ``extra_info``: ``messages_per_s``, ``mb_per_s``,
``latency_ms``, ``server_cpu_us_per_message``, ``generator_cpu``,
``other_load`` (``--benchmark-json`` keeps them; ``python
benchmarks/servers/run.py`` prints them as tables).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def _load_runner() -> ModuleType:
    """``run.py`` as a module, shared with this directory's conftest (which loads it first)."""
    name = "wsfast_server_benchmarks"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("run.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
        module.COLLECTED = []
    return sys.modules[name]


runner = _load_runner()
REQUIRE_PEERS = os.environ.get("WSFAST_REQUIRE_PEERS") == "1"
IMPORTS = {"picows": ("picows", "uvloop"), "aiohttp": ("aiohttp", "uvloop"), "websockets": ("websockets",)}


def _smoke(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_disable", False))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "row" in metafunc.fixturenames:
        rows = runner.smoke_rows() if _smoke(metafunc.config) else runner.full_rows()
        metafunc.parametrize("row", rows, ids=[row.id for row in rows])


def _require(server: str) -> None:
    for module in IMPORTS.get(server, ()):
        try:
            importlib.import_module(module)
        except ImportError:
            if REQUIRE_PEERS:
                raise
            pytest.skip(f"{module} is not installed")


def bench_server(benchmark: Any, row: Any, request: pytest.FixtureRequest) -> None:
    """One server in one scenario: messages/s, latency and server CPU per message in extra_info."""
    _require(row.server.name)
    smoke = _smoke(request.config)
    duration = 0.5 if smoke else runner.DEFAULT_DURATION
    warmup = 0.2 if smoke else runner.DEFAULT_WARMUP
    benchmark.group = row.scenario.title
    benchmark.name = row.server.label
    with runner.server(row.server, row.scenario.mode) as running:
        result = benchmark.pedantic(
            runner.run_bench,
            args=(running, row.scenario),
            kwargs={"duration": duration, "warmup": warmup},
            rounds=1,
            iterations=1,
        )
    result = runner.annotate(row, result)
    runner.COLLECTED.append(result)
    for key in (
        "label",
        "scenario",
        "messages",
        "messages_per_s",
        "mb_per_s",
        "latency_ms",
        "server_cpu_us_per_message",
        "server_cpu",
        "generator_cpu",
        "other_load",
        "errors",
        "command",
    ):
        benchmark.extra_info[key] = result.get(key)
    assert result["errors"] == 0, result["error_samples"]
    assert result["messages"] > 0
