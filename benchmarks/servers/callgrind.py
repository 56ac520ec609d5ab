"""User-space instructions per message of each server, under valgrind's callgrind: what load cannot disturb.

    python benchmarks/servers/callgrind.py --servers wsfast,picows --scenarios echo-1-32,echo-16-32,trickle-100
    python benchmarks/servers/callgrind.py --count 20000 --scenarios echo-256-1024

Each server script of ``run.py`` starts under ``valgrind --tool=callgrind``;
``wsfast bench`` (outside valgrind) then runs ``run.py``'s scenario for a
fixed number of messages twice, N and then 2N, each on new connections, and
callgrind dumps its counters after each run. The instructions per message
are the difference between the two runs divided by N, so the handshakes and
the start-up cancel out. A message is what the generator receives: a round
trip in echo, a delivery to one client in broadcast.

Callgrind counts the server's user-space instructions only: the kernel's
work per message (the system calls, level between servers whose calls per
message are level, see ``run.py --syscalls``) is not in these figures, and
the instructions of C code and of the interpreter weigh the same. The run
takes minutes (the server is about 50x slower under valgrind), not the
seconds of ``run.py``; its figures do not move with the machine's load.
"""

from __future__ import annotations

import argparse
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import run

DEFAULT_COUNT = 10_000
SCENARIOS = ("echo-1-32", "echo-16-32", "echo-256-1024", "trickle-100", "broadcast-100")


def instructions_per_message(
    script: Path, scenario: run.Scenario, count: int, env: Mapping[str, str] | None = None
) -> float:
    """User-space instructions per message of the server ``script`` runs, under ``scenario`` (module docstring)."""
    env = dict(env if env is not None else run._env())
    count = max(count - count % scenario.connections, scenario.connections)  # spread evenly over the connections
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "callgrind.out")
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, str(script)]
        process = subprocess.Popen(
            [*command, "--port", "0", "--mode", scenario.mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line.startswith("LISTENING"):
                raise RuntimeError(f"{script.name} did not start under callgrind: {line!r}")
            url = f"ws://127.0.0.1:{line.split()[1]}/"
            # Dump 1 is the start-up, 2 the run of `count` messages, 3 the run of twice as many.
            _dump(process.pid)
            for messages in (count, 2 * count):
                bench = [sys.executable, "-m", "wsfast.bench", url, *scenario.bench_args(), "--count", str(messages)]
                subprocess.run([*bench, "--timeout", "300", "--quiet"], env=env, check=True, capture_output=True)
                _dump(process.pid)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        time.sleep(0.1)
        dumps = sorted(Path(tmp).glob("callgrind.out.*"), key=lambda path: int(path.suffix[1:]))
        if len(dumps) < 3:
            raise RuntimeError(f"callgrind wrote {len(dumps)} dumps of the 3 expected")
        once, twice = _totals(dumps[1]), _totals(dumps[2])
    return (twice - once) / count


def _dump(pid: int) -> None:
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)


def _totals(path: Path) -> int:
    """The instructions a callgrind dump counted (each dump counts from the one before)."""
    match = re.search(r"^(?:summary|totals): (\d+)", path.read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--servers", default="wsfast,picows", help=f"comma-separated, from {','.join(run.SERVERS)}")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, from {','.join(run.SCENARIOS)}"
    )
    parser.add_argument(
        "--count", type=int, default=DEFAULT_COUNT, help="N: messages of the first run (default %(default)s)"
    )
    args = parser.parse_args(argv)
    servers, scenarios = args.servers.split(","), args.scenarios.split(",")
    for name, known, kind in ((servers, run.SERVERS, "server"), (scenarios, run.SCENARIOS, "scenario")):
        unknown = [item for item in name if item not in known]
        if unknown:
            parser.error(f"unknown {kind} {', '.join(map(repr, unknown))}; choose from {', '.join(known)}")
    if args.count < 1:
        parser.error(f"--count must be at least 1, not {args.count}")
    first = servers[0]
    print(f"| scenario | {' | '.join(run.SERVERS[s].label for s in servers)} | {first} ÷ {servers[-1]} |")
    print(f"|---|{'---:|' * len(servers)}---:|")
    for scenario_id in scenarios:
        scenario = run.SCENARIOS[scenario_id]
        counts = [instructions_per_message(run.HERE / run.SERVERS[s].script, scenario, args.count) for s in servers]
        cells = " | ".join(f"{c:,.0f}" for c in counts)
        print(f"| {scenario.title} | {cells} | {counts[0] / counts[-1]:.2f} |", flush=True)
    print(f"\nInstructions per message, user space. CPython {platform.python_version()}; {run.versions_line()}")
    print(f"Command: `python benchmarks/servers/callgrind.py --servers {args.servers} --scenarios {args.scenarios} "
          f"--count {args.count}`")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
