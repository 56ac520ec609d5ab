"""The backplane of a single node: topics with history kept in memory.

A server without ``backplane=`` uses it for the topics that have history, so
``ws.subscribe(topic, since=...)`` works the same with or without Redis.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .base import HistoryOptions, Message, Position, Replay

if TYPE_CHECKING:
    from ..loop import Loop

__all__ = ["MemoryBackplane", "replay_after"]


def replay_after(since: Position, epoch: str | None, top: int, messages: list[Message]) -> Replay:
    """Judge whether ``messages`` hold everything after ``since``.

    Args:
        since: the last position the client saw.
        epoch: the topic's current epoch (``None``: it has no history).
        top: the topic's latest offset in ``epoch``.
        messages: the kept messages after ``since.offset``, in order.

    Returns:
        The messages after ``since``, or why recovery is impossible.
    """
    if epoch is None:
        return Replay(error="the topic has no history (it expired or was never published to)")
    current = Position(epoch, top)
    if since.epoch != epoch:
        return Replay(position=current, error=f"the epoch changed ({since.epoch} -> {epoch}): the history was reset")
    if since.offset > top:
        return Replay(position=current, error=f"offset {since.offset} is ahead of the history (latest {top})")
    wanted = top - since.offset
    if len(messages) < wanted:
        return Replay(
            position=current,
            error=f"offset {since.offset} fell out of the history window ({top - len(messages) + 1}..{top} kept)",
        )
    return Replay(messages=messages[len(messages) - wanted :], position=current)


class _History:
    __slots__ = ("epoch", "top", "messages", "published_at", "ttl")

    def __init__(self, size: int, ttl: float | None) -> None:
        # Epochs must differ across restarts: microseconds, decimal like Redis's.
        self.epoch = str(time.time_ns() // 1000)
        self.top = 0
        self.messages: collections.deque[Message] = collections.deque(maxlen=size)
        self.published_at = time.monotonic()
        self.ttl = ttl


class MemoryBackplane:
    """Topics of this process only; history in memory, bounded by each topic's size."""

    def __init__(self, node: str = "") -> None:
        self.node = node or f"{os.getpid()}"
        self._deliver: Callable[[Message], None] = lambda message: None
        self._histories: dict[str, _History] = {}

    def attach(self, loop: Loop, deliver: Callable[[Message], None], resumed: Callable[[], None]) -> None:
        self._deliver = deliver

    def subscribe(self, topic: str) -> None:
        pass  # every message of this process reaches it already

    def unsubscribe(self, topic: str) -> None:
        pass

    def publish(self, message: Message, history: HistoryOptions | None) -> None:
        if history is None:
            return  # delivered locally by the server: no other node to tell
        kept = self._current(message.topic)
        if kept is None or kept.messages.maxlen != history.size or kept.ttl != history.ttl:
            kept = self._histories[message.topic] = self._resized(kept, history)
        kept.top += 1
        kept.published_at = time.monotonic()
        stamped = Message(message.topic, message.text, message.payload, Position(kept.epoch, kept.top))
        kept.messages.append(stamped)
        self._deliver(stamped)

    def replay(self, topic: str, since: Position, callback: Callable[[Replay], None]) -> None:
        kept = self._current(topic)
        if kept is None:
            callback(replay_after(since, None, 0, []))
            return
        after = [m for m in kept.messages if m.position is not None and m.position.offset > since.offset]
        callback(replay_after(since, kept.epoch, kept.top, after))

    def close(self) -> None:
        self._histories.clear()

    def _current(self, topic: str) -> _History | None:
        """The topic's history, unless its ttl has passed since the last publish."""
        kept = self._histories.get(topic)
        if kept is not None and kept.ttl is not None and time.monotonic() - kept.published_at > kept.ttl:
            del self._histories[topic]
            return None
        return kept

    @staticmethod
    def _resized(kept: _History | None, history: HistoryOptions) -> _History:
        fresh = _History(history.size, history.ttl)
        if kept is not None:
            fresh.epoch, fresh.top = kept.epoch, kept.top
            fresh.messages.extend(kept.messages)
        return fresh
