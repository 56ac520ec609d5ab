"""The heartbeat: when to ping a quiet peer, and when to give up on it.

One policy for the server and both clients. The owner records every arrival
of data in :attr:`Keepalive.last_seen` (one attribute store on the read
path), asks :meth:`~Keepalive.expired` and :meth:`~Keepalive.ping_due` when
its timer fires, and sends the ping itself. Any data counts as an answer, not
only the pong: a peer that is sending is alive.
"""

from __future__ import annotations

import math

__all__ = ["Keepalive", "check_keepalive"]


def check_keepalive(interval: float | None, timeout: float) -> None:
    """Check the heartbeat arguments of a server or client.

    Raises:
        ValueError: ``interval`` is not a positive number or ``None``, or
            ``timeout`` is not a positive number.
    """
    if interval is not None and not (interval > 0 and math.isfinite(interval)):
        raise ValueError(f"ping_interval must be a positive number of seconds or None, not {interval!r}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"ping_timeout must be a positive number of seconds, not {timeout!r}")


class Keepalive:
    """The heartbeat state of one connection.

    Args:
        interval: ping a peer silent this many seconds; ``None`` never pings.
        timeout: give up on a peer that sent nothing this many seconds after
            a ping.
        now: the current time (of the clock the owner uses for ``now``
            everywhere: ``time.monotonic()`` or the loop's time).

    Raises:
        ValueError: ``interval`` or ``timeout`` is not a positive number.
    """

    __slots__ = ("interval", "timeout", "last_seen", "ping_sent_at")

    def __init__(self, interval: float | None, timeout: float, now: float) -> None:
        check_keepalive(interval, timeout)
        self.interval = interval
        self.timeout = timeout
        #: When data last arrived from the peer.
        self.last_seen = now
        #: When the last ping was sent (``None``: never).
        self.ping_sent_at: float | None = None

    def _waiting(self) -> bool:
        sent = self.ping_sent_at
        return sent is not None and self.last_seen <= sent

    def expired(self, now: float) -> bool:
        """Whether the peer left the last ping unanswered for longer than ``timeout``."""
        return self._waiting() and now - self.ping_sent_at > self.timeout  # type: ignore[operator]

    def ping_due(self, now: float) -> bool:
        """Whether to ping now: the peer was silent for ``interval`` and no ping
        is waiting for its answer. A ``True`` records the ping as sent at ``now``."""
        if self.interval is None or self._waiting() or now - self.last_seen < self.interval:
            return False
        self.ping_sent_at = now
        return True

    def next_check(self) -> float | None:
        """When :meth:`expired` or :meth:`ping_due` may next turn true (``None``: never)."""
        if self._waiting():
            return self.ping_sent_at + self.timeout  # type: ignore[operator]
        if self.interval is None:
            return None
        return self.last_seen + self.interval
