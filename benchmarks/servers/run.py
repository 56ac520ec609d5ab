"""Server benchmarks: wsfast beside picows, aiohttp and websockets, one load generator for all.

    python benchmarks/servers/run.py              # the full matrix, 3 s per row (a few minutes)
    python benchmarks/servers/run.py --quick      # 1 s per row, fewer rows
    python benchmarks/servers/run.py --smoke      # each server once, 0.5 s (CI)
    python benchmarks/servers/run.py --servers wsfast,picows --scenarios echo-16-32
    python benchmarks/servers/run.py --json results.json
    python benchmarks/servers/run.py --repeat 3 --syscalls   # medians of 3, system calls per message (perf)

For each scenario and each server, the server runs in its own process pinned
to CPU 0, and ``wsfast bench`` (``python -m wsfast.bench``) runs in another
process pinned to CPU 1; the generator reports its own CPU use, the server's
CPU time over the measured window (``/proc/PID/task/*/schedstat``), and how
busy each CPU was (``/proc/stat``), so that a row disturbed by another
program on the machine shows it in the "other load" column. Every server
starts in the same allocator state (``_common.settle_malloc``): otherwise
the heap's layout after start-up decides, by chance, whether each of
asyncio's 256 KiB socket reads costs an ``mmap``, ``mremap`` and ``munmap``.

Scenarios:

- ``echo-C-S``: C connections (1, 16, 256), S-byte binary messages (32 B,
  1 KiB), request/response: one message in flight per connection.
- ``broadcast-N``: N clients (100, 1,000); the first client asks for bursts of
  4 messages of 256 B (``"burst 4"``, two requests in flight) and each message
  is broadcast to every client with a ``time.time_ns()`` stamp: delivered
  messages/s and latency from publication to delivery.
- ``trickle-N``: the same, but the server publishes one message per loop
  iteration (``"trickle 64"``, one request in flight): a feed whose messages
  arrive one at a time, where nothing can be batched per client.
- ``rate-N``: a fixed 100,000 deliveries/s (``"rate R"`` with R = 100,000 / N
  messages/s, sent once): CPU per delivery and latency below saturation.

Per row: messages/s, MB/s (payload, one direction), p50/p99 latency (ms),
the server's CPU time per message (µs: per round trip for echo, per delivered
message for broadcast), the server's and the generator's CPU use (% of one
core) and the other load on the machine. Each scenario's table is sorted
fastest first; "vs. fastest" is the fastest throughput divided by the row's
(1.00 for the fastest, 2.00 for half its rate).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SERVER_CPU = 0
GENERATOR_CPU = 1
DEFAULT_DURATION = 3.0
DEFAULT_WARMUP = 0.5


@dataclass(frozen=True)
class ServerSpec:
    """A contender: its label, the script that serves, and the distributions it runs on."""

    name: str
    label: str
    script: str
    packages: tuple[str, ...]


SERVERS = {
    spec.name: spec
    for spec in (
        ServerSpec("wsfast", "wsfast", "wsfast_server.py", ("wsfast",)),
        ServerSpec("picows", "picows (uvloop)", "picows_server.py", ("picows", "uvloop")),
        ServerSpec("aiohttp", "aiohttp (uvloop)", "aiohttp_server.py", ("aiohttp", "uvloop")),
        ServerSpec("websockets", "websockets (asyncio)", "websockets_server.py", ("websockets",)),
        ServerSpec("wsfast-aio", "wsfast.aio Handler (uvloop)", "wsfast_aio_server.py", ("wsfast", "uvloop")),
        ServerSpec("wsfast-aio-async", "wsfast.aio async def (asyncio)", "wsfast_aio_coroutine_server.py", ("wsfast",)),
        ServerSpec("uvicorn-wsfast", "uvicorn --ws wsfast", "uvicorn_wsfast_server.py", ("uvicorn", "wsfast")),
        ServerSpec(
            "uvicorn-websockets", "uvicorn --ws websockets-sansio", "uvicorn_websockets_sansio_server.py", ("uvicorn",)
        ),
        ServerSpec("uvicorn-wsproto", "uvicorn --ws wsproto", "uvicorn_wsproto_server.py", ("uvicorn", "wsproto")),
    )
}


@dataclass(frozen=True)
class Scenario:
    """One table: what the generator does against every server."""

    id: str
    title: str
    mode: str  # the server's --mode: echo or broadcast
    connections: int
    size: int
    pattern: str = "burst"  # broadcast: burst, trickle or rate (see _common)

    def bench_args(self) -> list[str]:
        if self.mode == "echo":
            return ["--mode", "echo", "--connections", str(self.connections), "--size", str(self.size)]
        feed = ["--mode", "feed", "--timestamped", "--connections", str(self.connections)]
        if self.pattern == "burst":
            return [*feed, "--trigger", f"burst {BURST}", "--trigger-every", str(BURST), "--depth", "2"]
        if self.pattern == "trickle":
            return [*feed, "--trigger", f"trickle {TRICKLE}", "--trigger-every", str(TRICKLE), "--depth", "1"]
        rate = DELIVERIES_PER_S // self.connections
        return [*feed, "--trigger", f"rate {rate}", "--trigger-every", str(10**9), "--depth", "1"]


BURST = 4
TRICKLE = 64
DELIVERIES_PER_S = 100_000

SCENARIOS = {
    s.id: s
    for s in (
        Scenario("echo-1-32", "echo, 1 connection, 32 B", "echo", 1, 32),
        Scenario("echo-16-32", "echo, 16 connections, 32 B", "echo", 16, 32),
        Scenario("echo-256-32", "echo, 256 connections, 32 B", "echo", 256, 32),
        Scenario("echo-1-1024", "echo, 1 connection, 1 KiB", "echo", 1, 1024),
        Scenario("echo-16-1024", "echo, 16 connections, 1 KiB", "echo", 16, 1024),
        Scenario("echo-256-1024", "echo, 256 connections, 1 KiB", "echo", 256, 1024),
        Scenario("broadcast-100", "broadcast of 256 B to 100 clients", "broadcast", 100, 256),
        Scenario("broadcast-1000", "broadcast of 256 B to 1,000 clients", "broadcast", 1000, 256),
        Scenario(
            "trickle-100",
            "broadcast of 256 B to 100 clients, one message per iteration",
            "broadcast",
            100,
            256,
            "trickle",
        ),
        Scenario(
            "trickle-1000",
            "broadcast of 256 B to 1,000 clients, one message per iteration",
            "broadcast",
            1000,
            256,
            "trickle",
        ),
        Scenario(
            "rate-100", "broadcast of 256 B to 100 clients at 100,000 deliveries/s", "broadcast", 100, 256, "rate"
        ),
        Scenario(
            "rate-1000", "broadcast of 256 B to 1,000 clients at 100,000 deliveries/s", "broadcast", 1000, 256, "rate"
        ),
    )
}
QUICK_SCENARIOS = ("echo-1-32", "echo-16-32", "echo-256-1024", "broadcast-1000")
SMOKE_SCENARIOS = ("echo-16-32",)


@dataclass(frozen=True)
class Row:
    """One measurement: a server in a scenario."""

    server: ServerSpec
    scenario: Scenario

    @property
    def id(self) -> str:
        return f"{self.scenario.id}-{self.server.name}"


def rows(scenarios: Sequence[str], servers: Sequence[str]) -> list[Row]:
    return [Row(SERVERS[s], SCENARIOS[c]) for c in scenarios for s in servers]


def smoke_rows() -> list[Row]:
    """Each server once, in the smallest echo scenario."""
    return rows(SMOKE_SCENARIOS, list(SERVERS))


def full_rows() -> list[Row]:
    return rows(list(SCENARIOS), list(SERVERS))


# --- machine facts -----------------------------------------------------------------------


def dist_version(name: str) -> str:
    if name == "wsfast":
        sys.path.insert(0, str(ROOT))
        try:
            import wsfast

            return f"{wsfast.__version__} ({wsfast.IMPLEMENTATION})"
        finally:
            sys.path.remove(str(ROOT))
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_line() -> str:
    kernel = platform.release()
    return (
        f"{cpu_model()}, {os.cpu_count()} CPUs, Linux {kernel}; "
        f"CPython {platform.python_version()}; loopback; server on CPU {SERVER_CPU}, generator on CPU {GENERATOR_CPU}"
    )


def versions_line() -> str:
    names = ["wsfast", "picows", "aiohttp", "websockets", "uvloop"]
    return ", ".join(f"{name} {dist_version(name)}" for name in names)


# --- processes -----------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def _pin(cpu: int) -> Any:
    """A ``preexec_fn`` pinning the child to ``cpu`` (when the machine has it)."""
    if not hasattr(os, "sched_setaffinity") or cpu >= (os.cpu_count() or 1):
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


@dataclass
class RunningServer:
    process: subprocess.Popen[str]
    port: int
    pid: int

    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"


@contextlib.contextmanager
def server(spec: ServerSpec, mode: str, *, timeout: float = 15.0) -> Iterator[RunningServer]:
    """Start ``spec``'s server in ``mode``, pinned to the server CPU; stop it afterwards."""
    process = subprocess.Popen(
        [sys.executable, str(HERE / spec.script), "--port", "0", "--mode", mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        preexec_fn=_pin(SERVER_CPU),
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if line.startswith("LISTENING") or not line:
                break
        if not line.startswith("LISTENING"):
            process.kill()
            _, err = process.communicate(timeout=5)
            raise RuntimeError(f"{spec.name} server did not start: {err.strip()[-2000:]}")
        _, port, pid = line.split()
        yield RunningServer(process, int(port), int(pid))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def run_bench(running: RunningServer, scenario: Scenario, *, duration: float, warmup: float) -> dict[str, Any]:
    """Run ``wsfast bench`` pinned to the generator CPU; return its JSON result."""
    command = [
        sys.executable, "-m", "wsfast.bench", running.url(), *scenario.bench_args(),
        "--duration", str(duration), "--warmup", str(warmup),
        "--server-pid", str(running.pid), "--json", "--quiet",
    ]  # fmt: skip
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=_env(),
        preexec_fn=_pin(GENERATOR_CPU),
        timeout=duration + warmup + 120,
        check=False,
    )
    if completed.returncode not in (0, 1) or not completed.stdout.strip():
        raise RuntimeError(f"wsfast bench failed ({completed.returncode}): {completed.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(completed.stdout)
    result["command"] = "python -m wsfast.bench " + " ".join(
        _quote(arg) for arg in command[3:] if arg not in ("--json", "--quiet")
    )
    return result


def _quote(arg: str) -> str:
    return f'"{arg}"' if " " in arg else arg


def measure(row: Row, *, duration: float, warmup: float, syscalls: bool = False) -> dict[str, Any]:
    """Start the row's server, run the generator against it, return the result.

    With ``syscalls``, ``perf stat`` also counts the server's system calls
    over a window inside the measured one (``syscalls_per_message``).
    """
    window = duration - SYSCALL_LEAD - SYSCALL_TAIL
    counting = syscalls and window > 0
    with server(row.server, row.scenario.mode) as running:
        with (
            count_syscalls(running.pid, start=warmup + SYSCALL_LEAD, seconds=window)
            if counting
            else (contextlib.nullcontext([])) as counted
        ):
            result = run_bench(running, row.scenario, duration=duration, warmup=warmup)
    if counted and result["messages_per_s"]:
        result["syscalls_per_message"] = counted[0] / (result["messages_per_s"] * window)
    return annotate(row, result)


# The syscall window starts this long after the warm-up (the generator
# connects first) and ends this long before the measured window does.
SYSCALL_LEAD = 1.0
SYSCALL_TAIL = 0.5


@contextlib.contextmanager
def count_syscalls(pid: int, *, start: float, seconds: float) -> Iterator[list[int]]:
    """Count ``pid``'s system calls (every thread) from ``start`` seconds on, for ``seconds``.

    Yields a list that holds the count once the block is over (it stays
    empty if ``perf`` is missing or may not trace).
    """
    counted: list[int] = []
    command = ["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "-p", str(pid), "--", "sleep", f"{seconds:g}"]

    def run_perf() -> None:
        with contextlib.suppress(OSError):
            completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=False)
            for line in completed.stderr.splitlines():
                value, _, rest = line.partition(",")
                if "raw_syscalls:sys_enter" in rest and value.isdigit():
                    counted.append(int(value))

    timer = threading.Timer(start, run_perf)
    timer.start()
    try:
        yield counted
    finally:
        timer.join()


def annotate(row: Row, result: dict[str, Any]) -> dict[str, Any]:
    result["server"] = row.server.name
    result["label"] = row.server.label
    result["scenario"] = row.scenario.id
    busy = result.get("cpu_busy") or []
    used = (result.get("server_cpu") or 0.0) + result["generator_cpu"]
    result["other_load"] = max(0.0, sum(busy) - used) if busy else None
    return result


# --- reporting ---------------------------------------------------------------------------------


def _ms(result: dict[str, Any], key: str) -> str:
    value = result["latency_ms"].get(key)
    return "-" if value is None else f"{value:.3g}"


def _cpu(result: dict[str, Any]) -> float | None:
    """Server CPU µs per message (the median of the repeats when there were several)."""
    value = result.get("server_cpu_us_per_message")
    return None if value is None else float(value)


def _syscalls(result: dict[str, Any]) -> str:
    value = result.get("syscalls_per_message")
    return "-" if value is None else f"{value:.2f}"


def table(scenario: Scenario, results: list[dict[str, Any]]) -> str:
    """One scenario's Markdown table, fastest first."""
    ordered = sorted(results, key=lambda r: r["messages_per_s"], reverse=True)
    best = ordered[0]["messages_per_s"] if ordered else 0.0
    unit = "round trip" if scenario.mode == "echo" else "message"
    lines = [
        f"#### {scenario.title}",
        "",
        f"| server | messages/s | vs. fastest | MB/s | p50 ms | p99 ms | server CPU µs/{unit} "
        f"| syscalls/{unit} | server CPU | generator CPU | other load | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in ordered:
        rate = r["messages_per_s"]
        ratio = f"{best / rate:.2f}" if rate else "-"
        per = _cpu(r)
        other = r.get("other_load")
        lines.append(
            f"| {r['label']} | {rate:,.0f} | {ratio} | {r['mb_per_s']:.2f} | {_ms(r, 'p50')} | {_ms(r, 'p99')} "
            f"| {'-' if per is None else f'{per:.2f}'} | {_syscalls(r)} "
            f"| {(r.get('server_cpu') or 0) * 100:.0f} % | {r['generator_cpu'] * 100:.0f} % "
            f"| {'-' if other is None else f'{other * 100:.0f} %'} | {r['errors']} |"
        )
    return "\n".join(lines)


# Issue 11's bounds on wsfast's server CPU per message, as a fraction of picows'.
CPU_TARGETS = {"echo-1-32": 1.0, "echo-1-1024": 1.0, "burst": 0.6, "trickle": 0.8, "rate": 0.8}
ECHO_CPU_TARGET = 0.9  # echo with 16 and 256 connections


def cpu_target(scenario: Scenario) -> float:
    if scenario.mode == "echo":
        return CPU_TARGETS.get(scenario.id, ECHO_CPU_TARGET)
    return CPU_TARGETS[scenario.pattern]


def targets(results: list[dict[str, Any]]) -> str:
    """wsfast against issue 11's targets (CPU per message and p99 against picows), row by row."""
    by_scenario: dict[str, dict[str, dict[str, Any]]] = {}
    for r in results:
        by_scenario.setdefault(r["scenario"], {})[r["server"]] = r
    lines = [
        "| scenario | CPU µs/msg wsfast vs picows | ratio (target) | p99 ms wsfast vs picows | messages/s ratio "
        "| syscalls/msg wsfast vs picows |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for sid, servers in by_scenario.items():
        mine, picows = servers.get("wsfast"), servers.get("picows")
        if mine is None or picows is None:
            continue
        scenario = SCENARIOS[sid]
        a, b = _cpu(mine), _cpu(picows)
        cpu = f"{a:.2f} vs {b:.2f}" if a is not None and b is not None else "-"
        ratio = f"{a / b:.2f} (<= {cpu_target(scenario):.1f})" if a is not None and b else "-"
        p99 = f"{_ms(mine, 'p99')} vs {_ms(picows, 'p99')}"
        rate = f"{mine['messages_per_s'] / picows['messages_per_s']:.2f}" if picows["messages_per_s"] else "-"
        lines.append(
            f"| {scenario.title} | {cpu} | {ratio} | {p99} | {rate} | {_syscalls(mine)} vs {_syscalls(picows)} |"
        )
    return "\n".join(lines)


def report(
    results: list[dict[str, Any]],
    *,
    command: str,
    duration: float,
    warmup: float,
    repeat: int = 1,
    machine: str | None = None,
    versions: str | None = None,
) -> str:
    parts = [
        f"Command: `{command}`",
        "",
        f"Machine: {machine or machine_line()}.",
        f"Versions: {versions or versions_line()}.",
        f"Each row: {warmup:g} s warm-up, then {duration:g} s measured; "
        + (
            "one run per row."
            if repeat <= 1
            else f"the median of {repeat} runs (servers interleaved), figure by figure."
        ),
        "",
    ]
    for sid in dict.fromkeys(r["scenario"] for r in results):
        parts.append(table(SCENARIOS[sid], [r for r in results if r["scenario"] == sid]))
        parts.append("")
    if any(r["server"] == "wsfast" for r in results):
        parts.append("#### wsfast against the targets")
        parts.append("")
        parts.append(targets(results))
        parts.append("")
    return "\n".join(parts)


def machine_busy(interval: float = 0.5) -> float:
    """CPUs busy on the whole machine over ``interval`` seconds (0.0 to the CPU count)."""
    sys.path.insert(0, str(ROOT))
    try:
        from wsfast.bench.stats import cpu_busy_seconds
    finally:
        sys.path.remove(str(ROOT))
    before = cpu_busy_seconds()
    time.sleep(interval)
    after = cpu_busy_seconds()
    if not before or not after:
        return 0.0
    return sum(b - a for a, b in zip(before, after, strict=True)) / interval


def wait_until_idle(limit: float, threshold: float = 0.25) -> float:
    """Wait up to ``limit`` seconds for the machine to be idle; return the load seen last."""
    deadline = time.monotonic() + limit
    busy = machine_busy()
    while busy > threshold and time.monotonic() < deadline:
        print(f"  (machine busy: {busy:.2f} CPUs; waiting)", file=sys.stderr, flush=True)
        time.sleep(2.0)
        busy = machine_busy()
    return busy


def median_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The repeats of one row as one result: the median of each figure.

    The run of median throughput gives the other columns; every repeat is
    kept under ``repeats``.
    """
    ordered = sorted(results, key=lambda r: r["messages_per_s"])
    summary = dict(ordered[len(ordered) // 2])
    for key in ("server_cpu_us_per_message", "syscalls_per_message"):
        values = [r[key] for r in results if r.get(key) is not None]
        summary[key] = statistics.median(values) if values else None
    summary["latency_ms"] = dict(summary["latency_ms"])
    for key in ("p50", "p99"):
        values = [r["latency_ms"][key] for r in results if r["latency_ms"].get(key) is not None]
        summary["latency_ms"][key] = statistics.median(values) if values else None
    summary["repeats"] = [
        {
            k: r.get(k)
            for k in ("messages_per_s", "server_cpu_us_per_message", "syscalls_per_message", "latency_ms", "other_load")
        }
        for r in results
    ]
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    level = parser.add_mutually_exclusive_group()
    level.add_argument("--quick", action="store_true", help="1 s per row, fewer scenarios")
    level.add_argument("--smoke", action="store_true", help="each server once, 0.5 s (CI)")
    parser.add_argument("--servers", help=f"comma-separated, from {','.join(SERVERS)}")
    parser.add_argument("--scenarios", help=f"comma-separated, from {','.join(SCENARIOS)}")
    parser.add_argument("--duration", type=float, help="seconds measured per row (default 3, quick 1, smoke 0.5)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per row (default 0.5, smoke 0.2)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; medians are reported (default 1)")
    parser.add_argument(
        "--syscalls", action="store_true", help="count the server's system calls per message with perf stat"
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="S",
        help="before each row, wait up to S seconds for the machine to be idle (shared machines)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every result to FILE")
    parser.add_argument("--report", metavar="FILE", help="print the tables of a --json FILE again, run nothing")
    args = parser.parse_args(argv)
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        print(
            report(
                saved["results"],
                command=saved.get("command", f"(results of {args.report})"),
                duration=saved.get("duration", DEFAULT_DURATION),
                warmup=saved.get("warmup", DEFAULT_WARMUP),
                repeat=saved.get("repeat", 1),
                machine=saved.get("machine"),
                versions=saved.get("versions"),
            )
        )
        return 0

    servers = args.servers.split(",") if args.servers else list(SERVERS)
    unknown = [s for s in servers if s not in SERVERS]
    if unknown:
        parser.error(f"unknown server(s): {', '.join(unknown)}")
    if args.scenarios:
        scenarios = args.scenarios.split(",")
    elif args.smoke:
        scenarios = list(SMOKE_SCENARIOS)
    elif args.quick:
        scenarios = list(QUICK_SCENARIOS)
    else:
        scenarios = list(SCENARIOS)
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    duration = args.duration or (0.5 if args.smoke else 1.0 if args.quick else DEFAULT_DURATION)
    warmup = args.warmup if args.warmup is not None else (0.2 if args.smoke else DEFAULT_WARMUP)

    runs: dict[str, list[dict[str, Any]]] = {}
    failed = 0
    plan = rows(scenarios, servers)
    for repeat in range(max(1, args.repeat)):
        for row in plan:
            if args.wait_idle:
                wait_until_idle(args.wait_idle)
            label = f"{row.scenario.id:>15} {row.server.name:<11}" + (f" #{repeat + 1}" if args.repeat > 1 else "")
            print(label, end=" ", file=sys.stderr, flush=True)
            try:
                result = measure(row, duration=duration, warmup=warmup, syscalls=args.syscalls)
            except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                failed += 1
                print(f"FAILED: {exc}", file=sys.stderr)
                continue
            runs.setdefault(row.id, []).append(result)
            per = result.get("server_cpu_us_per_message")
            other = result.get("other_load")
            print(
                f"{result['messages_per_s']:>10,.0f} msg/s  p99 {result['latency_ms'].get('p99', 0):7.3f} ms  "
                f"server {per or 0:6.2f} µs/msg  gen CPU {result['generator_cpu'] * 100:3.0f} %  "
                f"other load {(other or 0) * 100:3.0f} %  errors {result['errors']}",
                file=sys.stderr,
                flush=True,
            )
            if result["errors"]:
                failed += 1
                for sample in result["error_samples"][:3]:
                    print(f"    error: {sample}", file=sys.stderr)
    results = [median_of(runs[row.id]) for row in plan if row.id in runs]
    command = "python benchmarks/servers/run.py" + (" " + " ".join(argv) if argv else " " + " ".join(sys.argv[1:]))
    print(report(results, command=command.rstrip(), duration=duration, warmup=warmup, repeat=args.repeat))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "command": command.rstrip(),
                    "duration": duration,
                    "warmup": warmup,
                    "repeat": args.repeat,
                    "machine": machine_line(),
                    "versions": versions_line(),
                    "results": results,
                },
                indent=2,
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
