"""Between a server and its backplane: who gets what, in which order.

The :class:`Relay` of a server delivers what the backplane brings to the
server's local subscribers, each message framed once for all of them (the
server's own fan-out), and runs ``ws.subscribe(topic, since=...)``:

- Topics with history are delivered in offset order, per node: a duplicate
  (offset already delivered) is dropped, a gap (a message lost while the
  subscriber connection was down) is filled from the history first.
- A recovering client gets the missed messages, then what was published
  meanwhile (held for it), then the live ones: never a duplicate nor a gap,
  or a :class:`~wsfast.backplane.Recovery` that says why not. The history
  can be ahead of what the node has received live (its subscriber
  connection lags behind a flood): the client then skips what the replay
  gave it, and joins the live subscribers at the first message after it.
  Or behind: what was published before the node's subscription took effect
  never comes live, and is fetched from the history first.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from .base import Backplane, HistoryOptions, Message, Position, Recovery, Replay
from .memory import MemoryBackplane

if TYPE_CHECKING:
    from ..loop import Loop

__all__ = ["Relay", "Stamp", "Subscriber"]

logger = logging.getLogger("wsfast.backplane")

#: ``stamp(position, payload) -> message``: what clients receive of a message
#: with history (to tell them its position); ``payload`` is ``bytes``, or
#: ``str`` for a text message.
Stamp = Callable[[Position, Any], Any]

# Messages held for one recovering client, or while a node fills a gap,
# at most: beyond, the recovery is given up (and said so).
_MAX_HELD = 10_000


class Subscriber(Hashable, Protocol):
    """What the relay needs of a server's connection (``wsfast.Server``'s or ``wsfast.aio``'s)."""

    @property
    def ready_state(self) -> int:
        """1 while OPEN."""

    def send(self, message: Any) -> object:
        """Queue one message for the client."""


S = TypeVar("S", bound=Subscriber)


class _Order:
    """The last position a node delivered on one topic, and what waits for a gap to fill."""

    __slots__ = ("last", "held", "filling")

    def __init__(self) -> None:
        self.last: Position | None = None
        self.held: list[Message] = []
        self.filling = False


class _Catchup:
    """One client recovering a topic: what is published meanwhile waits here
    until the replay comes; then, ``after``: the last position the client was sent."""

    __slots__ = ("held", "overflowed", "after")

    def __init__(self) -> None:
        self.held: list[Message] = []
        self.overflowed = False
        self.after: Position | None = None


class Relay(Generic[S]):
    """The topics of one server across nodes, with history.

    Args:
        loop: the server's loop.
        subscribers: the server's live subscribers per topic (the relay adds
            and removes recovered clients there); any :class:`Subscriber`.
        fan_out: the server's ``_fan_out(receivers, data) -> count``.
        backplane: what connects the nodes; ``None``: this process only,
            history in memory.
    """

    def __init__(
        self,
        loop: Loop,
        subscribers: dict[str, set[S]],
        fan_out: Callable[[list[S], Any], int],
        backplane: Backplane | None,
    ) -> None:
        self.distributed = backplane is not None
        self.backplane: Backplane = backplane if backplane is not None else MemoryBackplane()
        self.histories: dict[str, tuple[HistoryOptions, Stamp | None]] = {}
        self._subscribers = subscribers
        self._fan_out = fan_out
        self._orders: dict[str, _Order] = {}
        self._catchups: dict[str, dict[S, _Catchup]] = {}
        self.backplane.attach(loop, self._deliver, self._resumed)

    def wants(self, topic: str) -> bool:
        """Whether a publish to ``topic`` must go through the relay."""
        return self.distributed or topic in self.histories

    # --- publishing ----------------------------------------------------------------

    def publish(self, topic: str, data: Any) -> int:
        """Publish ``data`` (``str``, or bytes-like) to ``topic`` on every node.

        Returns:
            The local clients it was queued for; 0 for a topic with history,
            delivered (here too) once its history keeps it.
        """
        text = type(data) is str
        message = Message(topic, text, data.encode("utf-8") if text else bytes(data), origin=self.backplane.node)
        entry = self.histories.get(topic)
        if entry is not None:
            self.backplane.publish(message, entry[0])
            return 0
        subscribers = self._subscribers.get(topic)
        count = self._fan_out(list(subscribers), data) if subscribers else 0
        self.backplane.publish(message, None)
        return count

    # --- subscribing -----------------------------------------------------------------

    def subscribe(
        self,
        ws: S,
        topic: str,
        since: Position | None,
        on_recovery: Callable[[Recovery], None] | None,
    ) -> None:
        """Subscribe ``ws``; with ``since``, deliver what it missed first."""
        catchups = self._catchups.get(topic)
        if ws in self._subscribers.get(topic, ()) or (catchups is not None and ws in catchups):
            return
        if not self._subscribers.get(topic) and not catchups:
            self.backplane.subscribe(topic)
        if since is None:
            self._subscribers.setdefault(topic, set()).add(ws)
            return
        catchup = _Catchup()
        self._catchups.setdefault(topic, {})[ws] = catchup
        self.backplane.replay(topic, since, lambda replay: self._recovered(ws, topic, since, replay, on_recovery))

    def unsubscribed(self, ws: S, topic: str) -> None:
        """``ws`` left ``topic`` (the server removed it from its live subscribers)."""
        catchups = self._catchups.get(topic)
        if catchups is not None:
            catchups.pop(ws, None)
            if not catchups:
                del self._catchups[topic]
        if not self._subscribers.get(topic) and not self._catchups.get(topic):
            self.backplane.unsubscribe(topic)
            self._orders.pop(topic, None)

    def _recovered(
        self,
        ws: S,
        topic: str,
        since: Position,
        replay: Replay,
        on_recovery: Callable[[Recovery], None] | None,
    ) -> None:
        catchups = self._catchups.get(topic)
        catchup = catchups.pop(ws, None) if catchups is not None else None
        if catchup is None:
            return  # it left meanwhile
        if not catchups:
            self._catchups.pop(topic, None)
        if ws.ready_state != 1:
            return  # closing: it will leave the topic
        last = since
        error = replay.error
        if catchup.overflowed and not error:
            error = f"more than {_MAX_HELD} messages were published during the recovery"
        sent = 0
        if not error:
            for message in replay.messages:
                ws.send(self._data(message))
                assert message.position is not None
                last = message.position
                sent += 1
        for message in catchup.held:
            position = message.position
            if not error and position is not None and position.epoch == last.epoch:
                if position.offset <= last.offset:
                    continue  # in the replay already
                last = position
            ws.send(self._data(message))
        if error:
            self._subscribers.setdefault(topic, set()).add(ws)
            logger.info("recovery of %r for %s since %s impossible: %s", topic, ws, since, error)
        else:
            # Live from the first message after ``last`` (see _send_local).
            catchup.held, catchup.after = [], last
            self._catchups.setdefault(topic, {})[ws] = catchup
        if on_recovery is not None:
            on_recovery(Recovery(topic, since, not error, sent, error))

    # --- delivering ----------------------------------------------------------------------

    def _deliver(self, message: Message) -> None:
        position = message.position
        if position is None:
            if message.origin != self.backplane.node:
                self._send_local(message)
            return
        order = self._orders.get(message.topic)
        if order is None:
            order = self._orders[message.topic] = _Order()
        if order.filling:
            if len(order.held) < _MAX_HELD:
                order.held.append(message)
            return
        last = order.last
        if last is None or last.epoch != position.epoch:
            if last is not None:
                logger.warning(
                    "topic %r: new epoch %s (was %s): its history was reset", message.topic, position.epoch, last
                )
            order.last = position
            self._send_local(message)
        elif position.offset == last.offset + 1:
            order.last = position
            self._send_local(message)
        elif position.offset > last.offset + 1:
            self._fill(message.topic, order, message)
        # else: a duplicate, delivered already

    def _fill(self, topic: str, order: _Order, message: Message | None) -> None:
        """Fetch what the node missed after ``order.last``, then go on with ``message``."""
        assert order.last is not None
        order.filling = True
        order.held = [] if message is None else [message]
        since = order.last

        def filled(replay: Replay) -> None:
            if self._orders.get(topic) is not order:
                return  # unsubscribed meanwhile
            order.filling = False
            held, order.held = order.held, []
            if replay.error:
                logger.warning("topic %r: messages after %s lost for this node: %s", topic, since, replay.error)
                if held:
                    order.last = None  # start again from what comes
            for missed in [*replay.messages, *held]:
                self._deliver(missed)

        self.backplane.replay(topic, since, filled)

    def _resumed(self) -> None:
        """The backplane reconnected: fetch what each topic with history missed."""
        for topic, order in list(self._orders.items()):
            if order.last is not None and not order.filling:
                self._fill(topic, order, None)

    def _send_local(self, message: Message) -> None:
        topic = message.topic
        data = self._data(message)
        subscribers = self._subscribers.get(topic)
        if subscribers:
            self._fan_out(list(subscribers), data)
        catchups = self._catchups.get(topic)
        if catchups:
            self._catch_up(topic, catchups, message, data)

    def _catch_up(self, topic: str, catchups: dict[S, _Catchup], message: Message, data: Any) -> None:
        """Hold ``message`` for the clients whose replay is on its way; let the
        recovered ones that it follows join the live subscribers."""
        position = message.position
        joining = []
        behind = []
        for ws, catchup in catchups.items():
            after = catchup.after
            if after is None:  # the replay is on its way
                if len(catchup.held) < _MAX_HELD:
                    catchup.held.append(message)
                else:
                    catchup.overflowed = True
            elif position is None or position.epoch != after.epoch or position.offset == after.offset + 1:
                joining.append(ws)
            elif position.offset > after.offset:
                # Published before this node's subscription took effect on the
                # backplane: it never came live, the history has it.
                behind.append(ws)
            # else: the client has it from the replay already
        for ws in joining:
            del catchups[ws]
            if ws.ready_state == 1:
                ws.send(data)
                self._subscribers.setdefault(topic, set()).add(ws)
        for ws in behind:
            catchup = catchups[ws]
            since, catchup.after, catchup.held = catchup.after, None, [message]
            assert since is not None
            self.backplane.replay(topic, since, functools.partial(self._recovered, ws, topic, since, on_recovery=None))
        if not self._catchups.get(topic):
            self._catchups.pop(topic, None)

    def _data(self, message: Message) -> Any:
        data: Any = message.payload.decode("utf-8") if message.text else message.payload
        entry = self.histories.get(message.topic)
        if entry is not None and entry[1] is not None and message.position is not None:
            return entry[1](message.position, data)
        return data
