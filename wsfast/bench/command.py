"""The command line of ``wsfast bench`` (and ``python -m wsfast.bench``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._argtypes import integer, number
from ..handshake import ClientHandshake
from .generator import BenchError, run
from .options import MODES, BenchOptions
from .report import format_result

__all__ = ["add_arguments", "build_parser", "main", "options_from_args", "run_from_args"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``wsfast bench``'s arguments to ``parser`` (shared with ``wsfast.cli``)."""
    parser.add_argument("url", help="the server's ws:// or wss:// URL")
    parser.add_argument(
        "-c", "--connections", type=integer(1), default=16, metavar="N", help="connections (default: %(default)s)"
    )
    parser.add_argument(
        "-s",
        "--size",
        type=integer(0, 1 << 30),
        default=32,
        metavar="BYTES",
        help="echo, pipeline: message payload size (default: %(default)s)",
    )
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument(
        "-d",
        "--duration",
        type=number(),
        metavar="S",
        help="measure for S seconds after the warm-up (default: 5)",
    )
    stop.add_argument(
        "-n",
        "--count",
        type=integer(1),
        metavar="N",
        help="stop after exactly N messages received in all (spread evenly over the connections)",
    )
    parser.add_argument(
        "-m",
        "--mode",
        choices=MODES,
        default="echo",
        help="echo: one message in flight per connection; pipeline: --depth in flight; "
        "feed: receive only (default: %(default)s)",
    )
    parser.add_argument(
        "--depth",
        type=integer(1),
        metavar="D",
        help="pipeline: messages in flight per connection (default: 16); feed: triggers in flight (default: 1)",
    )
    parser.add_argument("--rate", type=number(), metavar="R", help="at most R messages/s per connection")
    parser.add_argument("--text", action="store_true", help="send text messages (default: binary)")
    parser.add_argument(
        "--timestamped",
        action="store_true",
        help="feed: each message starts with a big-endian uint64 time.time_ns() from the server; measure latency",
    )
    parser.add_argument(
        "--trigger",
        metavar="TEXT",
        help="feed: send TEXT on the first connection at the start (--depth times), "
        "and again each --trigger-every messages it receives",
    )
    parser.add_argument(
        "--trigger-every", type=integer(1), default=1, metavar="N", help="feed: see --trigger (default: 1)"
    )
    parser.add_argument(
        "--warmup",
        type=number(allow_zero=True),
        default=0.0,
        metavar="S",
        help="with --duration: run S seconds before measuring (default: 0)",
    )
    parser.add_argument(
        "--timeout",
        type=number(),
        default=10.0,
        metavar="S",
        help="connect and handshake timeout; with --count, give up after S s without a message (default: 10)",
    )
    parser.add_argument(
        "--server-pid", type=integer(1), metavar="PID", help="also report this process' CPU time (Linux /proc)"
    )
    parser.add_argument("--insecure", action="store_true", help="wss: do not verify the server's certificate")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress line on stderr")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m wsfast.bench`` (``wsfast bench``)."""
    parser = argparse.ArgumentParser(
        prog="wsfast bench",
        description="Load-test any WebSocket server: echo, pipelined echo or feed, many connections "
        "from one thread. Prints messages/s, MB/s, latency percentiles and the generator's own CPU use.",
    )
    add_arguments(parser)
    return parser


def options_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> BenchOptions:
    """Check the combination of arguments (``parser.error`` exits 2) and build the options."""
    try:
        ClientHandshake(args.url)
    except ValueError as exc:
        parser.error(str(exc))
    feed = args.mode == "feed"
    if args.depth is not None and args.mode == "echo":
        parser.error("--depth applies to --mode pipeline and feed (echo has one message in flight)")
    if feed and args.rate is not None:
        parser.error("--rate does not apply to --mode feed")
    if not feed and (args.timestamped or args.trigger is not None):
        parser.error("--timestamped and --trigger apply to --mode feed only")
    if args.warmup and args.count is not None:
        parser.error("--warmup applies to --duration only")
    if args.server_pid is not None and not os.path.exists(f"/proc/{args.server_pid}"):
        parser.error(f"--server-pid {args.server_pid}: no such process in /proc")
    depth = args.depth
    if depth is None:
        depth = 16 if args.mode == "pipeline" else 1
    duration = args.duration if args.duration is not None else (None if args.count is not None else 5.0)
    return BenchOptions(
        url=args.url,
        connections=args.connections,
        size=args.size,
        duration=duration,
        count=args.count,
        mode=args.mode,
        depth=depth,
        rate=args.rate,
        text=args.text,
        timestamped=args.timestamped,
        trigger=args.trigger,
        trigger_every=args.trigger_every,
        warmup=args.warmup,
        timeout=args.timeout,
        server_pid=args.server_pid,
        insecure=args.insecure,
        progress=not args.quiet,
    )


def run_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run ``wsfast bench`` for parsed arguments; return the exit status."""
    options = options_from_args(parser, args)
    try:
        result = run(options)
    except BenchError as exc:
        print(f"wsfast bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(result.to_json())
    else:
        print(format_result(result))
    sys.stdout.flush()
    return 1 if result.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m wsfast.bench URL ...``; returns the exit status.

    Raises:
        SystemExit: with status 2 for bad arguments (0 for ``--help``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_from_args(parser, args)
