"""What every benchmark server shares: its command line, the broadcast payload, the ready line.

Each server is started as ``python benchmarks/servers/NAME_server.py --port 0
--mode echo|broadcast`` and prints ``LISTENING <port>`` on stdout once it
accepts connections.

- ``echo``: every message comes back unchanged (binary stays binary, text
  stays text).
- ``broadcast``: every connection is a subscriber. A text message
  ``"burst N"`` from any client makes the server broadcast N binary messages
  of ``--size`` bytes (default 256) to every connected client, one after the
  other. Each message starts with ``time.time_ns()`` as a big-endian uint64,
  taken just before that message is handed to the library, so ``wsfast
  bench --mode feed --timestamped --trigger "burst N" --trigger-every N``
  measures delivered messages/s and latency from the moment of publication.
  Other messages are ignored.

Compression is off everywhere, and so are the servers' own keepalive pings
(runs last seconds). Nothing is logged per connection.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

# Run as a script from a checkout: make the checkout's wsfast importable.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

time_ns = time.time_ns


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", choices=("echo", "broadcast"), default="echo")
    parser.add_argument("--size", type=int, default=256, help="broadcast message size (>= 8)")
    args = parser.parse_args()
    if args.size < 8:
        parser.error("--size must be at least 8")
    raise_fd_limit()
    logging.disable(logging.CRITICAL)
    return args


def raise_fd_limit() -> None:
    """Allow a thousand clients and more."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))


def burst_count(message: str | bytes) -> int:
    """N for a ``"burst N"`` text message, else 0."""
    if type(message) is str and message.startswith("burst "):
        try:
            return max(0, int(message[6:]))
        except ValueError:
            return 0
    return 0


def ready(port: int) -> None:
    """Tell the runner where the server listens."""
    sys.stdout.write(f"LISTENING {port} {os.getpid()}\n")
    sys.stdout.flush()
