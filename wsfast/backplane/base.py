"""What every backplane shares: positions, messages, history options, the interface.

A backplane carries published messages between the nodes of one service.
The server drives it from its loop thread through :class:`Backplane`'s
methods and receives messages through the ``deliver`` callback given to
:meth:`Backplane.attach`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..loop import Loop

__all__ = ["Backplane", "HistoryOptions", "Message", "Position", "Recovery", "Replay"]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a message sits in a topic's history: an offset within an epoch.

    Offsets count from 1 within an epoch. A new epoch starts when the history
    is lost (it expired, or Redis restarted without it): offsets of two
    epochs cannot be compared.
    """

    epoch: str
    offset: int

    def __str__(self) -> str:
        return f"{self.epoch}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Position:
        """Parse ``"epoch:offset"``, as :meth:`__str__` writes it.

        Raises:
            ValueError: ``text`` is not ``epoch:offset`` with an offset >= 0.
        """
        epoch, sep, offset = text.rpartition(":")
        if not sep or not epoch or not offset.isdigit():
            raise ValueError(f"a position is 'epoch:offset' with a decimal offset, not {text!r}")
        return cls(epoch, int(offset))


@dataclass(frozen=True, slots=True)
class Message:
    """One published message as a backplane carries it.

    Attributes:
        topic: the topic it was published to.
        text: whether it is a text message (``payload`` is UTF-8).
        payload: the message bytes.
        position: its place in the topic's history; ``None`` for topics
            without history.
        origin: the node that published it (topics without history).
    """

    topic: str
    text: bool
    payload: bytes
    position: Position | None = None
    origin: str = ""


@dataclass(frozen=True, slots=True)
class HistoryOptions:
    """How much history a topic keeps.

    Args:
        size: the number of last messages kept, >= 1.
        ttl: seconds after the last publish when the history (and its
            epoch) is forgotten; ``None`` keeps it as long as the store does.

    Raises:
        ValueError: ``size`` or ``ttl`` is out of range.
    """

    size: int
    ttl: float | None = None

    def __post_init__(self) -> None:
        if type(self.size) is not int or self.size < 1:
            raise ValueError(f"history size must be an int >= 1, not {self.size!r}")
        if self.ttl is not None and not (self.ttl > 0 and math.isfinite(self.ttl)):
            raise ValueError(f"history ttl must be a positive number of seconds or None, not {self.ttl!r}")


@dataclass(frozen=True, slots=True)
class Replay:
    """What a backplane found in a topic's history after a position.

    Attributes:
        messages: the messages after the position asked for, in order; empty
            when recovery is impossible.
        position: the latest position of the topic (``None``: no history).
        error: why recovery is impossible, or ``""`` when it succeeded.
    """

    messages: list[Message] = field(default_factory=list)
    position: Position | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class Recovery:
    """The outcome of ``ws.subscribe(topic, since=...)``, given to its ``on_recovery``.

    Attributes:
        topic: the topic subscribed to.
        since: the position the client came back with.
        recovered: whether every missed message was delivered.
        count: how many missed messages were delivered.
        reason: why recovery was impossible (``""`` when ``recovered``).
    """

    topic: str
    since: Position
    recovered: bool
    count: int
    reason: str = ""


class Backplane(Protocol):
    """The interface between a server and what carries its topics between nodes.

    Every method is called in the loop thread passed to :meth:`attach`, and
    every callback runs there; nothing may block.
    """

    #: A name for this node, unique among the nodes of a service.
    node: str

    def attach(self, loop: Loop, deliver: Callable[[Message], None], resumed: Callable[[], None]) -> None:
        """Start: connect on ``loop``; then call ``deliver`` for each message
        published by any node to a subscribed topic, and ``resumed`` after
        each reconnection (messages of topics without history may be lost)."""

    def subscribe(self, topic: str) -> None:
        """Receive ``topic`` (called when its first local subscriber comes)."""

    def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic`` (called when its last local subscriber goes)."""

    def publish(self, message: Message, history: HistoryOptions | None) -> None:
        """Send ``message`` to every node; never blocks.

        Topics without history: every other node delivers it (the publisher
        has delivered it locally already). Topics with ``history``: the
        backplane assigns its :class:`Position`, keeps it, and every node,
        this one included, delivers it.
        """

    def replay(self, topic: str, since: Position, callback: Callable[[Replay], None]) -> None:
        """Call ``callback`` with the messages of ``topic`` after ``since``."""

    def close(self) -> None:
        """Disconnect and release everything (idempotent)."""
