"""``benchmarks/plot.py`` draws the documentation's benchmark figures from a run's JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.timeouts import TIMEOUT

REPO = Path(__file__).resolve().parents[1]


def test_the_benchmark_figures_are_drawn_from_a_run(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    run = {
        "command": "python benchmarks/servers/run.py --quick",
        "machine": "test machine",
        "versions": "test versions",
        "results": [
            {"label": label, "scenario": scenario, "messages_per_s": rate, "server_cpu_us_per_message": cpu}
            for label, factor in (("wsfast", 1.0), ("picows (uvloop)", 1.2))
            for scenario, rate, cpu in (
                ("echo-1-32", 40_000 / factor, 20 * factor),
                ("echo-16-32", 90_000 / factor, 9 * factor),
                ("broadcast-100", 300_000 / factor, 2 * factor),
            )
        ],
    }
    results = tmp_path / "results.json"
    results.write_text(json.dumps(run))
    out = tmp_path / "figures"
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "plot.py"), str(results), "--out", str(out)],
        capture_output=True, text=True, timeout=3 * TIMEOUT,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    for name in ("server-cpu.png", "echo-throughput.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
