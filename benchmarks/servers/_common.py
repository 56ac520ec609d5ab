"""What every benchmark server shares: its command line, the broadcast payload, the ready line.

Each server is started as ``python benchmarks/servers/NAME_server.py --port 0
--mode echo|broadcast`` and prints ``LISTENING <port>`` on stdout once it
accepts connections.

- ``echo``: every message comes back unchanged (binary stays binary, text
  stays text).
- ``broadcast``: every connection is a subscriber. A text message from any
  client makes the server broadcast binary messages of ``--size`` bytes
  (default 256) to every connected client, in one of three patterns:

  - ``"burst N"``: N messages, one after the other, in the same loop
    iteration (a producer that publishes batches);
  - ``"trickle N"``: N messages, one per loop iteration (the callback
    broadcasts one message and yields: ``await asyncio.sleep(0)``, or a
    ``call_later(0)`` in wsfast's loop; a feed whose messages arrive one at
    a time);
  - ``"rate R"``: R messages per second from then on, on a timer that
    catches up when it is late (R x clients deliveries per second).

  Each message starts with ``time.time_ns()`` as a big-endian uint64,
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
from collections.abc import Awaitable, Callable
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
    settle_malloc()
    logging.disable(logging.CRITICAL)
    return args


def raise_fd_limit() -> None:
    """Allow a thousand clients and more."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))


def settle_malloc() -> None:
    """Put glibc's dynamic mmap threshold above asyncio's 256 KiB reads, the same way in every server.

    asyncio's selector transport reads with ``sock.recv(256 KiB)``: a request
    above glibc's mmap threshold (128 KiB at start, raised by start-up's own
    frees to about 204 KiB) is served from the heap's top chunk if that has
    room, else mapped, shrunk by ``mremap`` and unmapped, once per read; each
    state perpetuates itself. Freeing one 1 MiB mapped block raises the
    threshold to 1 MiB, as glibc does after any larger free, so every read
    comes from the heap in every server. Other allocators just allocate and free.
    ``WSFAST_BENCH_MALLOC=as-is`` leaves the allocator as start-up left it.
    """
    if os.environ.get("WSFAST_BENCH_MALLOC") == "as-is":
        return
    block = bytes(1 << 20)
    del block


PATTERNS = ("burst", "trickle", "rate")


def parse_trigger(message: str | bytes) -> tuple[str, int] | None:
    """``(pattern, N)`` for a ``"burst N"``, ``"trickle N"`` or ``"rate R"`` text message, else None."""
    if type(message) is not str:
        return None
    pattern, _, count = message.partition(" ")
    if pattern not in PATTERNS or not count.isdigit() or int(count) <= 0:
        return None
    return pattern, int(count)


def owed(rate: int, elapsed: float, sent: int) -> int:
    """How many messages a ``"rate R"`` publisher owes ``elapsed`` seconds after it started."""
    return int(elapsed * rate) + 1 - sent


async def publish_async(pattern: str, count: int, publish_one: Callable[[], Awaitable[None]]) -> None:
    """Run a trigger's pattern on asyncio, ``publish_one()`` broadcasting one message."""
    import asyncio

    if pattern == "burst":
        for _ in range(count):
            await publish_one()
    elif pattern == "trickle":
        for _ in range(count):
            await publish_one()
            await asyncio.sleep(0)
    else:
        loop = asyncio.get_running_loop()
        start, sent = loop.time(), 0
        while True:
            for _ in range(owed(count, loop.time() - start, sent)):
                await publish_one()
                sent += 1
            await asyncio.sleep(max(0.0, start + sent / count - loop.time()))


def ready(port: int) -> None:
    """Tell the runner where the server listens."""
    sys.stdout.write(f"LISTENING {port} {os.getpid()}\n")
    sys.stdout.flush()
