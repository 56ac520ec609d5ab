"""Instructions per message through each library's receive path, under callgrind: load-immune.

The same streams and drivers as ``bench_protocol.py`` (one of its cases,
fed to wsfast's ``Connection`` or a peer's receiver), but counted rather than
timed: each contender runs in its own process under ``valgrind
--tool=callgrind``, once with the case's messages and once with twice as
many (the stream repeated, on one connection), and the difference divided by
the messages is its cost per message, without imports, stream building and
set-up. The machine's load does not change instruction counts.

Run: ``python benchmarks/protocol_instructions.py deflate-1KiB deflate-1KiB-text``
(cases: ``bench_protocol.CASES``' ids; ``--contenders wsfast[cy],aiohttp``;
``--count N`` messages instead of the case's).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTENDERS = ("wsfast[cy]", "wsfast[py]", "aiohttp", "websockets", "wsproto")


def drive(contender: str, case_id: str, count: int, repeat: int) -> None:
    """In the measured process: build the stream, then feed it ``repeat`` times to one receiver."""
    sys.path.insert(0, str(HERE))
    import bench_protocol

    case = dataclasses.replace(next(c for c in bench_protocol.CASES if c.id == case_id), count=count)
    reads = bench_protocol.make_stream(case).reads
    if contender.startswith("wsfast"):
        implementation = "python" if contender == "wsfast[py]" else "cython"
        make, run, *_ = bench_protocol._wsfast(implementation, case, reads * repeat)
    else:
        make, run, *_ = bench_protocol._peer_driver(contender, case, reads * repeat, importlib.import_module, None)
    received, _ = run(*make())
    assert received == count * repeat, (received, count * repeat)


def instructions(contender: str, case_id: str, count: int, repeat: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={os.path.join(tmp, 'out')}",
            sys.executable,
            __file__,
            "--as",
            contender,
            case_id,
            str(count),
            str(repeat),
        ]
        run = subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        return int(re.findall(r"Collected : (\d+)", run.stderr)[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("cases", nargs="+", help="bench_protocol case ids (deflate-1KiB, 1KiB-text, ...)")
    parser.add_argument("--contenders", default="wsfast[cy],wsfast[py],aiohttp", help=", ".join(CONTENDERS))
    parser.add_argument("--count", type=int, help="messages per stream (default: the case's)")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    import bench_protocol

    for case_id in args.cases:
        case = next(c for c in bench_protocol.CASES if c.id == case_id)
        count = args.count or case.count
        for contender in args.contenders.split(","):
            once = instructions(contender, case_id, count, 1)
            twice = instructions(contender, case_id, count, 2)
            per_message = (twice - once) / count
            print(f"{case_id} ({count} messages) {contender:<12} {per_message:10.0f} instructions/message", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--as":
        contender, case_id, count, repeat = sys.argv[2:6]
        drive(contender, case_id, int(count), int(repeat))
    else:
        main()
