"""Run uvicorn's own WebSocket tests with ``wsfast.asgi:UvicornProtocol`` added.

uvicorn's ``tests/protocols/test_websocket.py`` runs every case over the
protocol classes of its ``ws_protocol_cls`` fixture. This script fetches the
sdist of the installed uvicorn (``pip download``), adds wsfast's class to that
fixture (the only change to uvicorn's files), runs the file and prints the
outcome counts per protocol class.

Usage: ``python scripts/uvicorn_suite.py [--source DIR] [pytest arguments]``;
exits non-zero when a wsfast case fails. ``--source`` takes an unpacked
uvicorn source tree instead of downloading one.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import uvicorn

WSFAST_PARAM = '        pytest.param("wsfast.asgi:UvicornProtocol", id="wsfast"),\n'
ANCHOR = 'id="websockets-sansio"\n        ),\n'


def fetch_source(directory: Path) -> Path:
    """Download and unpack the sdist of the installed uvicorn; return its root."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
        + [f"uvicorn=={uvicorn.__version__}", "-d", str(directory)],
        check=True,
    )
    (archive,) = directory.glob("uvicorn-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(directory, filter="data")
    return directory / f"uvicorn-{uvicorn.__version__}"


def add_wsfast(source: Path) -> None:
    """Add wsfast's class to the ``ws_protocol_cls`` fixture of uvicorn's conftest."""
    conftest = source / "tests" / "conftest.py"
    text = conftest.read_text()
    if WSFAST_PARAM not in text:
        if ANCHOR not in text:
            raise SystemExit(f"the ws_protocol_cls fixture of {conftest} changed: update ANCHOR")
        conftest.write_text(text.replace(ANCHOR, ANCHOR + WSFAST_PARAM))


def outcomes(report: Path) -> dict[str, collections.Counter[str]]:
    """Outcome counts per protocol id, from a JUnit XML report."""
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for case in ElementTree.parse(report).iter("testcase"):
        name = case.get("name", "")
        protocol = next((p for p in ("wsfast", "websockets-sansio", "wsproto") if p in name), "other")
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        counts[protocol][kinds[0] if kinds else "passed"] += 1
    return counts


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="an unpacked uvicorn source tree")
    options, pytest_args = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="uvicorn-suite-") as scratch:
        source = options.source or fetch_source(Path(scratch))
        add_wsfast(source)
        report = Path(scratch) / "report.xml"
        # uvicorn's addopts ask for pytest-xdist; run in one process instead.
        command = [sys.executable, "-m", "pytest", "tests/protocols/test_websocket.py", "-o", "addopts=", "-q"]
        command += ["-p", "no:cacheprovider", f"--junitxml={report}", *pytest_args]
        subprocess.run(command, cwd=source)
        counts = outcomes(report)
    for protocol, counter in sorted(counts.items()):
        summary = ", ".join(f"{counter[kind]} {kind}" for kind in ("passed", "failure", "error", "skipped"))
        print(f"{protocol:18} {summary}")
    wsfast = counts.get("wsfast", collections.Counter())
    return 1 if wsfast["failure"] or wsfast["error"] or not wsfast["passed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
