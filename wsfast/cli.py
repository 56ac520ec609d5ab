"""The ``wsfast`` command: ``wsfast info`` (more subcommands to come)."""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence

from . import kernels
from ._version import __version__

__all__ = ["main"]


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
    parser = argparse.ArgumentParser(prog="wsfast", description="The fastest WebSocket engine for Python.")
    parser.add_argument("--version", action="version", version=f"wsfast {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="show the version and the active kernel implementation")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``wsfast`` command line; return the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "info":
        print(info())
    return 0


if __name__ == "__main__":
    sys.exit(main())
