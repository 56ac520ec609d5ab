"""Run a fuzz target of ``tests/fuzz/targets.py`` under atheris and report.

Usage::

    python scripts/fuzz.py TARGET --runs N [--jobs J] [--timeout S] [--work DIR]

Each of the J workers is its own process running libFuzzer for N/J inputs,
seeded from ``tests/fuzz/corpus/TARGET`` (read only) and sharing the working
corpus in DIR (a temporary directory unless given). wsfast's Python modules
are instrumented for coverage; the Cython twin runs uninstrumented. A worker
stops at its first crash and leaves the input in DIR/artifacts. At the end
the script prints one line::

    TARGET: 10000 inputs run, 0 crashes, 0 hangs, 0 twin disagreements

where a hang is an input that ran longer than S seconds and a twin
disagreement a crash whose input raises ``TwinDisagreement`` when replayed.
A worker that dies without libFuzzer's final report counts as a crash, its
log standing for the input.
Ctrl-C (SIGINT to the workers) ends the run early with the same report.
The exit status is 1 when anything was found, else 0.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "fuzz" / "corpus"
_EXECUTED = re.compile(rb"stat::number_of_executed_units: (\d+)")
_PROGRESS = re.compile(rb"^#(\d+)\s", re.MULTILINE)


@dataclass
class Report:
    """What a fuzzing run found."""

    target: str
    inputs: int
    crashes: list[Path]
    hangs: list[Path]
    disagreements: list[Path]

    def __str__(self) -> str:
        return (
            f"{self.target}: {self.inputs} inputs run, {len(self.crashes)} crashes, "
            f"{len(self.hangs)} hangs, {len(self.disagreements)} twin disagreements"
        )


def _worker(target: str, libfuzzer_args: list[str]) -> None:
    """Fuzz ``target`` in this process; libFuzzer exits it when done."""
    import atheris

    sys.path.insert(0, str(REPO))
    with atheris.instrument_imports(include=["wsfast"]):
        from tests.fuzz.targets import TARGETS
    atheris.Setup([sys.argv[0], *libfuzzer_args], TARGETS[target])
    atheris.Fuzz()


def _replay_disagrees(target: str, artifact: Path) -> bool:
    """Whether ``artifact`` raises ``TwinDisagreement`` when replayed in a fresh process."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from tests.fuzz.targets import TARGETS, TwinDisagreement\n"
        "try: TARGETS[sys.argv[2]](open(sys.argv[3], 'rb').read())\n"
        "except TwinDisagreement: sys.exit(3)\n"
        "except BaseException: pass"
    )
    return subprocess.call([sys.executable, "-c", code, str(REPO), target, str(artifact)]) == 3


def run(target: str, runs: int, *, jobs: int = 1, timeout: int = 10, work: Path, max_len: int = 4096) -> Report:
    """Fuzz ``target`` for ``runs`` inputs in ``jobs`` processes; see the module docstring.

    Raises:
        ValueError: for an unknown target or a count below 1.
    """
    if not (CORPUS / target).is_dir():
        known = ", ".join(sorted(path.name for path in CORPUS.iterdir()))
        raise ValueError(f"unknown target {target!r}: choose from {known}")
    if runs < 1 or jobs < 1 or timeout < 1:
        raise ValueError(f"runs, jobs and timeout must be >= 1, got {runs}, {jobs}, {timeout}")
    corpus = work / "corpus"
    artifacts = work / "artifacts"
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    workers = []
    for index in range(jobs):
        share = runs // jobs + (index < runs % jobs)
        args = [
            f"-runs={share}",
            f"-timeout={timeout}",
            f"-max_len={max_len}",
            f"-artifact_prefix={artifacts}/",
            "-print_final_stats=1",
            str(corpus),
            str(CORPUS / target),
        ]
        log = (work / f"worker-{index}.log").open("wb")
        command = [sys.executable, __file__, "--worker", target, *args]
        workers.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log))
    inputs = 0
    died = []
    for process, log in workers:
        try:
            process.wait()
        except KeyboardInterrupt:  # Ctrl-C stops the workers too: count what they ran
            process.wait()
        log.close()
        output = Path(log.name).read_bytes()
        executed = _EXECUTED.findall(output)
        if not executed:
            # Killed before libFuzzer's final report (and maybe its artifact):
            # a crash, counted up to its last progress line.
            died.append(Path(log.name))
            executed = _PROGRESS.findall(output)[-1:]
        inputs += sum(int(count) for count in executed)
    found = sorted(artifacts.iterdir())
    hangs = [path for path in found if path.name.startswith("timeout-")]
    crashes = [path for path in found if path not in hangs]
    disagreements = [path for path in crashes if _replay_disagrees(target, path)]
    crashes = [path for path in crashes if path not in disagreements] + died
    return Report(target, inputs, crashes, hangs, disagreements)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, fuzz, print the report; 1 if anything was found."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        _worker(argv[1], argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "target", help="a target of tests/fuzz/targets.py: " + ", ".join(sorted(p.name for p in CORPUS.iterdir()))
    )
    parser.add_argument("--runs", type=int, required=True, help="inputs to run in all")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take before it is a hang")
    parser.add_argument("--work", type=Path, help="the working corpus and artifacts (default: a temporary directory)")
    options = parser.parse_args(argv)
    work = options.work or Path(tempfile.mkdtemp(prefix=f"wsfast-fuzz-{options.target}-"))
    try:
        report = run(options.target, options.runs, jobs=options.jobs, timeout=options.timeout, work=work)
    except ValueError as exc:
        parser.error(str(exc))
    print(report)
    for label, paths in (
        ("crash", report.crashes),
        ("hang", report.hangs),
        ("twin disagreement", report.disagreements),
    ):
        for path in paths:
            print(f"  {label}: {path}")
    print(f"  logs and corpus: {work}")
    return 1 if report.crashes or report.hangs or report.disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
