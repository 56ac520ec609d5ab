"""Run the test suite on both implementations: compiled, then pure Python.

Usage: ``python scripts/test.py [pytest arguments]``. Both runs always happen,
so a failure in the compiled run never hides the pure-Python one; the exit
status is non-zero if either failed. This is README's test command and the
one ``.ci/run`` uses.
"""

from __future__ import annotations

import os
import subprocess
import sys

RUNS = (("compiled", None), ("pure Python", "1"))  # (label, WSFAST_PURE)


def main(argv: list[str]) -> int:
    """Run pytest once per implementation with ``argv``; return the first failure's status, else 0."""
    statuses = []
    for label, pure in RUNS:
        env = {name: value for name, value in os.environ.items() if name != "WSFAST_PURE"}
        if pure:
            env["WSFAST_PURE"] = pure
        print(f"== tests, {label}", flush=True)
        statuses.append(subprocess.call([sys.executable, "-m", "pytest", *argv], env=env))
    for (label, _), status in zip(RUNS, statuses, strict=True):
        print(f"== {label}: " + ("passed" if status == 0 else f"FAILED (pytest exit status {status})"))
    return next((status for status in statuses if status), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
