"""Each server's CPU per message split into user space and kernel, from ``/proc/PID/stat``.

    python benchmarks/servers/cpu_split.py --servers wsfast,picows --scenarios echo-16-32,echo-256-1024
    flock /tmp/wsfast-bench.lock python benchmarks/servers/cpu_split.py --count 200000 --repeat 5

The machinery is ``run.py``'s (server pinned to CPU 0, ``wsfast bench`` to
CPU 1). Per row: a warm-up of a tenth of ``--count`` messages, then a run of
exactly ``--count`` messages on the same server; the server's ``utime`` and
``stime`` over that run, divided by the messages, are its user-space and
kernel CPU per message. Rows of the servers interleave, ``--repeat`` times,
and the table gives the medians.

Where callgrind (``callgrind.py``) counts user-space instructions only, this
shows what share of the CPU is the kernel's: on loopback, a send also runs
the receiver's TCP input in the sender's system call. The kernel accounts
``utime``/``stime`` by ticks (10 ms at 100 Hz), so a run needs about a second
of server CPU for a few per cent of resolution; like every timed figure here
it moves with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import run

DEFAULT_COUNT = 100_000
SCENARIOS = ("echo-1-32", "echo-16-32", "echo-256-1024")
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_ticks(pid: int) -> tuple[int, int]:
    """``(utime, stime)`` of process ``pid``, in clock ticks (``proc(5)``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def _bench(running: run.RunningServer, scenario: run.Scenario, count: int) -> None:
    command = [sys.executable, "-m", "wsfast.bench", running.url(), *scenario.bench_args(), "--count", str(count)]
    subprocess.run(
        [*command, "--timeout", "120", "--quiet"],
        capture_output=True,
        env=run._env(),
        preexec_fn=run._pin(run.GENERATOR_CPU),
        check=True,
    )


def split(server: str, scenario: run.Scenario, count: int) -> dict[str, float]:
    """User and kernel CPU µs per message of one run of ``count`` messages."""
    count = max(count - count % scenario.connections, scenario.connections)  # spread evenly over the connections
    with run.server(run.SERVERS[server], scenario.mode) as running:
        _bench(running, scenario, max(count // 10 - count // 10 % scenario.connections, scenario.connections))
        user0, system0 = cpu_ticks(running.pid)
        _bench(running, scenario, count)
        user1, system1 = cpu_ticks(running.pid)
    per_message = 1e6 / TICK / count
    return {"user": (user1 - user0) * per_message, "kernel": (system1 - system0) * per_message}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--servers", default="wsfast,picows", help=f"comma-separated, from {','.join(run.SERVERS)}")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated echo scenarios of run.py")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="messages per run (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row, interleaved (default %(default)s)")
    args = parser.parse_args(argv)
    servers, scenarios = args.servers.split(","), args.scenarios.split(",")
    for names, known, kind in ((servers, run.SERVERS, "server"), (scenarios, run.SCENARIOS, "scenario")):
        unknown = [name for name in names if name not in known]
        if unknown:
            parser.error(f"unknown {kind} {', '.join(map(repr, unknown))}; choose from {', '.join(known)}")
    if any(run.SCENARIOS[s].mode != "echo" for s in scenarios):
        parser.error("only echo scenarios: --count counts round trips")
    if args.count < 1 or args.repeat < 1:
        parser.error("--count and --repeat must be at least 1")
    print("| scenario | server | user µs/msg | kernel µs/msg | total µs/msg | kernel share |")
    print("|---|---|---:|---:|---:|---:|")
    for scenario_id in scenarios:
        scenario = run.SCENARIOS[scenario_id]
        runs: dict[str, list[dict[str, float]]] = {server: [] for server in servers}
        for _ in range(args.repeat):
            for server in servers:
                runs[server].append(split(server, scenario, args.count))
        for server in servers:
            user = statistics.median(r["user"] for r in runs[server])
            kernel = statistics.median(r["kernel"] for r in runs[server])
            total = user + kernel
            share = kernel / total if total else 0.0
            print(
                f"| {scenario.title} | {run.SERVERS[server].label} | {user:.2f} | {kernel:.2f} | {total:.2f} "
                f"| {share:.0%} |",
                flush=True,
            )
    print(f"\nMedians of {args.repeat}; {run.machine_line()}")
    print(f"Command: `python benchmarks/servers/cpu_split.py --servers {args.servers} --scenarios {args.scenarios} "
          f"--count {args.count} --repeat {args.repeat}`")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
