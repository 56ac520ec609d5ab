"""What one hostile client costs a ``wsfast.Server``: RSS growth and CPU seconds.

    python benchmarks/servers/hostile.py ping-flood      # pings as fast as it can, never reads
    python benchmarks/servers/hostile.py push-no-read    # 1 KiB messages to an echo server, never reads

The server (``Server(write_limit=64 * 1024)``, echo handler) runs in its own
process; the client sends for ``--seconds`` (5 by default) without reading a
byte, then the server's RSS growth and CPU time over that window are read
from ``/proc``. Run it with ``PYTHONPATH`` pointing at another tree of wsfast
to measure that tree instead.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import subprocess
import sys
import time

WRITE_LIMIT = 64 * 1024
REQUEST = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def masked(opcode: int, payload: bytes) -> bytes:
    """A client frame with an all-zero mask key (the payload goes as is)."""
    n = len(payload)
    length = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return bytes([0x80 | opcode]) + length + bytes(4) + payload


CLIENTS = {
    "ping-flood": masked(0x9, bytes(125)),
    "push-no-read": masked(0x2, bytes(1024)),
}


def serve() -> None:
    """The server process: print the port, then serve until killed."""
    from wsfast.server import Handler, Server, ServerConnection

    class Echo(Handler):
        def on_message(self, ws: ServerConnection, message: str | bytes) -> None:
            ws.send(message)

    server = Server(Echo(), port=0, write_limit=WRITE_LIMIT, ping_interval=None)
    print(server.port, flush=True)
    server.serve_forever()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def attack(port: int, frame: bytes, seconds: float) -> int:
    """Send ``frame`` over and over for ``seconds`` without reading; return the bytes sent."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(REQUEST)
    sock.setblocking(False)
    chunk = memoryview(frame * (64 * 1024 // len(frame)))
    pending, sent = chunk, 0
    deadline = time.monotonic() + seconds
    try:
        while (left := deadline - time.monotonic()) > 0:
            select.select([], [sock], [], left)
            try:
                n = sock.send(pending)
            except BlockingIOError:
                continue
            except OSError:
                break  # the server closed the connection
            sent += n
            pending = pending[n:] or chunk
    finally:
        sock.close()
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("client", choices=sorted(CLIENTS))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    server = subprocess.Popen([sys.executable, __file__, args.client, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        rss, cpu = rss_kib(server.pid), cpu_seconds(server.pid)
        sent = attack(port, CLIENTS[args.client], args.seconds)
        rss_growth, cpu_used = rss_kib(server.pid) - rss, cpu_seconds(server.pid) - cpu
    finally:
        server.kill()
        server.wait()
    print(
        f"{args.client}: client sent {sent / 2**20:.1f} MiB in {args.seconds:g} s; "
        f"server RSS +{rss_growth / 1024:.1f} MiB, CPU {cpu_used:.2f} s"
    )


if __name__ == "__main__":
    main()
