"""The demo application of ``wsfast serve``: an echo, and a binary feed on ``/feed``.

The path a client connects to picks what it gets:

- ``/feed``: the feed. The client is subscribed to the topic ``"feed"``;
  what it sends is ignored.
- any other path: the echo. Every message comes back as it was sent.

``--mode echo`` turns the feed off and ``--mode feed`` the echo; a client
that asks for what is off is closed with 1008 and a reason saying why.

A feed message is binary, ``--size`` bytes (at least 24), big-endian::

    offset 0   uint64   sequence number, from 0, +1 per message
    offset 8   float64  time.time() when it was published
    offset 16  float64  value: a random walk (a "price")
    offset 24  zeros    padding up to --size

With ``--backplane redis://host:port/db``, every node on that Redis serves
one feed (see :mod:`wsfast.backplane.feed`): one node produces it, the
others relay it; the sequence number is the message's offset in the feed's
history, bytes 24-31 its epoch, and a client that connects to
``/feed?since=EPOCH:OFFSET`` first gets every message it missed. It gets a
text message too, JSON: ``{"node": ...}`` on connecting, then
``{"recovered": ..., "count": ..., "reason": ...}`` when it asked for ``since``.
"""

from __future__ import annotations

import json
import math
import random
import struct
import time

from ..frames import CloseCode
from ..loop import TimerHandle
from ..server import Handler, Server, ServerConnection

__all__ = ["FEED_HEADER", "FEED_PATH", "FEED_TOPIC", "DemoHandler", "Feed", "feed_message"]

#: Clients that connect to this path get the feed.
FEED_PATH = "/feed"
#: The topic the feed is published to.
FEED_TOPIC = "feed"
#: The start of every feed message: sequence, ``time.time()``, value.
FEED_HEADER = struct.Struct(">Qdd")


def feed_message(sequence: int, value: float, size: int, timestamp: float | None = None) -> bytes:
    """Build one feed message (layout in the module docstring).

    Args:
        sequence: the sequence number, 0 to 2**64 - 1.
        value: the sample value.
        size: the message size in bytes, at least ``FEED_HEADER.size`` (24).
        timestamp: the publication time; ``time.time()`` when ``None``.

    Raises:
        ValueError: ``size`` is below 24.
    """
    if size < FEED_HEADER.size:
        raise ValueError(f"a feed message has at least {FEED_HEADER.size} bytes, not {size}")
    head = FEED_HEADER.pack(sequence, time.time() if timestamp is None else timestamp, value)
    return head + bytes(size - FEED_HEADER.size)


class Feed:
    """The demo feed: publishes binary messages to a topic at a steady rate.

    Driven by the server's own timers (``call_later``), so it needs no thread.
    Messages are published on a fixed schedule; when the loop falls behind
    (a busy or stopped loop), up to 50 ms worth of messages are caught up at
    once and the rest of the backlog is skipped, never sent in a flood.

    Args:
        server: the server to publish on.
        rate: messages per second, > 0.
        size: bytes per message, >= 24.
        topic: the topic to publish to.
    """

    def __init__(self, server: Server, *, rate: float, size: int, topic: str = FEED_TOPIC) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"rate must be a positive number, not {rate!r}")
        feed_message(0, 0.0, size)  # validates size
        self.server = server
        self.rate = rate
        self.size = size
        self.topic = topic
        #: The sequence number of the next message.
        self.sequence = 0
        #: The last value published.
        self.value = 100.0
        self._padding = bytes(size - FEED_HEADER.size)
        self._interval = 1.0 / rate
        self._max_burst = max(1, math.ceil(rate * 0.05))
        self._random = random.Random()
        self._next = 0.0
        self._timer: TimerHandle | None = None

    def start(self) -> None:
        """Start publishing: call before the loop runs, or in the loop thread."""
        if self._timer is None:
            self._next = time.monotonic()
            self._timer = self.server.call_later(0.0, self._tick)

    def stop(self) -> None:
        """Stop publishing (loop thread, or before the loop runs)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        now = time.monotonic()
        publish = self.server.publish
        pack = FEED_HEADER.pack
        padding = self._padding
        gauss = self._random.gauss
        burst = 0
        while self._next <= now and burst < self._max_burst:
            # feed_message(), inlined. The value: a random walk that stays positive, like a price.
            self.value = max(0.01, self.value * (1.0 + gauss(0.0, 0.002)))
            publish(self.topic, pack(self.sequence, time.time(), self.value) + padding)
            self.sequence += 1
            self._next += self._interval
            burst += 1
        if self._next <= now:
            self._next = now + self._interval  # too far behind: skip, do not flood
        self._timer = self.server.call_later(max(0.0, self._next - time.monotonic()), self._tick)


class DemoHandler(Handler):
    """What ``wsfast serve`` does with its clients: echo, and the feed on ``/feed``.

    Args:
        echo: echo every message of clients on paths other than ``/feed``.
        feed: subscribe clients on ``/feed`` to the ``"feed"`` topic.
        node: this node's name when the feed spans nodes (``--backplane``).
    """

    def __init__(self, *, echo: bool = True, feed: bool = True, node: str | None = None) -> None:
        self.echo = echo
        self.feed = feed
        self.node = node

    def on_open(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else "/"
        if path == FEED_PATH:
            if self.feed and self.node is not None:
                _subscribe_across_nodes(ws, self.node)
            elif self.feed:
                ws.subscribe(FEED_TOPIC)
            else:
                ws.close(CloseCode.POLICY_VIOLATION, "no feed here: the server runs with --mode echo")
        elif not self.echo:
            ws.close(CloseCode.POLICY_VIOLATION, f"no echo here: the server runs with --mode feed; use {FEED_PATH}")

    def on_message(self, ws: ServerConnection, message: str | bytes) -> None:
        # Feed subscribers are the only clients with topics; they get no echo.
        if not ws.topics:
            ws.send(message)


def _subscribe_across_nodes(ws: ServerConnection, node: str) -> None:
    """The feed with a backplane: say which node this is, recover from ``?since=``."""
    from ..backplane import Position, Recovery

    ws.send(json.dumps({"node": node}))
    since = ws.request.query.get("since", [""])[-1] if ws.request is not None else ""
    if not since:
        ws.subscribe(FEED_TOPIC)
        return
    try:
        position = Position.parse(since)
    except ValueError as exc:
        ws.close(CloseCode.POLICY_VIOLATION, str(exc)[:120])
        return

    def recovered(recovery: Recovery) -> None:
        if ws.ready_state == 1:
            ws.send(json.dumps({"recovered": recovery.recovered, "count": recovery.count, "reason": recovery.reason}))

    ws.subscribe(FEED_TOPIC, since=position, on_recovery=recovered)
