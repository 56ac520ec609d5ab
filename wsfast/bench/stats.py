"""What a ``wsfast bench`` run measured: the result, latency percentiles, CPU use."""

from __future__ import annotations

import array
import json
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import kernels
from .._version import __version__

__all__ = ["BenchResult", "cpu_busy_seconds", "machine_info", "percentiles", "process_cpu_seconds"]


@dataclass
class BenchResult:
    """What a run measured; :meth:`to_json` gives the ``--json`` document.

    Attributes:
        messages: messages received within the measured window.
        seconds: the window's wall time.
        messages_per_s, mb_per_s: throughput (MB = 10^6 bytes of payload).
        latency_ms: ``p50``, ``p90``, ``p99``, ``p999``, ``max`` and ``mean``
            in milliseconds (empty when no latency was measured).
        errors: connections that failed or broke, and protocol errors.
        error_samples: up to 10 error descriptions.
        generator_cpu: the generator's CPU time / wall time (1.0 = one core).
        server_cpu_s: the server's CPU time over the window (``--server-pid``).
        server_cpu_us_per_message: ``server_cpu_s`` per message, in µs.
        cpu_busy: each CPU's busy fraction over the window, every process
            counted (Linux): shows whether something else competed.
        interrupted: the run was stopped early by Ctrl-C.
    """

    url: str
    mode: str
    connections: int
    connected: int
    size: int
    depth: int
    text: bool
    messages: int
    bytes: int
    seconds: float
    messages_per_s: float
    mb_per_s: float
    latency_ms: dict[str, float]
    latency_samples: int
    errors: int
    error_samples: list[str]
    generator_cpu: float
    sent: int
    server_pid: int | None = None
    server_cpu_s: float | None = None
    server_cpu: float | None = None
    server_cpu_us_per_message: float | None = None
    cpu_busy: list[float] | None = None
    interrupted: bool = False
    machine: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def machine_info() -> dict[str, Any]:
    """The machine, Python and wsfast facts printed next to every number."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "affinity": affinity,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "wsfast": __version__,
        "implementation": kernels.IMPLEMENTATION,
    }


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by process ``pid``, all threads.

    Uses the nanosecond ``/proc/PID/task/*/schedstat`` when the kernel has
    it, else the clock ticks of ``/proc/PID/stat``.

    Raises:
        OSError: the process is gone, or this is not Linux.
    """
    task_dir = f"/proc/{pid}/task"
    try:
        total = 0
        for task in os.listdir(task_dir):
            with open(f"{task_dir}/{task}/schedstat") as file:
                total += int(file.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    with open(f"/proc/{pid}/stat") as file:
        text = file.read()
    fields = text[text.rindex(")") + 2 :].split()
    # stat(5): utime and stime are fields 14 and 15; fields[0] is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_busy_seconds() -> list[float] | None:
    """Busy time (not idle, not iowait) of each CPU so far, from ``/proc/stat``; ``None`` elsewhere."""
    try:
        with open("/proc/stat") as file:
            lines = [line.split() for line in file if line.startswith("cpu") and line[3].isdigit()]
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    busy = []
    for fields in lines:
        values = [int(v) for v in fields[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        # guest time is already counted in user time
        busy.append((sum(values[:8]) - idle) / tick)
    return busy


def percentiles(samples: array.array[int], scale: float) -> dict[str, float]:
    """Nearest-rank percentiles of ``samples`` (and max, mean), times ``scale``."""
    n = len(samples)
    if not n:
        return {}
    try:
        import numpy
    except ImportError:
        ordered: Any = sorted(samples)
        total = float(sum(samples))
    else:
        values = numpy.frombuffer(samples, dtype=numpy.int64).copy()
        values.sort()
        ordered = values
        total = float(values.sum(dtype=numpy.float64))

    def rank(p: float) -> float:
        return float(ordered[max(0, math.ceil(p * n) - 1)]) * scale

    return {
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "p999": rank(0.999),
        "max": float(ordered[n - 1]) * scale,
        "mean": total / n * scale,
    }
