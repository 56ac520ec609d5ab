"""Cross-node fan-out through the Redis backplane, beside single-node publish.

Usage::

    flock /tmp/wsfast-bench.lock python benchmarks/backplane.py [--messages N] [--rate R] [--size S]

Setups, each in fresh processes: one node without a backplane (the
baseline), then 1, 2 and 3 nodes on one redis-server (started here on a free
127.0.0.1 port, no persistence), then 1 and 2 ``wsfast.aio`` nodes (uvloop
when installed) on it. Every node has one subscriber, a separate process;
node 1 publishes. Two runs per setup:

- flood: node 1 publishes ``--messages`` messages as fast as its loop can
  (256 per iteration); the figure is messages/s received by the slowest
  subscriber, from the first publish to its last message, best of
  ``--repeat`` runs, with the CPU time per message that each node and
  redis-server spent in that run (on a loaded machine, wall-clock rates
  depend on the scheduler; CPU time per message does much less).
- paced: ``--rate`` messages/s for ``--messages / 10`` messages; the figures
  are the latency from publish to receipt (p50/p99), for node 1's own
  subscriber and for the others' (cross-node).

Messages carry their publication time (``time.monotonic_ns()``, one clock for
every process of the machine). Everything is on loopback: the network here is
the kernel's; on a real network add its round trip to the cross-node latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

try:
    import wsfast
except ImportError:  # a plain checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import wsfast

import wsfast.aio
from wsfast.server import Handler, Server, ServerConnection

TOPIC = "bench"
STAMP = struct.Struct(">Qq")  # sequence, time.monotonic_ns() at publish
TIMEOUT = 60.0


# --- the processes ---------------------------------------------------------------


class BenchNode(Handler):
    """Subscribes every client but the controller; publishes on ``publish N RATE SIZE``.

    Args:
        server: a ``wsfast.Server`` or a ``wsfast.aio.Server`` (set before the first message).
        call_later: the server loop's ``call_later(delay, callback, *args)``.
    """

    def __init__(self, server: Any, call_later: Callable[..., Any]) -> None:
        self.server = server
        self.call_later = call_later

    def on_open(self, ws: ServerConnection) -> None:
        if ws.request is not None and ws.request.path == "/subscribe":
            ws.subscribe(TOPIC)

    def on_message(self, ws: ServerConnection, message: str | bytes) -> None:
        _, count, rate, size = str(message).split()
        self._publish(0, int(count), float(rate), int(size), time.monotonic())

    def _publish(self, sequence: int, count: int, rate: float, size: int, started: float) -> None:
        padding = bytes(max(0, size - STAMP.size))
        publish = self.server.publish
        if rate:
            due = min(count, int((time.monotonic() - started) * rate) + 1)
        else:
            due = min(count, sequence + 256)
        while sequence < due:
            publish(TOPIC, STAMP.pack(sequence, time.monotonic_ns()) + padding)
            sequence += 1
        if sequence < count:
            self.call_later(0.0005 if rate else 0.0, self._publish, sequence, count, rate, size, started)


def run_node(port: int, backplane: str, kind: str = "thread") -> None:
    if kind == "aio":
        asyncio_loop().run_until_complete(run_aio_node(port, backplane))
        return
    server = Server(host="127.0.0.1", port=port, backplane=backplane or None, ping_interval=None)
    server.handler = BenchNode(server, server.call_later)
    print("ready", flush=True)
    server.serve_forever()


def asyncio_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (as ``wsfast.aio``'s benchmarks run), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def asyncio_loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


async def run_aio_node(port: int, backplane: str) -> None:
    handler = BenchNode(None, asyncio.get_running_loop().call_later)
    async with wsfast.aio.serve(handler, "127.0.0.1", port, backplane=backplane or None, ping_interval=None) as server:
        handler.server = server
        print("ready", flush=True)
        await server.wait_closed()


def run_subscriber(url: str, count: int) -> None:
    """Receive ``count`` messages (or stop after 5 s of silence); print what was seen as JSON."""
    connection = wsfast.connect(url)
    print("ready", flush=True)
    latencies: list[int] = []
    first_stamp = last_receipt = 0
    cpu = 0.0
    with contextlib.suppress(TimeoutError):
        while len(latencies) < count:
            message = connection.recv(timeout=5.0)
            now = time.monotonic_ns()
            sequence, stamp = STAMP.unpack_from(message)
            if not latencies:
                first_stamp = stamp
                cpu = time.process_time()
            latencies.append(now - stamp)
            last_receipt = now
    cpu = time.process_time() - cpu
    connection.close()
    result = {"received": len(latencies), "first_stamp": first_stamp, "last": last_receipt, "cpu": cpu}
    print(json.dumps({**result, "ns": latencies}))


# --- the controller ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(*args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{args} did not start")
    return process


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, int]]:
    """A redis-server on a free port, without persistence: yields its URL and PID."""
    program = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(
            [
                program,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                directory,
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + TIMEOUT
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0", process.pid
        finally:
            stop(process)


def subscribed_on_redis(redis_url: str, nodes: int) -> bool:
    import redis

    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if dict(client.pubsub_numsub(f"wsfast:{TOPIC}")).get(f"wsfast:{TOPIC}".encode(), 0) >= nodes:
            return True
        time.sleep(0.02)
    return False


def run_setup(
    nodes: int, redis: tuple[str, int] | None, count: int, rate: float, size: int, kind: str = "thread"
) -> tuple[list[dict[str, Any]], list[float]]:
    """One publish run: ``nodes`` nodes of ``kind`` (``thread``: ``wsfast.Server``; ``aio``), one subscriber each.

    Returns:
        Each subscriber's JSON, and the CPU seconds spent during the run by
        each node and (last) by redis-server.
    """
    redis_url, redis_pid = redis if redis is not None else ("", 0)
    ports = [free_port() for _ in range(nodes)]
    servers = [spawn("node", str(port), redis_url, kind) for port in ports]
    subscribers: list[subprocess.Popen[str]] = []
    try:
        subscribers = [spawn("subscribe", f"ws://127.0.0.1:{port}/subscribe", str(count)) for port in ports]
        if redis_url and not subscribed_on_redis(redis_url, nodes):
            raise RuntimeError("the nodes did not subscribe on Redis")
        time.sleep(0.2)
        control = wsfast.connect(f"ws://127.0.0.1:{ports[0]}/control")
        pids = [server.pid for server in servers] + ([redis_pid] if redis_pid else [])
        cpu_before = [cpu_seconds(pid) for pid in pids]
        control.send(f"publish {count} {rate} {size}")
        results = []
        for subscriber in subscribers:
            out, _ = subscriber.communicate(timeout=TIMEOUT + count / 1000)
            results.append(json.loads(out.strip().splitlines()[-1]))
        control.close()
        cpu = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before, strict=True)]
        return results, cpu if redis_pid else [*cpu, 0.0]
    finally:
        for process in [*subscribers, *servers]:
            stop(process)


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


def measure(
    label: str, nodes: int, redis: tuple[str, int] | None, args: argparse.Namespace, kind: str = "thread"
) -> dict[str, Any]:
    """The best of ``args.repeat`` flood runs, then one paced run."""
    best: dict[str, Any] = {"msg/s": 0.0}
    for _ in range(args.repeat):
        flood, cpu = run_setup(nodes, redis, args.messages, 0.0, args.size, kind)
        slowest = min(r["received"] / max(1e-9, (r["last"] - r["first_stamp"]) / 1e9) for r in flood)
        if slowest > best["msg/s"]:
            lost = sum(args.messages - r["received"] for r in flood)
            subscribers = max(r["cpu"] for r in flood)
            best = {"msg/s": slowest, "lost": lost, "cpu": cpu, "subscriber cpu": subscribers}
    paced, _ = run_setup(nodes, redis, args.messages // 10, args.rate, args.size, kind)
    local = paced[0]["ns"]
    remote = [ns for r in paced[1:] for ns in r["ns"]]
    return {
        "setup": label,
        **best,
        "local p50": percentile(local, 0.5),
        "local p99": percentile(local, 0.99),
        "remote p50": percentile(remote, 0.5) if remote else None,
        "remote p99": percentile(remote, 0.99) if remote else None,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["node"]:
        run_node(int(argv[1]), argv[2], argv[3])
        return 0
    if argv[:1] == ["subscribe"]:
        run_subscriber(argv[1], int(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000, help="messages per flood run (default: %(default)s)")
    parser.add_argument("--rate", type=float, default=2000.0, help="paced run's messages/s (default: %(default)s)")
    parser.add_argument("--size", type=int, default=64, help="message size in bytes, >= 16 (default: %(default)s)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="flood runs per setup, the best kept (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    rows = [measure("1 node, no backplane", 1, None, args)]
    with redis_server() as redis:
        for nodes in (1, 2, 3):
            rows.append(measure(f"{nodes} node{'s' * (nodes > 1)}, Redis", nodes, redis, args))
        aio = f"wsfast.aio on {asyncio_loop_name()}"
        for nodes in (1, 2):
            rows.append(measure(f"{nodes} node{'s' * (nodes > 1)}, Redis, {aio}", nodes, redis, args, "aio"))
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores. "
        f"CPython {platform.python_version()}, wsfast {wsfast.__version__} ({wsfast.IMPLEMENTATION}), "
        f"Redis {redis_version.removeprefix('v=')}. Loopback. {args.messages} x {args.size} B flood, "
        f"{args.messages // 10} at {args.rate:g} msg/s paced; one subscriber per node."
    )
    base = rows[0]["msg/s"]
    print(
        "| setup | msg/s (slowest subscriber) | vs. | lost | local p50/p99 ms | remote p50/p99 ms "
        "| CPU µs/msg: publishing node / other nodes / redis / busiest subscriber |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        remote = "-" if row["remote p50"] is None else f"{row['remote p50']:.2f} / {row['remote p99']:.2f}"
        per_message = [seconds / args.messages * 1e6 for seconds in row["cpu"]]
        publishing, others, redis_cost = per_message[0], per_message[1:-1], per_message[-1]
        other_nodes = ", ".join(f"{cost:.0f}" for cost in others) or "-"
        subscriber = row["subscriber cpu"] / args.messages * 1e6
        print(
            f"| {row['setup']} | {row['msg/s']:,.0f} | {row['msg/s'] / base:.2f} | {row['lost']} | "
            f"{row['local p50']:.2f} / {row['local p99']:.2f} | {remote} "
            f"| {publishing:.0f} / {other_nodes} / {redis_cost:.1f} / {subscriber:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
