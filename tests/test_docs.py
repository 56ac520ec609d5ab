"""Every code sample of the documentation site runs as written.

Each fenced ``python`` block of a page under ``docs/`` is a whole program: it
is run in a fresh interpreter, in an empty directory, bounded in time, and
must exit 0. A page that needs a block not to run cannot have one: the docs
show only what works.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.timeouts import TIMEOUT

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def samples() -> list[tuple[str, str]]:
    """``(id, code)`` for every Python block of every page, in page order."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        if "_build" in page.parts:
            continue
        for number, match in enumerate(BLOCK.finditer(page.read_text()), 1):
            found.append((f"{page.relative_to(DOCS)}#{number}", match.group(1)))
    return found


SAMPLES = samples()


def test_the_docs_have_samples() -> None:
    assert len(SAMPLES) >= 10


@pytest.mark.parametrize("code", [code for _, code in SAMPLES], ids=[name for name, _ in SAMPLES])
def test_sample_runs(code: str, tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(DOCS.parent), os.environ.get("PYTHONPATH")])))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3 * TIMEOUT
    )
    assert result.returncode == 0, result.stderr[-4000:]


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
        [sys.executable, str(DOCS.parent / "benchmarks" / "plot.py"), str(results), "--out", str(out)],
        capture_output=True, text=True, timeout=3 * TIMEOUT,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    for name in ("server-cpu.png", "echo-throughput.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
