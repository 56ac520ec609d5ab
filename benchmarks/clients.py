"""Client CPU per message: ``wsfast bench``'s generator and ``wsfast.connect`` beside a picows client.

Every client runs the same closed-loop echo against the same echo server
(``servers/picows_server.py --mode echo`` on uvloop, started here): C
connections, one S-byte binary message in flight on each, N messages
received in all. Contenders, each in its own process:

- ``wsfast-bench``: ``python -m wsfast bench URL -c C -s S -n N`` (the load
  generator, on ``wsfast.loop.Poller``).
- ``picows``: a picows client on uvloop in its own idiom (a ``WSListener``
  that sends the next message from ``on_ws_frame``), C connections.
- ``wsfast.connect``: the blocking client, ``send`` then ``recv`` in a loop
  (one connection only: it is a thread-per-connection client).

What is measured is the client process' own cost, run twice, with N and 2N
messages; the difference, divided by N, cancels start-up, imports and the
handshakes. By default that is CPU time (user + system, ``getrusage`` of the
child): noisy on a loaded machine, so take the median of ``--repeat`` runs.
``--callgrind`` counts the client's user-space instructions instead
(valgrind), which the machine's load does not change, and ``--syscalls``
counts its system calls (``strace -c -f``).

Run: ``python benchmarks/clients.py [--connections 1,16] [--size 32] [--count 20000] [--repeat 3]``
(add ``--callgrind --count 2000`` for instruction counts).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLIENTS = ("wsfast-bench", "picows", "wsfast.connect")


# --- the clients, as they run in their own process ----------------------------------------


def picows_client(url: str, connections: int, size: int, count: int) -> None:
    """Echo ``count`` messages in all over ``connections`` picows connections."""
    import uvloop
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    payload = bytes(size)
    share = [count // connections + (i < count % connections) for i in range(connections)]

    class Echo(WSListener):
        def __init__(self, quota: int, done: asyncio.Future[None]) -> None:
            self.quota = quota
            self.done = done

        def on_ws_connected(self, transport: WSTransport) -> None:
            transport.send(WSMsgType.BINARY, payload)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type != WSMsgType.BINARY:
                return
            self.quota -= 1
            if self.quota:
                transport.send(WSMsgType.BINARY, payload)
            else:
                transport.send_close()
                transport.disconnect()
                self.done.set_result(None)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = [loop.create_future() for _ in share]
        listeners = iter([Echo(quota, future) for quota, future in zip(share, done, strict=True)])
        opened = [await ws_connect(lambda *_: next(listeners), url) for _ in share]
        await asyncio.gather(*done)
        for transport, _ in opened:
            await transport.wait_disconnected()

    uvloop.run(main())


def connect_client(url: str, connections: int, size: int, count: int) -> None:
    """Echo ``count`` messages over one ``wsfast.connect`` connection."""
    import wsfast

    if connections != 1:
        raise SystemExit("wsfast.connect: one connection per thread; run it with --connections 1")
    payload = bytes(size)
    with wsfast.connect(url) as ws:
        send, recv = ws.send, ws.recv
        for _ in range(count):
            send(payload)
            recv()


# --- the runner ---------------------------------------------------------------------------


def client_command(client: str, url: str, connections: int, size: int, count: int) -> list[str]:
    if client == "wsfast-bench":
        args = ["-m", "wsfast", "bench", url, "-c", str(connections), "-s", str(size), "-n", str(count), "-q"]
        return [sys.executable, *args]
    return [sys.executable, __file__, "--as", client, url, str(connections), str(size), str(count)]


def measure(command: list[str], how: str) -> float:
    """Run ``command``; return its CPU seconds, user-space instructions or system calls."""
    if how == "cpu":
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with tempfile.TemporaryDirectory() as tmp:
        if how == "callgrind":
            out = os.path.join(tmp, "callgrind.out")
            wrapped = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command]
            run = subprocess.run(wrapped, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            return float(re.findall(r"Collected : (\d+)", run.stderr)[-1])
        out = os.path.join(tmp, "strace.txt")
        subprocess.run(["strace", "-f", "-c", "-o", out, *command], check=True, stdout=subprocess.DEVNULL)
        total = [line for line in Path(out).read_text().splitlines() if line.rstrip().endswith("total")]
        return float(total[-1].split()[3])  # % time, seconds, usecs/call, calls


def start_server() -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, str(HERE / "servers" / "picows_server.py"), "--port", "0", "--mode", "echo"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE / "servers",
    )
    assert server.stdout is not None
    line = server.stdout.readline().split()
    if not line or line[0] != "LISTENING":
        server.kill()
        raise SystemExit(f"the echo server did not start: {line}")
    return server, f"ws://127.0.0.1:{line[1]}/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--connections", default="1,16", help="comma-separated connection counts")
    parser.add_argument("--size", type=int, default=32, help="message size in bytes")
    parser.add_argument("--count", type=int, default=20_000, help="N: messages of the shorter run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (the median is shown)")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated, of: " + ", ".join(CLIENTS))
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--callgrind", action="store_const", const="callgrind", dest="how", help="count instructions")
    how.add_argument("--syscalls", action="store_const", const="syscalls", dest="how", help="count system calls")
    args = parser.parse_args()
    how = args.how or "cpu"
    unit = {"cpu": "µs", "callgrind": "instructions", "syscalls": "syscalls"}[how]
    scale = 1e6 if how == "cpu" else 1.0
    server, url = start_server()
    try:
        for connections in [int(c) for c in args.connections.split(",")]:
            for client in args.clients.split(","):
                if client == "wsfast.connect" and connections != 1:
                    continue
                figures = []
                for _ in range(args.repeat):
                    short = measure(client_command(client, url, connections, args.size, args.count), how)
                    long = measure(client_command(client, url, connections, args.size, 2 * args.count), how)
                    figures.append((long - short) / args.count * scale)
                runs = " ".join(f"{f:.2f}" for f in figures)
                print(
                    f"{connections:>3} x {args.size} B  {client:<15} {statistics.median(figures):10.2f} {unit}/message"
                    f"  (runs: {runs})",
                    flush=True,
                )
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--as":
        role, url, connections, size, count = sys.argv[2:7]
        runner = {"picows": picows_client, "wsfast.connect": connect_client}[role]
        runner(url, int(connections), int(size), int(count))
    else:
        main()
