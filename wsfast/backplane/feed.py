"""The demo feed across nodes (``wsfast serve --mode feed --backplane URL``).

One node produces the feed, the others relay it: the producer is whichever
node holds a lease in Redis (renewed every second, lost after three silent
seconds, so another node takes over when the producer dies). Each message's
position is written into it (:func:`stamp_feed`), so a page that comes back
with ``/feed?since=epoch:offset`` gets exactly what it missed.
"""

from __future__ import annotations

import logging
import struct
from typing import TYPE_CHECKING, Any, Protocol

from .base import Position

if TYPE_CHECKING:
    from ..loop import Loop, TimerHandle
    from .redis import RedisBackplane

__all__ = ["FeedLease", "stamp_feed"]

logger = logging.getLogger("wsfast.backplane")

_UINT64 = struct.Struct(">Q")
_EPOCH_AT = 24

#: Take the lease or renew it if this node holds it: 1 if held. KEYS: the lease. ARGV: node, ms.
LEASE_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""


def stamp_feed(position: Position, payload: Any) -> bytes:
    """A feed message with its position: the sequence (bytes 0-7) becomes the
    offset and bytes 24-31 the epoch, both uint64 big-endian.

    Raises:
        ValueError: the message is shorter than 32 bytes, or the epoch is not decimal.
    """
    if len(payload) < _EPOCH_AT + 8:
        raise ValueError(f"a feed message with its position has at least 32 bytes, not {len(payload)}")
    out = bytearray(payload)
    _UINT64.pack_into(out, 0, position.offset)
    _UINT64.pack_into(out, _EPOCH_AT, int(position.epoch))
    return bytes(out)


class _Startable(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class FeedLease:
    """Runs ``feed`` while this node holds the producer's lease in Redis.

    Args:
        backplane: the Redis backplane the nodes share.
        loop: the server's loop.
        feed: started when the lease is taken, stopped when it is lost.
        name: the lease's key in Redis.
        ttl: seconds after which a lease that is not renewed passes on.
    """

    def __init__(
        self,
        backplane: RedisBackplane,
        loop: Loop,
        feed: _Startable,
        *,
        name: str = "wsfast:feed:producer",
        ttl: float = 3.0,
    ) -> None:
        self.backplane = backplane
        self.loop = loop
        self.feed = feed
        self.name = name
        self.ttl = ttl
        #: Whether this node holds the lease.
        self.held = False
        self._timer: TimerHandle | None = None

    def start(self) -> None:
        """Try to take the lease now, then every ``ttl / 3`` seconds."""
        self._timer = self.loop.call_later(0.0, self._renew)

    def stop(self) -> None:
        """Stop renewing (the lease passes on after ``ttl``) and stop the feed."""
        self.feed.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _renew(self) -> None:
        ms = max(1, round(self.ttl * 1000))
        self.backplane.command("EVAL", LEASE_SCRIPT, 1, self.name, self.backplane.node, ms, callback=self._answered)
        self._timer = self.loop.call_later(self.ttl / 3, self._renew)

    def _answered(self, reply: Any) -> None:
        if isinstance(reply, Exception):
            return  # Redis is unreachable: keep producing (or not) as before
        held = reply == 1
        if held != self.held:
            self.held = held
            if held:
                logger.info("node %s produces the feed (it holds %s)", self.backplane.node, self.name)
                self.feed.start()
            else:
                logger.info("node %s stops producing the feed: another node holds %s", self.backplane.node, self.name)
                self.feed.stop()
