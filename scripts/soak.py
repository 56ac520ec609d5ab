"""Soak tests of ``wsfast.Server``: memory per connection, leaks, a long feed.

Not part of the test suite: each mode runs for minutes or hours. The server
runs in a child process of its own (``python scripts/soak.py _serve``) so
that its RSS and CPU, read from ``/proc``, are the server's alone; the
clients run in this process on raw sockets and one selector, framed by
wsfast's ``FrameParser``.

Modes::

    python scripts/soak.py idle [--connections 10000]
        open N idle connections; print the server's RSS before, after, and
        per connection.
    python scripts/soak.py cycles [--cycles 100000] [--every 5000]
        connect, handshake, close (a close frame, then the server's close
        and EOF), N times in a row; print the server's RSS every few cycles.
    python scripts/soak.py feed --duration 3600 [--clients 1000] [--rate 10] [--output DIR]
        every client subscribes to one topic the server publishes to from a
        timer, ``rate`` messages/s of 64-256 random bytes, each starting
        with its send time; every 10 s, sample the server's RSS and CPU and
        the delivery latency (p50/p99); write DIR/feed.json and DIR/feed.png.
    python scripts/soak.py plot DIR/feed.json
        redraw DIR/feed.png from the samples.

Each mode prints its figures and exits 1 if a client was refused, dropped, or
lost messages.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import selectors
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsfast.kernels import FrameParser, build_frame

SAMPLE_PERIOD = 10.0
HANDSHAKE_TIMEOUT = 30.0
TOPIC = "feed"
REQUEST = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
CLOSE_FRAME = build_frame(8, b"\x03\xe8", mask_key=b"\x01\x02\x03\x04")
_STAMP = struct.Struct("!dQ")  # send time (time.time()) and sequence number
_PING, _PONG, _CLOSE, _BINARY = 9, 10, 8, 2


class SoakError(Exception):
    """The server refused, dropped or starved a client."""


# --- the server process ------------------------------------------------------------


def serve(rate: float, sizes: tuple[int, int], max_connections: int) -> None:
    """Run a server that subscribes every client to the feed; print its port, serve until SIGTERM.

    Args:
        rate: messages published per second (0: none, idle clients).
        sizes: the smallest and largest payload, in bytes.
        max_connections: the server's connection limit.
    """
    import wsfast

    server = wsfast.Server(port=0, max_connections=max_connections, backlog=4096)

    @server.on_open
    def subscribe(ws: wsfast.ServerConnection) -> None:
        ws.subscribe(TOPIC)

    if rate:
        period = 1.0 / rate
        rng = random.Random(0)
        sequence = 0
        deadline = time.monotonic()

        def publish() -> None:
            nonlocal sequence, deadline
            stamp = _STAMP.pack(time.time(), sequence)
            server.publish(TOPIC, stamp + rng.randbytes(rng.randint(*sizes) - len(stamp)))
            sequence += 1
            deadline += period  # an absolute schedule: no drift
            server.call_later(max(0.0, deadline - time.monotonic()), publish)

        server.call_later(period, publish)
    print(server.port, flush=True)
    server.serve_forever()


@dataclass
class ServerProcess:
    """A soak server in a child process, measured from outside through ``/proc``."""

    process: subprocess.Popen[str]
    port: int
    _ticks: float = field(default=float(os.sysconf("SC_CLK_TCK")))

    @classmethod
    def start(
        cls, rate: float = 0.0, sizes: tuple[int, int] = (64, 256), max_connections: int = 10000
    ) -> ServerProcess:
        """Start ``serve()`` in a child process and wait for its port."""
        command = [sys.executable, __file__, "_serve", str(rate), str(sizes[0]), str(sizes[1]), str(max_connections)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            process.kill()
            raise SoakError("the server process did not start")
        return cls(process, int(line))

    def rss_mib(self) -> float:
        """The server's resident set size, in MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise SoakError("no VmRSS in /proc: is the server still running?")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / self._ticks

    def stop(self) -> None:
        """Ask the server to shut down; kill it if it has not within 10 s."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- raw clients ---------------------------------------------------------------------


@dataclass
class Client:
    """One raw-socket WebSocket client, open once :func:`connect` returns it."""

    sock: socket.socket
    parser: FrameParser
    next_sequence: int | None = None
    lost: int = 0

    def count(self, sequence: int) -> None:
        """Note a feed message's sequence number; a gap since the last one counts as lost."""
        if self.next_sequence is not None:
            self.lost += sequence - self.next_sequence
        self.next_sequence = sequence + 1


def connect(port: int) -> tuple[Client, list[Any]]:
    """Open a connection and complete the handshake (blocking).

    Returns:
        The client, its socket now non-blocking, and the frames that came
        with the handshake response.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=HANDSHAKE_TIMEOUT)
    sock.sendall(REQUEST)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            sock.close()
            raise SoakError(f"the server closed during the handshake after {head!r}")
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101 "):
        sock.close()
        raise SoakError(f"handshake refused: {head.splitlines()[0]!r}")
    sock.setblocking(False)
    client = Client(sock, FrameParser(masked=False))
    return client, client.parser.feed(rest)


def close(client: Client) -> None:
    """Send a close frame, wait for the server's close and EOF (blocking), close the socket."""
    sock = client.sock
    sock.setblocking(True)
    sock.settimeout(HANDSHAKE_TIMEOUT)
    sock.sendall(CLOSE_FRAME)
    while sock.recv(4096):
        pass
    sock.close()


def raise_file_limit(needed: int) -> int:
    """Raise the soft ``RLIMIT_NOFILE`` towards ``needed``, within the hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


# --- modes ------------------------------------------------------------------------------


def idle(connections: int) -> dict[str, Any]:
    """Open ``connections`` idle clients; measure the server's RSS per connection."""
    limit = raise_file_limit(2 * connections + 100)
    if limit < connections + 100:
        raise SoakError(f"RLIMIT_NOFILE allows {limit} files: too few for {connections} connections")
    server = ServerProcess.start(max_connections=connections + 1)
    clients = []
    try:
        time.sleep(1.0)
        before = server.rss_mib()
        started = time.monotonic()
        for _ in range(connections):
            clients.append(connect(server.port)[0])
        opened = time.monotonic() - started
        time.sleep(2.0)  # let the server settle (handshake buffers freed)
        after = server.rss_mib()
        for client in clients:
            client.sock.close()
    finally:
        server.stop()
    return {
        "connections": connections,
        "open_seconds": round(opened, 1),
        "server_rss_before_mib": round(before, 1),
        "server_rss_after_mib": round(after, 1),
        "server_kib_per_connection": round((after - before) * 1024 / connections, 2),
    }


def cycles(count: int, every: int) -> dict[str, Any]:
    """Connect and close ``count`` times; sample the server's RSS every ``every`` cycles."""
    server = ServerProcess.start()
    samples = []
    try:
        started = time.monotonic()
        for cycle in range(count + 1):
            if cycle % every == 0:
                samples.append({"cycles": cycle, "server_rss_mib": round(server.rss_mib(), 2)})
                print(json.dumps(samples[-1]), flush=True)
            if cycle < count:
                close(connect(server.port)[0])
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    # Flat means: nothing grows after the first `every` cycles (the warm-up).
    warm = samples[min(1, len(samples) - 1)]["server_rss_mib"]
    last = samples[-1]["server_rss_mib"]
    return {
        "cycles": count,
        "seconds": round(elapsed, 1),
        "server_rss_first_mib": samples[0]["server_rss_mib"],
        "server_rss_after_warmup_mib": warm,
        "server_rss_last_mib": last,
        "server_rss_growth_after_warmup_mib": round(last - warm, 2),
        "server_rss_max_mib": max(sample["server_rss_mib"] for sample in samples),
        "samples": samples,
    }


@dataclass
class Window:
    """What the clients saw during one sampling period."""

    latencies: list[float] = field(default_factory=list)
    messages: int = 0


def _handle(client: Client, frames: list[Any], on_message: Callable[[Client, bytes], None]) -> None:
    """Pong pings, hand binary payloads to ``on_message``; a close is a :class:`SoakError`."""
    for frame in frames:
        if frame.opcode == _BINARY:
            on_message(client, frame.payload)
        elif frame.opcode == _PING:
            client.sock.send(build_frame(_PONG, frame.payload, mask_key=os.urandom(4)))
        elif frame.opcode == _CLOSE:
            raise SoakError(f"the server closed a client: {frame.payload!r}")


def _pump(selector: selectors.BaseSelector, until: float, on_message: Callable[[Client, bytes], None]) -> None:
    """Read every registered client until ``until`` (monotonic), see :func:`_handle`.

    Polls at least once, so an ``until`` in the past reads what is ready.
    """
    while True:
        remaining = until - time.monotonic()
        for key, _ in selector.select(max(remaining, 0.0)):
            client: Client = key.data
            data = client.sock.recv(262144)
            if not data:
                raise SoakError("the server closed a client")
            _handle(client, client.parser.feed(data), on_message)
        if remaining <= 0:
            return


def _percentile(values: list[float], fraction: float) -> float:
    return (
        statistics.quantiles(values, n=1000, method="inclusive")[round(fraction * 1000) - 1] if len(values) > 1 else 0.0
    )


def feed(clients_count: int, rate: float, duration: float, sizes: tuple[int, int], output: Path) -> dict[str, Any]:
    """Run the feed for ``duration`` seconds; write JSON and a PNG plot to ``output``."""
    raise_file_limit(2 * clients_count + 100)
    server = ServerProcess.start(rate=rate, sizes=sizes, max_connections=clients_count + 1)
    selector = selectors.DefaultSelector()
    window = Window()

    def on_message(client: Client, payload: bytes) -> None:
        sent, sequence = _STAMP.unpack_from(payload)
        window.latencies.append(time.time() - sent)
        window.messages += 1
        client.count(sequence)

    result: dict[str, Any] = {
        "command": "python scripts/soak.py " + " ".join(sys.argv[1:]),
        "clients": clients_count,
        "rate_per_client": rate,
        "payload_bytes": list(sizes),
        "sample_period_s": SAMPLE_PERIOD,
        "samples": [],
    }
    clients = []
    try:
        for _ in range(clients_count):
            client, frames = connect(server.port)
            selector.register(client.sock, selectors.EVENT_READ, client)
            clients.append(client)
            _handle(client, frames, on_message)
            _pump(selector, 0.0, on_message)  # the open clients must answer pings meanwhile
        window = Window()  # count from here: every client is subscribed
        started = time.monotonic()
        cpu = server.cpu_seconds()
        own_cpu = sum(os.times()[:2])
        next_sample = started + SAMPLE_PERIOD
        while next_sample <= started + duration + 1e-9:
            _pump(selector, next_sample, on_message)
            now = time.monotonic()
            server_cpu, client_cpu = server.cpu_seconds(), sum(os.times()[:2])
            latencies = window.latencies
            sample = {
                "t_s": round(now - started, 1),
                "server_rss_mib": round(server.rss_mib(), 2),
                "server_cpu_percent": round(100 * (server_cpu - cpu) / SAMPLE_PERIOD, 1),
                "clients_cpu_percent": round(100 * (client_cpu - own_cpu) / SAMPLE_PERIOD, 1),
                "messages": window.messages,
                "expected_messages": round(clients_count * rate * SAMPLE_PERIOD),
                "latency_p50_ms": round(1000 * _percentile(latencies, 0.5), 3),
                "latency_p99_ms": round(1000 * _percentile(latencies, 0.99), 3),
                "latency_max_ms": round(1000 * max(latencies, default=0.0), 3),
            }
            result["samples"].append(sample)
            print(json.dumps(sample), flush=True)
            cpu, own_cpu = server_cpu, client_cpu
            window = Window()
            next_sample += SAMPLE_PERIOD
            _write(result, output)
        result["lost_messages"] = sum(client.lost for client in clients)
    finally:
        for client in clients:
            client.sock.close()
        selector.close()
        server.stop()
    _write(result, output)
    plot(result, output / "feed.png")
    return result


def _write(result: dict[str, Any], output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "feed.json").write_text(json.dumps(result, indent=1) + "\n")


def plot(result: dict[str, Any], path: Path) -> None:
    """Plot a feed run's samples against time to a PNG: RSS, CPU, delivery rate, latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    minutes = [sample["t_s"] / 60 for sample in samples]
    period = result["sample_period_s"]

    def series(name: str, scale: float = 1.0) -> list[float]:
        return [sample[name] * scale for sample in samples]

    figure, (rss, cpu, rate, latency) = plt.subplots(4, 1, sharex=True, figsize=(9, 10))
    figure.suptitle(
        f"wsfast.Server feed: {result['clients']} clients x {result['rate_per_client']:g} msg/s, "
        f"{result['payload_bytes'][0]}-{result['payload_bytes'][1]} B"
    )
    rss.plot(minutes, series("server_rss_mib"))
    rss.set_ylabel("server RSS (MiB)")
    rss.set_ylim(0, 1.25 * max(series("server_rss_mib")))
    cpu.plot(minutes, series("server_cpu_percent"), label="server")
    cpu.plot(minutes, series("clients_cpu_percent"), label="clients (load generator)")
    cpu.set_ylabel("CPU (% of one core)")
    cpu.set_ylim(bottom=0)
    cpu.legend()
    rate.plot(minutes, series("messages", 1 / period), label="delivered")
    rate.plot(minutes, series("expected_messages", 1 / period), label="scheduled")
    rate.set_ylabel("messages/s, all clients")
    rate.set_ylim(bottom=0)
    rate.legend()
    latency.plot(minutes, series("latency_p50_ms"), label="p50")
    latency.plot(minutes, series("latency_p99_ms"), label="p99")
    latency.set_ylabel("delivery latency (ms)")
    latency.set_xlabel("minutes")
    latency.set_ylim(bottom=0)
    latency.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run one mode, print its figures; 1 on a :class:`SoakError`."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_serve"]:
        rate, smallest, largest, max_connections = argv[1:]
        serve(float(rate), (int(smallest), int(largest)), int(max_connections))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    idle_mode = modes.add_parser("idle", help="RSS per idle connection")
    idle_mode.add_argument("--connections", type=int, default=10000)
    cycles_mode = modes.add_parser("cycles", help="RSS over connect/close cycles")
    cycles_mode.add_argument("--cycles", type=int, default=100000)
    cycles_mode.add_argument("--every", type=int, default=5000, help="cycles between RSS samples")
    feed_mode = modes.add_parser("feed", help="a long feed: RSS, CPU, latency every 10 s")
    feed_mode.add_argument("--duration", type=float, required=True, help="seconds")
    feed_mode.add_argument("--clients", type=int, default=1000)
    feed_mode.add_argument("--rate", type=float, default=10.0, help="messages per second per client")
    feed_mode.add_argument("--min-size", type=int, default=64)
    feed_mode.add_argument("--max-size", type=int, default=256)
    feed_mode.add_argument("--output", type=Path, default=Path("benchmarks/soak"))
    plot_mode = modes.add_parser("plot", help="redraw the PNG of a feed run from its JSON")
    plot_mode.add_argument("json", type=Path, help="a feed.json; the PNG is written next to it")
    options = parser.parse_args(argv)
    try:
        if options.mode == "idle":
            result = idle(options.connections)
        elif options.mode == "plot":
            plot(json.loads(options.json.read_text()), options.json.with_suffix(".png"))
            return 0
        elif options.mode == "cycles":
            result = cycles(options.cycles, options.every)
            del result["samples"]
        else:
            if not _STAMP.size <= options.min_size <= options.max_size:
                parser.error(
                    f"need {_STAMP.size} <= --min-size <= --max-size, got {options.min_size}, {options.max_size}"
                )
            if options.duration < SAMPLE_PERIOD:
                parser.error(f"--duration must be at least {SAMPLE_PERIOD:g} s, got {options.duration:g}")
            result = feed(
                options.clients, options.rate, options.duration, (options.min_size, options.max_size), options.output
            )
            del result["samples"]
    except SoakError as exc:
        print(f"soak {options.mode} failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1))
    lost = result.get("lost_messages", 0)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
