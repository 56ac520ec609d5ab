"""The ``wsfast`` command: ``wsfast serve``, ``wsfast bench`` and ``wsfast info``.

``wsfast serve`` with no flags serves, on 127.0.0.1:8765, an echo, a demo
binary feed and a live page at ``/``. Where each part lives:

- :mod:`wsfast.cli.demo`: the demo application (the echo and the feed);
- :mod:`wsfast.cli.serve`: ``serve``'s arguments, serving in one process;
- :mod:`wsfast.cli.workers`: the ``--workers`` supervisor;
- :mod:`wsfast.bench`: the load generator behind ``wsfast bench``;
- :mod:`wsfast.page`: the live page.
"""

from __future__ import annotations

import argparse
import logging
import platform
from collections.abc import Sequence

from .. import kernels
from .._version import __version__
from ..bench import command as bench_command
from .serve import DESCRIPTION, PREFIX, add_arguments, check_arguments, load_tls, say, serve_single
from .workers import serve_workers

__all__ = ["build_parser", "info", "main", "serve"]


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


def build_parser() -> argparse.ArgumentParser:
    """The ``wsfast`` argument parser, with its ``serve``, ``bench`` and ``info`` subcommands."""
    parser = argparse.ArgumentParser(prog="wsfast", description="The fastest WebSocket engine for Python.")
    parser.add_argument("--version", action="version", version=f"wsfast {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info_parser = commands.add_parser("info", help="show the version and the active kernel implementation")
    info_parser.set_defaults(command_parser=info_parser)
    serve_parser = commands.add_parser(
        "serve",
        help="serve an echo, a demo binary feed and a live page",
        description=DESCRIPTION,
    )
    add_arguments(serve_parser)
    serve_parser.set_defaults(command_parser=serve_parser)
    bench_parser = commands.add_parser(
        "bench",
        help="load-test any WebSocket server: echo, pipelined echo or feed",
        description=bench_command.build_parser().description,
    )
    bench_command.add_arguments(bench_parser)
    bench_parser.set_defaults(command_parser=bench_parser)
    return parser


def serve(args: argparse.Namespace) -> int:
    """Run ``wsfast serve`` with parsed arguments until SIGINT or SIGTERM.

    Prints one line when listening and one when stopped, on stderr.

    Returns:
        0 after a clean stop; 1 when the server could not start or a worker
        failed.
    """
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format=f"{PREFIX} %(levelname)s %(name)s: %(message)s",
    )
    try:
        ssl_context = load_tls(args)
    except ValueError as exc:
        say(f"error: cannot load the TLS certificate or key: {exc}")
        return 1
    if args.workers > 1:
        return serve_workers(args, ssl_context)
    return serve_single(args, ssl_context)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``wsfast`` command line; return the exit status.

    Raises:
        SystemExit: with status 2 for bad arguments (and 0 for ``--help``).
    """
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported with the usage of the command they were given to
        getattr(args, "command_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "bench":
        return bench_command.run_from_args(args.command_parser, args)
    if args.command == "serve":
        check_arguments(args.command_parser, args)
        return serve(args)
    print(info())
    return 0
