"""Argument types shared by the command-line tools (``type=`` for argparse)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["integer", "number", "port"]


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An int within ``[low, high]`` (no upper bound when ``high`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is not >= {low}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{value} is not <= {high}")
        return value

    return parse


def number(*, allow_zero: bool = False) -> Callable[[str], float]:
    """A finite float above 0 (or from 0 with ``allow_zero``)."""
    wanted = "a number >= 0" if allow_zero else "a positive number"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"{text} is not {wanted}")
        return value

    return parse


def port(text: str) -> int:
    """A TCP port, 0 meaning "pick a free one"."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0-65535; 0 picks a free one)")
    return value
