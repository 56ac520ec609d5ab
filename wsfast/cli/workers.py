"""The ``--workers`` supervisor of ``wsfast serve``: N forked processes sharing one port.

With ``--workers N``, N processes share the port (``SO_REUSEPORT``) and
the kernel spreads connections over them. Each worker has its own clients
and its own feed: sequence numbers and values are per worker. ``/healthz``
names the worker that answered in its ``X-Wsfast-Worker`` header (its PID).

The supervisor forwards SIGINT and SIGTERM to the workers (a second signal
kills them), and stops them all when one fails.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import ssl
import sys
import time
from typing import NoReturn

from ..server import Server
from .serve import SIGNALS, EarlySignals, describe, say, serve_one, urls

__all__ = ["serve_workers"]

logger = logging.getLogger("wsfast.cli")


def serve_workers(args: argparse.Namespace, ssl_context: ssl.SSLContext | None) -> int:
    """Fork ``args.workers`` processes that share the port; forward signals; wait."""
    started = time.monotonic()
    # Hold the port (bound, not listening: it takes no connections) so that
    # port 0 resolves once, for every worker.
    holder = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((args.host, args.port))
    except OSError as exc:
        holder.close()
        say(f"error: cannot listen on {args.host}:{args.port}: {exc}")
        return 1
    port = int(holder.getsockname()[1])
    ready_read, ready_write = os.pipe()
    children: dict[int, int] = {}
    stopping: list[int] = []

    def forward(signum: int, frame: object) -> None:
        # A second signal means: stop now.
        send = signal.SIGKILL if stopping else signum
        stopping.append(signum)
        for pid in children:
            try:
                os.kill(pid, send)
            except ProcessLookupError:
                pass

    # Block the signals while forking: a child must never run the parent's handler.
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    previous = [(signum, signal.signal(signum, forward)) for signum in SIGNALS]
    try:
        for index in range(args.workers):
            pid = os.fork()
            if pid == 0:  # the worker
                os.close(ready_read)
                _run_worker(args, ssl_context, port, ready_write, holder)
            children[pid] = index
        os.close(ready_write)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)

        ready = 0
        while ready < args.workers:
            chunk = os.read(ready_read, args.workers)
            if not chunk:
                break
            ready += len(chunk)
        os.close(ready_read)
        failed = ready < args.workers and not stopping
        if failed:
            say(f"error: {args.workers - ready} of {args.workers} workers did not start; stopping")
            forward(signal.SIGTERM, None)
        elif not stopping:
            ws_url, page_url = urls(args, port)
            pids = ", ".join(map(str, children))
            say(
                f"listening on {ws_url} ({describe(args)}) with {args.workers} workers (pids {pids}) "
                f"\u2014 open {page_url} in a browser"
            )

        while children:
            pid, status = os.waitpid(-1, 0)
            if pid not in children:
                continue
            index = children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if code != 0 or not stopping:
                failed = True
                say(f"worker {index} (pid {pid}) exited with status {code}; stopping the others")
                if not stopping:
                    forward(signal.SIGTERM, None)
    finally:
        for signum, handler in previous:
            signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        holder.close()
    if failed:
        return 1
    say(f"stopped {args.workers} workers after {time.monotonic() - started:.1f} s")
    return 0


def _run_worker(
    args: argparse.Namespace, ssl_context: ssl.SSLContext | None, port: int, ready_fd: int, holder: socket.socket
) -> NoReturn:
    """The body of a forked worker: serve, then leave the process (never returns)."""
    status = 1
    try:
        holder.close()

        def ready(server: Server) -> None:
            os.write(ready_fd, b".")
            os.close(ready_fd)

        early = EarlySignals()
        early.install()
        # Blocked since before the fork: a signal sent meanwhile is delivered now, to ``early``.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        status = serve_one(args, ssl_context, early, reuse_port=True, port=port, on_ready=ready)
    except BaseException:  # noqa: BLE001 - a worker reports and exits, whatever happened
        logger.exception("worker %d failed", os.getpid())
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
