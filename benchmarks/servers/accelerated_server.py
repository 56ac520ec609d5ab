"""Run another benchmark server of this directory after ``wsfast.accelerate()``.

    WSFAST_BENCH_SERVER="uvicorn_server.py --ws wsproto" WSFAST_BENCH_ACCELERATE=wsproto \\
        python benchmarks/servers/accelerated_server.py --port 0 --mode echo

``WSFAST_BENCH_SERVER``: the server script and its own arguments;
``WSFAST_BENCH_ACCELERATE``: comma-separated names for ``wsfast.accelerate()``,
empty for none (the baseline runs through this launcher too, so both rows
pay the same start-up). ``accelerated.py`` sets both.
"""

from __future__ import annotations

import os
import runpy
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the checkout's wsfast
sys.path.insert(0, str(HERE))  # the servers' _common

import wsfast  # noqa: E402


def main() -> None:
    script, *arguments = shlex.split(os.environ["WSFAST_BENCH_SERVER"])
    names = [name for name in os.environ.get("WSFAST_BENCH_ACCELERATE", "").split(",") if name]
    if names:
        wsfast.accelerate(*names)
    sys.argv = [str(HERE / script), *arguments, *sys.argv[1:]]
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
