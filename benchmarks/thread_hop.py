"""What a helper thread for the backplane would cost: one message from asyncio to a ``Loop`` thread.

Usage::

    flock /tmp/wsfast-bench.lock python benchmarks/thread_hop.py [--messages N]

``wsfast.aio`` runs the backplane on the asyncio loop itself. The
alternative, a thread running a :class:`wsfast.loop.Loop`, would hand every
publish over with ``call_soon_threadsafe`` (and every delivery back the same
way). This measures that hand-over alone: the process's CPU time and the
wall-clock time per message, for messages sent in bursts of 256 from a
coroutine, beside a plain function call.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from pathlib import Path

try:
    import wsfast
except ImportError:  # a plain checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import wsfast

from wsfast.loop import Loop


async def hand_over(loop: Loop, count: int) -> tuple[float, float]:
    """CPU and wall-clock seconds to have ``count`` messages taken in ``loop``'s thread."""
    done = threading.Event()
    taken = 0

    def take(message: bytes) -> None:
        nonlocal taken
        taken += 1
        if taken == count:
            done.set()

    send = loop.call_soon_threadsafe
    cpu, wall = time.process_time(), time.perf_counter()
    for index in range(count):
        send(take, b"x")
        if index % 256 == 255:
            await asyncio.sleep(0)  # the asyncio loop goes on with its own work
    await asyncio.get_running_loop().run_in_executor(None, done.wait)
    return time.process_time() - cpu, time.perf_counter() - wall


def direct(count: int) -> float:
    """CPU seconds for ``count`` plain calls that do the same."""
    kept: list[bytes] = []
    take = kept.append
    cpu = time.process_time()
    for _ in range(count):
        take(b"x")
    return time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000, help="messages handed over (default: %(default)s)")
    args = parser.parse_args(argv)
    loop = Loop()
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        cpu, wall = asyncio.run(hand_over(loop, args.messages))
    finally:
        loop.stop()
        thread.join()
        loop.close()
    per = 1e6 / args.messages
    print(f"wsfast {wsfast.__version__} ({wsfast.IMPLEMENTATION}), {args.messages} messages")
    print(f"asyncio -> Loop thread: {cpu * per:.2f} µs CPU, {wall * per:.2f} µs wall-clock per message")
    print(f"plain call:             {direct(args.messages) * per:.2f} µs CPU per message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
