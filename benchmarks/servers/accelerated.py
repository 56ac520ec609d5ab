"""Each library's own echo server with and without ``wsfast.accelerate()``, one load generator for all.

    python benchmarks/servers/accelerated.py                  # every library, both scenarios, 3 s per row
    python benchmarks/servers/accelerated.py --libraries websockets,uvicorn-wsproto --duration 2
    python benchmarks/servers/accelerated.py --json results.json
    python benchmarks/servers/accelerated.py --callgrind 2000    # user-space instructions per message instead
    python benchmarks/servers/accelerated.py --syscalls 2000     # system calls per message (strace -c)
    python benchmarks/servers/accelerated.py --kernel-share 30000 --repeat 3   # the kernel's share of the CPU

The machinery is ``run.py``'s: the server runs alone on CPU 0, ``wsfast
bench`` on CPU 1, and the server's CPU time over the measured window comes
from ``/proc/PID/task/*/schedstat``. Both rows of a library start the same
server script through ``accelerated_server.py``, which calls
``wsfast.accelerate(NAME)`` first in the accelerated row only; the two rows
run back to back. Scenarios: ``run.py``'s echo rows, 16 connections x 32 B
and 256 connections x 1 KiB, binary, one message in flight per connection.

Per row: messages/s and server CPU µs per round trip, without and with
``accelerate()``, and their ratios; "CPU gain" is CPU per message without
divided by with (1.30 = 1.3x fewer CPU-seconds per message), checked against
the issue's target where it sets one. With ``--repeat N`` each row runs N
times, without and with interleaved, and the table keeps the best of each
(``best_of``): on a shared machine the CPU per message of the
least disturbed run is the closest to the truth.

``--callgrind N`` measures what machine load cannot disturb: each server
runs under valgrind's callgrind, and its user-space instructions per message
are the difference between two fixed-count runs of ``wsfast bench`` on the
same server (N and 2N messages, each on new connections, so the handshakes
cancel out). The kernel's work per message (the same system calls with the
same sizes, with and without) is not counted: the CPU gain is smaller than
the instruction gain by the kernel's share of the CPU (``perf record``).

``--syscalls N`` checks that claim: ``strace -c -f`` attached to each
server for the same two runs counts its system calls per message, by name
(the difference of the two, as above). Both rows start in the same
allocator state (see ``accelerated_server.py``): asyncio's 256 KiB reads
cost no ``mmap``, ``mremap`` or ``munmap`` in either.

``--kernel-share N`` gives the share of the server's CPU that is the
kernel's (system time over user plus system time, ``/proc/PID/stat``, over
a run of N messages after a warm-up), with which an instruction gain g
becomes a CPU gain of 1 / (k + (1 - k) / g). A ratio of two times measured
together, it moves less with machine load than the CPU time itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import callgrind
import cpu_split
import run

SCENARIOS = ("echo-16-32", "echo-256-1024")
LAUNCHER = "accelerated_server.py"


@dataclass(frozen=True)
class Library:
    """A library's own echo server, what to accelerate in it, and the target CPU gain (if any)."""

    name: str
    label: str
    server: str  # the script and its arguments, for WSFAST_BENCH_SERVER
    accelerate: tuple[str, ...]
    packages: tuple[str, ...]
    target: float | None = None


LIBRARIES = {
    lib.name: lib
    for lib in (
        Library("websockets", "websockets (asyncio)", "websockets_server.py", ("websockets",), ("websockets",), 1.3),
        Library("aiohttp", "aiohttp (uvloop)", "aiohttp_server.py", ("aiohttp",), ("aiohttp", "uvloop")),
        Library(
            "uvicorn-websockets-sansio",
            "uvicorn + Starlette, --ws websockets-sansio",
            "uvicorn_server.py --ws websockets-sansio",
            ("websockets",),
            ("uvicorn", "starlette", "websockets"),
            1.2,
        ),
        Library(
            "uvicorn-wsproto",
            "uvicorn + Starlette, --ws wsproto",
            "uvicorn_server.py --ws wsproto",
            ("wsproto",),
            ("uvicorn", "starlette", "wsproto"),
            1.2,
        ),
        Library(
            "gunicorn",
            "gunicorn ASGI worker + Starlette",
            "gunicorn_server.py",
            ("gunicorn",),
            ("gunicorn", "starlette"),
        ),
    )
}


@contextlib.contextmanager
def launched(library: Library, scenario: run.Scenario, accelerated: bool) -> Iterator[run.RunningServer]:
    """``library``'s server started through the launcher, accelerated or not, as ``run.server`` starts one."""
    spec = run.ServerSpec(library.name, library.label, LAUNCHER, library.packages)
    saved = {key: os.environ.get(key) for key in ("WSFAST_BENCH_SERVER", "WSFAST_BENCH_ACCELERATE")}
    os.environ["WSFAST_BENCH_SERVER"] = library.server
    os.environ["WSFAST_BENCH_ACCELERATE"] = ",".join(library.accelerate) if accelerated else ""
    try:
        with run.server(spec, scenario.mode) as running:
            yield running
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def measure(
    library: Library, scenario: run.Scenario, accelerated: bool, duration: float, warmup: float
) -> dict[str, Any]:
    """One row: ``library``'s server, accelerated or not, under ``scenario``."""
    with launched(library, scenario, accelerated) as running:
        result = run.run_bench(running, scenario, duration=duration, warmup=warmup)
    spec = run.ServerSpec(library.name, library.label, LAUNCHER, library.packages)
    result = run.annotate(run.Row(spec, scenario), result)
    result["accelerated"] = accelerated
    return result


def instructions_per_message(library: Library, scenario: run.Scenario, accelerated: bool, count: int) -> float:
    """User-space instructions per round trip of ``library``'s server under callgrind (see the module docstring)."""
    env = run._env()
    env["WSFAST_BENCH_SERVER"] = library.server
    env["WSFAST_BENCH_ACCELERATE"] = ",".join(library.accelerate) if accelerated else ""
    return callgrind.instructions_per_message(run.HERE / LAUNCHER, scenario, count, env)


def syscalls_per_message(library: Library, scenario: run.Scenario, accelerated: bool, count: int) -> dict[str, float]:
    """System calls per round trip of ``library``'s server, by name (``strace -c``; see the module docstring)."""
    count -= count % scenario.connections
    counts = []
    with tempfile.TemporaryDirectory() as tmp, launched(library, scenario, accelerated) as running:
        url = running.url()
        for messages in (count, 2 * count):
            out = Path(tmp, f"strace.{messages}")
            tracer = subprocess.Popen(
                ["strace", "-c", "-f", "-o", str(out), "-p", str(running.pid)], stderr=subprocess.DEVNULL
            )
            time.sleep(0.5)  # strace attaches to every thread
            bench = [sys.executable, "-m", "wsfast.bench", url, *scenario.bench_args(), "--count", str(messages)]
            subprocess.run([*bench, "--timeout", "120", "--quiet"], env=run._env(), check=True, capture_output=True)
            tracer.send_signal(signal.SIGINT)
            tracer.wait(30)
            counts.append(_strace_counts(out.read_text()))
    once, twice = counts
    return {name: (twice.get(name, 0) - once.get(name, 0)) / count for name in set(once) | set(twice)}


def cpu_ticks(library: Library, scenario: run.Scenario, accelerated: bool, count: int) -> tuple[int, int]:
    """The user and system clock ticks ``library``'s server spends on ``count`` round trips after a warm-up."""
    with launched(library, scenario, accelerated) as running:
        bench = [sys.executable, "-m", "wsfast.bench", running.url(), *scenario.bench_args(), "--quiet"]
        subprocess.run(
            [*bench, "--count", str(8 * scenario.connections)], env=run._env(), check=True, capture_output=True
        )
        before = cpu_split.cpu_ticks(running.pid)
        subprocess.run(
            [*bench, "--count", str(count), "--timeout", "300"],
            env=run._env(),
            check=True,
            capture_output=True,
            preexec_fn=run._pin(run.GENERATOR_CPU),
        )
        after = cpu_split.cpu_ticks(running.pid)
    return after[0] - before[0], after[1] - before[1]


def _strace_counts(text: str) -> dict[str, int]:
    """``{syscall: calls}`` from ``strace -c``'s table (its "total" line as ``"total"``)."""
    counts = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[3].isdigit():  # % time, seconds, usecs/call, calls, [errors,] name
            counts[fields[-1]] = int(fields[3])
    return counts


def best_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The repeats of one row as one result: the run of highest throughput, with the lowest CPU per message.

    On a shared machine the least disturbed run is the closest to the truth;
    every repeat is kept under ``repeats``.
    """
    best = dict(max(results, key=lambda r: r["messages_per_s"]))
    cpu = [r["server_cpu_us_per_message"] for r in results if r.get("server_cpu_us_per_message") is not None]
    best["server_cpu_us_per_message_min"] = min(cpu) if cpu else None
    best["repeats"] = [
        {k: r.get(k) for k in ("messages_per_s", "server_cpu_us_per_message", "latency_ms", "other_load")}
        for r in results
    ]
    return best


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(pairs: list[tuple[Library, str, dict[str, Any], dict[str, Any]]]) -> str:
    """The Markdown table of every (library, scenario, without, with) measured."""
    lines = [
        "| library | scenario | msg/s without | msg/s with | msg/s gain | CPU µs/msg without | CPU µs/msg with "
        "| CPU gain | target | other load | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for library, scenario, off, on in pairs:
        cpu_off, cpu_on = off.get("server_cpu_us_per_message_min"), on.get("server_cpu_us_per_message_min")
        gain = _ratio(cpu_off, cpu_on)
        if library.target is None:
            target = "-"
        else:
            target = f">= {library.target:g}: " + ("met" if gain is not None and gain >= library.target else "MISSED")
        load = max(off.get("other_load") or 0.0, on.get("other_load") or 0.0)
        lines.append(
            f"| {library.label} | {run.SCENARIOS[scenario].title} | {off['messages_per_s']:,.0f} "
            f"| {on['messages_per_s']:,.0f} | {_fmt(_ratio(on['messages_per_s'], off['messages_per_s']), '.2f')} "
            f"| {_fmt(cpu_off, '.2f')} | {_fmt(cpu_on, '.2f')} | {_fmt(gain, '.2f')} | {target} "
            f"| {load * 100:.0f} % | {off['errors'] + on['errors']} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--libraries", help=f"comma-separated, from {','.join(LIBRARIES)}")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated, from run.py's echo rows")
    parser.add_argument("--duration", type=float, default=run.DEFAULT_DURATION, help="seconds measured per row")
    parser.add_argument("--warmup", type=float, default=run.DEFAULT_WARMUP, help="seconds of warm-up per row")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each row, without and with interleaved")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="S", help="as run.py's --wait-idle")
    parser.add_argument("--json", metavar="FILE", help="also write every result to FILE")
    parser.add_argument(
        "--callgrind", type=int, metavar="N", help="user-space instructions per message (callgrind, N and 2N messages)"
    )
    parser.add_argument(
        "--syscalls", type=int, metavar="N", help="system calls per message (strace -c, N and 2N messages)"
    )
    parser.add_argument(
        "--kernel-share", type=int, metavar="N", help="the kernel's share of the server's CPU (N messages per run)"
    )
    args = parser.parse_args(argv)
    names = args.libraries.split(",") if args.libraries else list(LIBRARIES)
    unknown = [name for name in names if name not in LIBRARIES]
    if unknown:
        parser.error(f"unknown libraries {unknown}; known: {', '.join(LIBRARIES)}")
    scenarios = args.scenarios.split(",")
    bad = [s for s in scenarios if s not in run.SCENARIOS or run.SCENARIOS[s].mode != "echo"]
    if bad:
        parser.error(f"not an echo scenario of run.py: {bad}")

    if args.callgrind:
        return callgrind_table(names, scenarios, args.callgrind)
    if args.syscalls:
        return syscalls_table(names, scenarios, args.syscalls)
    if args.kernel_share:
        return kernel_share_table(names, scenarios, args.kernel_share, max(1, args.repeat))

    pairs = []
    failed = 0
    for scenario_id in scenarios:
        scenario = run.SCENARIOS[scenario_id]
        for name in names:
            library = LIBRARIES[name]
            runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
            for attempt in range(max(1, args.repeat)):
                for accelerated in (False, True):
                    if args.wait_idle:
                        run.wait_until_idle(args.wait_idle)
                    label = f"{scenario_id:>14} {name:<26} {'with' if accelerated else 'without':>7} #{attempt + 1}"
                    print(label, end=" ", file=sys.stderr)
                    try:
                        result = measure(library, scenario, accelerated, args.duration, args.warmup)
                    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                        print(f"FAILED: {exc}", file=sys.stderr)
                        failed += 1
                        continue
                    failed += bool(result["errors"])
                    cpu = result.get("server_cpu_us_per_message") or 0.0
                    print(f"{result['messages_per_s']:>10,.0f} msg/s  {cpu:7.2f} µs/msg", file=sys.stderr, flush=True)
                    runs[accelerated].append(result)
            if runs[False] and runs[True]:
                pairs.append((library, scenario_id, best_of(runs[False]), best_of(runs[True])))

    command = "python benchmarks/servers/accelerated.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"Command: `{command.strip()}`\n")
    print(f"Machine: {run.machine_line()}.")
    versions = ", ".join(
        f"{p} {run.dist_version(p)}" for p in ("wsfast", "websockets", "aiohttp", "uvicorn", "wsproto", "gunicorn")
    )
    print(f"Versions: {versions}.")
    print(
        f"Each row: {args.warmup:g} s warm-up, then {args.duration:g} s measured, {max(1, args.repeat)} run(s), "
        "without and with interleaved: the highest messages/s and the lowest server CPU µs/msg of the runs.\n"
    )
    print(table(pairs))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "command": command.strip(),
                    "machine": run.machine_line(),
                    "versions": versions,
                    "results": [[lib.name, sid, off, on] for lib, sid, off, on in pairs],
                },
                indent=2,
            )
        )
    return 1 if failed else 0


def callgrind_table(names: list[str], scenarios: list[str], count: int) -> int:
    """Print user-space instructions per message without and with ``accelerate()``, per library and scenario."""
    print("| library | scenario | instructions/msg without | with | gain |")
    print("|---|---|---:|---:|---:|")
    for scenario_id in scenarios:
        scenario = run.SCENARIOS[scenario_id]
        for name in names:
            library = LIBRARIES[name]
            off, on = (instructions_per_message(library, scenario, flag, count) for flag in (False, True))
            print(f"| {library.label} | {scenario.title} | {off:,.0f} | {on:,.0f} | {off / on:.2f} |", flush=True)
    command = f"python benchmarks/servers/accelerated.py --callgrind {count}"
    print(f"\nCommand: `{command} --libraries {','.join(names)} --scenarios {','.join(scenarios)}`")
    return 0


SYSCALLS = ("recvfrom", "sendto", "epoll_wait", "epoll_ctl", "mmap", "mremap", "munmap", "brk")


def _per(counts: dict[str, float], call: str) -> str:
    return f"{round(counts.get(call, 0.0), 2) + 0.0:.2f}"  # + 0.0: no "-0.00" from run-to-run noise


def syscalls_table(names: list[str], scenarios: list[str], count: int) -> int:
    """Print system calls per message without and with ``accelerate()``, per library and scenario."""
    print("| library | scenario | " + " | ".join(SYSCALLS) + " | all |")
    print("|---|---|" + "---:|" * (len(SYSCALLS) + 1))
    for scenario_id in scenarios:
        scenario = run.SCENARIOS[scenario_id]
        for name in names:
            library = LIBRARIES[name]
            off, on = (syscalls_per_message(library, scenario, flag, count) for flag in (False, True))
            cells = " | ".join(f"{_per(off, call)} / {_per(on, call)}" for call in (*SYSCALLS, "total"))
            print(f"| {library.label} | {scenario.title} | {cells} |", flush=True)
    print("\nwithout / with accelerate(), per message.")
    command = f"python benchmarks/servers/accelerated.py --syscalls {count}"
    print(f"Command: `{command} --libraries {','.join(names)} --scenarios {','.join(scenarios)}`")
    return 0


def kernel_share_table(names: list[str], scenarios: list[str], count: int, repeat: int) -> int:
    """Print the kernel's share of each server's CPU without and with ``accelerate()`` (the median of ``repeat``)."""
    print("| library | scenario | kernel share without | with | runs (system / user ticks, without; with) |")
    print("|---|---|---:|---:|---|")
    for scenario_id in scenarios:
        scenario = run.SCENARIOS[scenario_id]
        for name in names:
            library = LIBRARIES[name]
            runs: dict[bool, list[tuple[int, int]]] = {False: [], True: []}
            for _ in range(repeat):
                for flag in (False, True):
                    runs[flag].append(cpu_ticks(library, scenario, flag, count))
            shares = {flag: statistics.median(k / (u + k) for u, k in ticks) for flag, ticks in runs.items()}
            detail = "; ".join(" ".join(f"{k}/{u}" for u, k in runs[flag]) for flag in (False, True))
            print(
                f"| {library.label} | {scenario.title} | {shares[False]:.0%} | {shares[True]:.0%} | {detail} |",
                flush=True,
            )
    command = f"python benchmarks/servers/accelerated.py --kernel-share {count} --repeat {repeat}"
    print(f"\nCommand: `{command} --libraries {','.join(names)} --scenarios {','.join(scenarios)}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
