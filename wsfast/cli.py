"""The ``wsfast`` command: ``wsfast serve`` and ``wsfast info``.

``wsfast serve`` with no flags serves, on 127.0.0.1:8765, an echo, a demo
binary feed and a live page at ``/`` (see :mod:`wsfast.page`). The path a
client connects to picks what it gets:

- ``/feed``: the feed. The client is subscribed to the topic ``"feed"``;
  what it sends is ignored.
- any other path: the echo. Every message comes back as it was sent.

``--mode echo`` turns the feed off and ``--mode feed`` the echo; a client
that asks for what is off is closed with 1008 and a reason saying why.

A feed message is binary, ``--size`` bytes (at least 24), big-endian::

    offset 0   uint64   sequence number, from 0, +1 per message
    offset 8   float64  time.time() when it was published
    offset 16  float64  value: a random walk (a "price")
    offset 24  zeros    padding up to --size

With ``--backplane redis://host:port/db``, every node on that Redis serves
one feed (see :mod:`wsfast.backplane.feed`): one node produces it, the
others relay it; the sequence number is the message's offset in the feed's
history, bytes 24-31 its epoch, and a client that connects to
``/feed?since=EPOCH:OFFSET`` first gets every message it missed. It gets a
text message too, JSON: ``{"node": ...}`` on connecting, then
``{"recovered": ..., "count": ..., "reason": ...}`` when it asked for ``since``.

With ``--workers N``, N processes share the port (``SO_REUSEPORT``) and
the kernel spreads connections over them. Each worker has its own clients
and its own feed: sequence numbers and values are per worker. ``/healthz``
names the worker that answered in its ``X-Wsfast-Worker`` header (its PID).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import math
import os
import platform
import random
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit

from . import bench, kernels
from ._argtypes import integer, number, port
from ._version import __version__
from .backplane.feed import FeedLease, stamp_feed
from .frames import CloseCode
from .loop import TimerHandle
from .page import http_handler
from .protocol import DEFAULT_MAX_MESSAGE_SIZE
from .server import Handler, Server, ServerConnection

__all__ = [
    "FEED_HEADER",
    "FEED_PATH",
    "FEED_TOPIC",
    "DemoHandler",
    "Feed",
    "build_parser",
    "create_server",
    "feed_message",
    "info",
    "main",
    "serve",
]

#: Clients that connect to this path get the feed.
FEED_PATH = "/feed"
#: The topic the feed is published to.
FEED_TOPIC = "feed"
#: The start of every feed message: sequence, ``time.time()``, value.
FEED_HEADER = struct.Struct(">Qdd")

_PREFIX = "wsfast serve:"
# RFC 9110 §5.6.2 token: what a subprotocol name may be.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SIGNALS = (signal.SIGINT, signal.SIGTERM)

logger = logging.getLogger("wsfast.cli")


def info() -> str:
    """Describe the running wsfast: version, implementation, platform."""
    lines = [
        f"wsfast {__version__}",
        f"implementation: {kernels.IMPLEMENTATION}"
        + (" (WSFAST_PURE is set)" if kernels.PURE and kernels.HAS_EXTENSION else ""),
        f"extension installed: {'yes' if kernels.HAS_EXTENSION else 'no'}",
        f"simd: {kernels.SIMD}",
        f"python: {platform.python_implementation()} {platform.python_version()}",
        f"platform: {platform.platform()}",
    ]
    return "\n".join(lines)


# --- the demo application --------------------------------------------------------


def feed_message(sequence: int, value: float, size: int, timestamp: float | None = None) -> bytes:
    """Build one feed message (layout in the module docstring).

    Args:
        sequence: the sequence number, 0 to 2**64 - 1.
        value: the sample value.
        size: the message size in bytes, at least ``FEED_HEADER.size`` (24).
        timestamp: the publication time; ``time.time()`` when ``None``.

    Raises:
        ValueError: ``size`` is below 24.
    """
    if size < FEED_HEADER.size:
        raise ValueError(f"a feed message has at least {FEED_HEADER.size} bytes, not {size}")
    head = FEED_HEADER.pack(sequence, time.time() if timestamp is None else timestamp, value)
    return head + bytes(size - FEED_HEADER.size)


class Feed:
    """The demo feed: publishes binary messages to a topic at a steady rate.

    Driven by the server's own timers (``call_later``), so it needs no thread.
    Messages are published on a fixed schedule; when the loop falls behind
    (a busy or stopped loop), up to 50 ms worth of messages are caught up at
    once and the rest of the backlog is skipped, never sent in a flood.

    Args:
        server: the server to publish on.
        rate: messages per second, > 0.
        size: bytes per message, >= 24.
        topic: the topic to publish to.
    """

    def __init__(self, server: Server, *, rate: float, size: int, topic: str = FEED_TOPIC) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"rate must be a positive number, not {rate!r}")
        feed_message(0, 0.0, size)  # validates size
        self.server = server
        self.rate = rate
        self.size = size
        self.topic = topic
        #: The sequence number of the next message.
        self.sequence = 0
        #: The last value published.
        self.value = 100.0
        self._padding = bytes(size - FEED_HEADER.size)
        self._interval = 1.0 / rate
        self._max_burst = max(1, math.ceil(rate * 0.05))
        self._random = random.Random()
        self._next = 0.0
        self._timer: TimerHandle | None = None

    def start(self) -> None:
        """Start publishing: call before the loop runs, or in the loop thread."""
        if self._timer is None:
            self._next = time.monotonic()
            self._timer = self.server.call_later(0.0, self._tick)

    def stop(self) -> None:
        """Stop publishing (loop thread, or before the loop runs)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        now = time.monotonic()
        publish = self.server.publish
        pack = FEED_HEADER.pack
        padding = self._padding
        gauss = self._random.gauss
        burst = 0
        while self._next <= now and burst < self._max_burst:
            # feed_message(), inlined. The value: a random walk that stays positive, like a price.
            self.value = max(0.01, self.value * (1.0 + gauss(0.0, 0.002)))
            publish(self.topic, pack(self.sequence, time.time(), self.value) + padding)
            self.sequence += 1
            self._next += self._interval
            burst += 1
        if self._next <= now:
            self._next = now + self._interval  # too far behind: skip, do not flood
        self._timer = self.server.call_later(max(0.0, self._next - time.monotonic()), self._tick)


class DemoHandler(Handler):
    """What ``wsfast serve`` does with its clients: echo, and the feed on ``/feed``.

    Args:
        echo: echo every message of clients on paths other than ``/feed``.
        feed: subscribe clients on ``/feed`` to the ``"feed"`` topic.
    """

    def __init__(self, *, echo: bool = True, feed: bool = True, node: str | None = None) -> None:
        self.echo = echo
        self.feed = feed
        self.node = node

    def on_open(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else "/"
        if path == FEED_PATH:
            if self.feed and self.node is not None:
                _subscribe_across_nodes(ws, self.node)
            elif self.feed:
                ws.subscribe(FEED_TOPIC)
            else:
                ws.close(CloseCode.POLICY_VIOLATION, "no feed here: the server runs with --mode echo")
        elif not self.echo:
            ws.close(CloseCode.POLICY_VIOLATION, f"no echo here: the server runs with --mode feed; use {FEED_PATH}")

    def on_message(self, ws: ServerConnection, message: str | bytes) -> None:
        # Feed subscribers are the only clients with topics; they get no echo.
        if not ws.topics:
            ws.send(message)


def _subscribe_across_nodes(ws: ServerConnection, node: str) -> None:
    """The feed with a backplane: say which node this is, recover from ``?since=``."""
    from .backplane import Position, Recovery

    ws.send(json.dumps({"node": node}))
    since = ws.request.query.get("since", [""])[-1] if ws.request is not None else ""
    if not since:
        ws.subscribe(FEED_TOPIC)
        return
    try:
        position = Position.parse(since)
    except ValueError as exc:
        ws.close(CloseCode.POLICY_VIOLATION, str(exc)[:120])
        return

    def recovered(recovery: Recovery) -> None:
        if ws.ready_state == 1:
            ws.send(json.dumps({"recovered": recovery.recovered, "count": recovery.count, "reason": recovery.reason}))

    ws.subscribe(FEED_TOPIC, since=position, on_recovery=recovered)


# --- arguments -------------------------------------------------------------------


def _feed_size(text: str) -> int:
    value = integer(1)(text)
    if value < FEED_HEADER.size:
        raise argparse.ArgumentTypeError(f"{value} is too small: a feed message has at least {FEED_HEADER.size} bytes")
    return value


def _redis_url(text: str) -> str:
    from .backplane.redis import RedisURL

    try:
        RedisURL.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _subprotocol(text: str) -> str:
    if not _TOKEN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid subprotocol name (an HTTP token)")
    return text


def _origin(text: str) -> str:
    if text == "null":
        return text
    parts = urlsplit(text)
    if not (parts.scheme and parts.netloc) or parts.path or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an origin: give scheme://host[:port], like http://localhost:8765"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    """The ``wsfast`` argument parser, with its ``serve``, ``bench`` and ``info`` subcommands."""
    parser = argparse.ArgumentParser(prog="wsfast", description="The fastest WebSocket engine for Python.")
    parser.add_argument("--version", action="version", version=f"wsfast {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("info", help="show the version and the active kernel implementation")

    serve_parser = commands.add_parser(
        "serve",
        help="serve an echo, a demo binary feed and a live page",
        description=(
            "Serve WebSockets and a live page at / (open it in a browser). The path picks the service: "
            "/feed gets the demo binary feed (what it sends is ignored), any other path is echoed. "
            "--mode turns one of them off. A feed message is big-endian: uint64 sequence, "
            "float64 time.time(), float64 value, zero padding to --size."
        ),
    )
    serve_parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)")
    serve_parser.add_argument(
        "--port", type=port, default=8765, help="the port to listen on; 0 picks a free one (default: %(default)s)"
    )
    serve_parser.add_argument(
        "--mode",
        choices=("echo", "feed"),
        help="serve only the echo, or only the feed on /feed (default: both)",
    )
    serve_parser.add_argument(
        "--rate", type=number(), default=20.0, metavar="R", help="feed messages per second (default: %(default)g)"
    )
    serve_parser.add_argument(
        "--size",
        type=_feed_size,
        default=64,
        metavar="S",
        help="feed message size in bytes, >= 24 (default: %(default)s)",
    )
    serve_parser.add_argument(
        "--subprotocol",
        type=_subprotocol,
        action="append",
        default=[],
        metavar="NAME",
        help="a subprotocol to accept when the client offers it (repeatable, most preferred first)",
    )
    serve_parser.add_argument("--tls-cert", metavar="PEM", help="certificate chain (PEM): serve wss:// and https://")
    serve_parser.add_argument("--tls-key", metavar="PEM", help="private key (PEM), if not in --tls-cert's file")
    serve_parser.add_argument(
        "--max-message-size",
        type=integer(1),
        default=DEFAULT_MAX_MESSAGE_SIZE,
        metavar="BYTES",
        help="close (1009) clients sending larger messages (default: %(default)s)",
    )
    serve_parser.add_argument(
        "--origin",
        type=_origin,
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an allowed Origin, like http://localhost:8765 (repeatable; default: allow all). "
        "To use the page, allow the origin you open it from.",
    )
    serve_parser.add_argument(
        "--compression",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="accept permessage-deflate when the client offers it (default: off)",
    )
    serve_parser.add_argument(
        "--backplane",
        type=_redis_url,
        metavar="URL",
        help="share topics with every node on this Redis (redis://host:port/db): one feed for all, "
        "produced by one node, with --history messages kept for clients that reconnect",
    )
    serve_parser.add_argument(
        "--history",
        type=integer(1),
        metavar="N",
        help="with --backplane: feed messages kept for reconnecting clients (default: 1000)",
    )
    serve_parser.add_argument(
        "--workers",
        type=integer(1),
        default=1,
        metavar="N",
        help="serve from N processes sharing the port (SO_REUSEPORT); each has its own clients and its own feed",
    )
    serve_parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log the server's notices: failed handshakes, slow consumers, shutdown",
    )
    bench_parser = commands.add_parser(
        "bench",
        help="load-test any WebSocket server: echo, pipelined echo or feed",
        description=bench.build_parser().description,
    )
    bench.add_arguments(bench_parser)
    bench_parser.set_defaults(command_parser=bench_parser)
    return parser


def _check_serve_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject combinations of flags that cannot work (exits 2, as argparse does)."""
    if args.tls_key and not args.tls_cert:
        parser.error("--tls-key needs --tls-cert")
    if args.history is not None and not args.backplane:
        parser.error("--history needs --backplane")
    if args.workers > 1:
        if not hasattr(os, "fork"):
            parser.error("--workers needs os.fork(), which this platform lacks")
        if not hasattr(socket, "SO_REUSEPORT"):
            parser.error("--workers needs SO_REUSEPORT, which this platform lacks")


# --- serving ---------------------------------------------------------------------


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls_cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.tls_cert, args.tls_key)
    context.set_alpn_protocols(["http/1.1"])
    return context


def create_server(
    args: argparse.Namespace,
    *,
    ssl_context: ssl.SSLContext | None = None,
    reuse_port: bool = False,
    port: int | None = None,
) -> tuple[Server, Feed | FeedLease | None]:
    """Build the server of ``wsfast serve`` from parsed arguments, bound and listening.

    Args:
        args: ``build_parser().parse_args(["serve", ...])``.
        ssl_context: the TLS context, when ``--tls-cert`` is given.
        reuse_port: set ``SO_REUSEPORT`` (for ``--workers``).
        port: the port, instead of ``args.port``.

    Returns:
        The server and its feed (``None`` with ``--mode echo``), or with
        ``--backplane`` the lease that runs the feed while this node holds it.
        Start it (``start()``) before serving.

    Raises:
        OSError: the address cannot be listened on.
    """
    backplane = None
    if args.backplane:
        from .backplane import RedisBackplane

        backplane = RedisBackplane(args.backplane)
    node = backplane.node if backplane is not None else None
    handler = DemoHandler(echo=args.mode != "feed", feed=args.mode != "echo", node=node)
    server = Server(
        handler,
        host=args.host,
        port=args.port if port is None else port,
        ssl=ssl_context,
        origins=args.origin or None,
        subprotocols=args.subprotocol,
        compression=args.compression,
        max_message_size=args.max_message_size,
        http_handler=http_handler,
        reuse_port=reuse_port,
        backplane=backplane,
    )
    feed = Feed(server, rate=args.rate, size=args.size) if handler.feed else None
    if feed is not None and backplane is not None:
        server.enable_history(FEED_TOPIC, args.history or 1000, ttl=3600.0, stamp=stamp_feed)
        return server, FeedLease(backplane, server.loop, feed)
    return server, feed


def _urls(args: argparse.Namespace, port: int) -> tuple[str, str]:
    host = args.host
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass  # a name
    secure = "s" if args.tls_cert else ""
    return f"ws{secure}://{host}:{port}", f"http{secure}://{host}:{port}/"


def _describe(args: argparse.Namespace) -> str:
    feed = f"feed on {FEED_PATH} at {args.rate:g} msg/s x {args.size} B"
    if args.mode == "echo":
        return "echo"
    if args.mode == "feed":
        return feed
    return f"echo + {feed}"


def _say(message: str) -> None:
    print(f"{_PREFIX} {message}", file=sys.stderr, flush=True)


class _EarlySignals:
    """Catch SIGINT/SIGTERM until ``Server.serve_forever()`` handles them itself.

    A signal that comes before there is a server is remembered; once one is
    attached, a signal (remembered or new) shuts it down. The default action
    would kill the process without the closing handshakes.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._server: Server | None = None
        self._restore: list[tuple[int, Any]] = []

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                self._restore.append((signum, signal.signal(signum, self._handle)))

    def attach(self, server: Server) -> None:
        self._server = server
        if self.received is not None:
            server.shutdown()

    def _handle(self, signum: int, frame: object) -> None:
        self.received = signum
        if self._server is not None:
            self._server.shutdown()  # thread-safe, and safe in a signal handler

    def restore(self) -> None:
        for signum, previous in self._restore:
            signal.signal(signum, previous)
        self._restore.clear()


def _serve_one(
    args: argparse.Namespace,
    ssl_context: ssl.SSLContext | None,
    early: _EarlySignals,
    *,
    reuse_port: bool = False,
    port: int | None = None,
    on_ready: Callable[[Server], None],
) -> int:
    """Serve in this process until SIGINT/SIGTERM; return the exit status.

    ``early`` is installed already: it holds the signals until
    ``serve_forever()`` handles them.
    """
    try:
        server, feed = create_server(args, ssl_context=ssl_context, reuse_port=reuse_port, port=port)
    except OSError as exc:
        _say(f"error: cannot listen on {args.host}:{args.port if port is None else port}: {exc}")
        return 1
    if feed is not None:
        feed.start()
    early.attach(server)
    on_ready(server)
    server.serve_forever()  # handles SIGINT/SIGTERM itself from here on
    return 0


def serve(args: argparse.Namespace) -> int:
    """Run ``wsfast serve`` with parsed arguments until SIGINT or SIGTERM.

    Prints one line when listening and one when stopped, on stderr.

    Returns:
        0 after a clean stop; 1 when the server could not start or a worker
        failed.
    """
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format=f"{_PREFIX} %(levelname)s %(name)s: %(message)s",
    )
    try:
        ssl_context = _ssl_context(args)
    except (OSError, ssl.SSLError) as exc:
        _say(f"error: cannot load the TLS certificate or key: {exc}")
        return 1
    if args.workers > 1:
        return _serve_workers(args, ssl_context)

    started = time.monotonic()

    def ready(server: Server) -> None:
        ws_url, page_url = _urls(args, server.port)
        _say(f"listening on {ws_url} ({_describe(args)}) \u2014 open {page_url} in a browser")

    early = _EarlySignals()
    early.install()
    try:
        status = _serve_one(args, ssl_context, early, on_ready=ready)
    finally:
        early.restore()
    if status == 0:
        _say(f"stopped after {time.monotonic() - started:.1f} s")
    return status


def _serve_workers(args: argparse.Namespace, ssl_context: ssl.SSLContext | None) -> int:
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
        _say(f"error: cannot listen on {args.host}:{args.port}: {exc}")
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
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    previous = [(signum, signal.signal(signum, forward)) for signum in _SIGNALS]
    try:
        for index in range(args.workers):
            pid = os.fork()
            if pid == 0:  # the worker
                os.close(ready_read)
                _run_worker(args, ssl_context, port, ready_write, holder)
            children[pid] = index
        os.close(ready_write)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)

        ready = 0
        while ready < args.workers:
            chunk = os.read(ready_read, args.workers)
            if not chunk:
                break
            ready += len(chunk)
        os.close(ready_read)
        failed = ready < args.workers and not stopping
        if failed:
            _say(f"error: {args.workers - ready} of {args.workers} workers did not start; stopping")
            forward(signal.SIGTERM, None)
        elif not stopping:
            ws_url, page_url = _urls(args, port)
            pids = ", ".join(map(str, children))
            _say(
                f"listening on {ws_url} ({_describe(args)}) with {args.workers} workers (pids {pids}) "
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
                _say(f"worker {index} (pid {pid}) exited with status {code}; stopping the others")
                if not stopping:
                    forward(signal.SIGTERM, None)
    finally:
        for signum, handler in previous:
            signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        holder.close()
    if failed:
        return 1
    _say(f"stopped {args.workers} workers after {time.monotonic() - started:.1f} s")
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

        early = _EarlySignals()
        early.install()
        # Blocked since before the fork: a signal sent meanwhile is delivered now, to ``early``.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        status = _serve_one(args, ssl_context, early, reuse_port=True, port=port, on_ready=ready)
    except BaseException:  # noqa: BLE001 - a worker reports and exits, whatever happened
        logger.exception("worker %d failed", os.getpid())
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``wsfast`` command line; return the exit status.

    Raises:
        SystemExit: with status 2 for bad arguments (and 0 for ``--help``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        return bench.run_from_args(args.command_parser, args)
    if args.command == "serve":
        _check_serve_args(parser, args)
        return serve(args)
    print(info())
    return 0


if __name__ == "__main__":
    sys.exit(main())
