"""Topics across nodes: the backplane, and topic history with recovery.

``wsfast.Server(..., backplane="redis://host:port/db")`` attaches a server to
a :class:`RedisBackplane`; :func:`from_url` builds a backplane from its URL.
Any object with :class:`Backplane`'s methods can be given instead.
"""

from __future__ import annotations

from .base import Backplane, HistoryOptions, Message, Position, Recovery, Replay
from .memory import MemoryBackplane
from .redis import RedisBackplane
from .relay import Relay, Stamp

__all__ = [
    "Backplane",
    "HistoryOptions",
    "MemoryBackplane",
    "Message",
    "Position",
    "Recovery",
    "RedisBackplane",
    "Relay",
    "Replay",
    "Stamp",
    "from_url",
]


def from_url(url: str) -> Backplane:
    """The backplane that ``url`` names: ``redis://...`` (see :class:`RedisBackplane`).

    Raises:
        ValueError: the scheme is not supported, or the URL is invalid.
    """
    if url.startswith("redis://"):
        return RedisBackplane(url)
    raise ValueError(f"unsupported backplane URL {url!r}: use redis://host:port/db")
