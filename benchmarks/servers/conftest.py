"""Print the server benchmarks as ``run.py``'s tables at the end of a pytest run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

NAME = "wsfast_server_benchmarks"


def load_runner() -> ModuleType:
    """``run.py`` as a module (loaded once, shared with ``bench_servers.py``)."""
    if NAME in sys.modules:
        return sys.modules[NAME]
    spec = importlib.util.spec_from_file_location(NAME, Path(__file__).with_name("run.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    module.COLLECTED = []
    return module


runner = load_runner()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    results = runner.COLLECTED
    if not results or config.getoption("benchmark_disable", False):
        return
    terminalreporter.write_sep("=", "server benchmarks (the time columns above are only each row's length)")
    command = "pytest " + " ".join(config.invocation_params.args)
    duration = results[0].get("seconds", runner.DEFAULT_DURATION)
    terminalreporter.write_line(
        runner.report(results, command=command, duration=round(duration, 1), warmup=runner.DEFAULT_WARMUP)
    )
