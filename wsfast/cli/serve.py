"""``wsfast serve``: its arguments, and serving the demo application in one process.

The server is :class:`~wsfast.Server` with the demo handler and feed of
:mod:`wsfast.cli.demo` and the live page of :mod:`wsfast.page`. With
``--workers N`` the supervisor of :mod:`wsfast.cli.workers` runs this in N
processes.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .._argtypes import integer, number, port
from ..backplane.feed import FeedLease, stamp_feed
from ..http11 import TOKEN
from ..page import page_handler
from ..protocol import DEFAULT_MAX_MESSAGE_SIZE
from ..server import Server
from .demo import FEED_HEADER, FEED_PATH, FEED_TOPIC, DemoHandler, Feed

__all__ = [
    "PREFIX",
    "SIGNALS",
    "EarlySignals",
    "add_arguments",
    "check_arguments",
    "create_server",
    "describe",
    "load_tls",
    "say",
    "serve_one",
    "serve_single",
    "urls",
]

#: The signals that stop ``wsfast serve`` gracefully.
SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: What starts every line ``wsfast serve`` prints.
PREFIX = "wsfast serve:"


def _feed_size(text: str) -> int:
    value = integer(1)(text)
    if value < FEED_HEADER.size:
        raise argparse.ArgumentTypeError(f"{value} is too small: a feed message has at least {FEED_HEADER.size} bytes")
    return value


def _redis_url(text: str) -> str:
    from ..backplane.redis import RedisURL

    try:
        RedisURL.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _subprotocol(text: str) -> str:
    if not TOKEN.fullmatch(text):  # RFC 9110 §5.6.2: what a subprotocol name may be
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


#: What ``wsfast serve --help`` says.
DESCRIPTION = (
    "Serve WebSockets and a live page at / (open it in a browser). The path picks the service: "
    "/feed gets the demo binary feed (what it sends is ignored), any other path is echoed. "
    "--mode turns one of them off. A feed message is big-endian: uint64 sequence, "
    "float64 time.time(), float64 value, zero padding to --size."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``wsfast serve``'s arguments to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=port, default=8765, help="the port to listen on; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--mode",
        choices=("echo", "feed"),
        help="serve only the echo, or only the feed on /feed (default: both)",
    )
    parser.add_argument(
        "--rate", type=number(), default=20.0, metavar="R", help="feed messages per second (default: %(default)g)"
    )
    parser.add_argument(
        "--size",
        type=_feed_size,
        default=64,
        metavar="S",
        help="feed message size in bytes, >= 24 (default: %(default)s)",
    )
    parser.add_argument(
        "--subprotocol",
        type=_subprotocol,
        action="append",
        default=[],
        metavar="NAME",
        help="a subprotocol to accept when the client offers it (repeatable, most preferred first)",
    )
    parser.add_argument("--tls-cert", metavar="PEM", help="certificate chain (PEM): serve wss:// and https://")
    parser.add_argument("--tls-key", metavar="PEM", help="private key (PEM), if not in --tls-cert's file")
    parser.add_argument(
        "--max-message-size",
        type=integer(1),
        default=DEFAULT_MAX_MESSAGE_SIZE,
        metavar="BYTES",
        help="close (1009) clients sending larger messages (default: %(default)s)",
    )
    parser.add_argument(
        "--origin",
        type=_origin,
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an allowed Origin, like http://localhost:8765 (repeatable; default: allow all). "
        "To use the page, allow the origin you open it from.",
    )
    parser.add_argument(
        "--compression",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="accept permessage-deflate when the client offers it (default: off)",
    )
    parser.add_argument(
        "--backplane",
        type=_redis_url,
        metavar="URL",
        help="share topics with every node on this Redis (redis://host:port/db): one feed for all, "
        "produced by one node, with --history messages kept for clients that reconnect",
    )
    parser.add_argument(
        "--history",
        type=integer(1),
        metavar="N",
        help="with --backplane: feed messages kept for reconnecting clients (default: 1000)",
    )
    parser.add_argument(
        "--workers",
        type=integer(1),
        default=1,
        metavar="N",
        help="serve from N processes sharing the port (SO_REUSEPORT); each has its own clients and its own feed",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log the server's notices: failed handshakes, slow consumers, shutdown",
    )


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
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


def load_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The server's TLS context for ``--tls-cert`` and ``--tls-key`` (``None`` without them).

    Raises:
        ValueError: a file cannot be read, or is not a PEM certificate chain
            and matching key; the message names the option and the file.
    """
    if not args.tls_cert:
        return None
    files = [("--tls-cert", args.tls_cert)] + ([("--tls-key", args.tls_key)] if args.tls_key else [])
    for option, path in files:
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ValueError(f"{option} {path}: {exc.strerror or exc}") from exc
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    except ssl.SSLError as exc:
        named = " and ".join(f"{option} {path}" for option, path in files)
        wanted = "a PEM certificate chain and its private key" + ("" if args.tls_key else " (or pass --tls-key)")
        raise ValueError(f"{named}: not {wanted}: {exc.reason or exc}") from exc
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
        from ..backplane import RedisBackplane

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
        http_handler=page_handler(args.origin or None, secure=ssl_context is not None),
        reuse_port=reuse_port,
        backplane=backplane,
    )
    feed = Feed(server, rate=args.rate, size=args.size) if handler.feed else None
    if feed is not None and backplane is not None:
        server.enable_history(FEED_TOPIC, args.history or 1000, ttl=3600.0, stamp=stamp_feed)
        return server, FeedLease(backplane, server.loop, feed)
    return server, feed


def urls(args: argparse.Namespace, port: int) -> tuple[str, str]:
    host = args.host
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass  # a name
    secure = "s" if args.tls_cert else ""
    return f"ws{secure}://{host}:{port}", f"http{secure}://{host}:{port}/"


def describe(args: argparse.Namespace) -> str:
    feed = f"feed on {FEED_PATH} at {args.rate:g} msg/s x {args.size} B"
    if args.mode == "echo":
        return "echo"
    if args.mode == "feed":
        return feed
    return f"echo + {feed}"


def say(message: str) -> None:
    print(f"{PREFIX} {message}", file=sys.stderr, flush=True)


class EarlySignals:
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
            for signum in SIGNALS:
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


def serve_one(
    args: argparse.Namespace,
    ssl_context: ssl.SSLContext | None,
    early: EarlySignals,
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
        say(f"error: cannot listen on {args.host}:{args.port if port is None else port}: {exc}")
        return 1
    if feed is not None:
        feed.start()
    early.attach(server)
    on_ready(server)
    server.serve_forever()  # handles SIGINT/SIGTERM itself from here on
    return 0


def serve_single(args: argparse.Namespace, ssl_context: ssl.SSLContext | None) -> int:
    """Serve in this process until SIGINT or SIGTERM; print one line when
    listening and one when stopped, on stderr.

    Returns:
        0 after a clean stop; 1 when the server could not start.
    """
    started = time.monotonic()

    def ready(server: Server) -> None:
        ws_url, page_url = urls(args, server.port)
        say(f"listening on {ws_url} ({describe(args)}) \u2014 open {page_url} in a browser")

    early = EarlySignals()
    early.install()
    try:
        status = serve_one(args, ssl_context, early, on_ready=ready)
    finally:
        early.restore()
    if status == 0:
        say(f"stopped after {time.monotonic() - started:.1f} s")
    return status
