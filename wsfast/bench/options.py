"""What ``wsfast bench`` runs: the options of one run."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MODES", "BenchOptions"]

#: The load patterns (see :mod:`wsfast.bench`).
MODES = ("echo", "pipeline", "feed")


@dataclass
class BenchOptions:
    """What to run; the command line's options (see ``wsfast bench --help``)."""

    url: str
    connections: int = 16
    size: int = 32
    duration: float | None = 5.0
    count: int | None = None
    mode: str = "echo"
    depth: int = 1
    rate: float | None = None
    text: bool = False
    timestamped: bool = False
    trigger: str | None = None
    trigger_every: int = 1
    warmup: float = 0.0
    timeout: float = 10.0
    server_pid: int | None = None
    insecure: bool = False
    progress: bool = True
