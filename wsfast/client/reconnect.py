"""The browser API's reconnection: the backoff policy and the event announcing each attempt."""

from __future__ import annotations

import dataclasses
import random

__all__ = ["Reconnect", "ReconnectEvent"]


@dataclasses.dataclass(frozen=True)
class ReconnectEvent:
    """What ``onreconnect`` receives before each reconnection attempt."""

    attempt: int
    delay: float


@dataclasses.dataclass(frozen=True)
class Reconnect:
    """Reconnection policy: exponential backoff with jitter, bounded attempts.

    The n-th attempt (from 1) waits ``min(maximum, initial * factor**(n-1))``
    seconds, scaled by a random factor in ``[1 - jitter, 1]`` so that many
    clients do not reconnect in lockstep. A connection that stayed open for
    ``reset_after`` seconds starts again from the first attempt.
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    max_attempts: int | None = None
    reset_after: float = 10.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("need 0 < initial <= maximum and factor >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1 or None")

    def delay(self, attempt: int) -> float:
        """The wait before attempt number ``attempt`` (1-based)."""
        base = min(self.maximum, self.initial * self.factor ** (attempt - 1))
        return base * (1 - self.jitter * random.random())
