"""The Redis backplane: topics across nodes, history in Redis streams.

Two connections per node, both on the server's own loop (no thread): one
pipelines commands (publishes and history reads, replies matched in order),
the other is in subscriber mode. Nothing waits for Redis: a publish is
queued, and while Redis is unreachable it waits in a bounded outbox (the
oldest are dropped beyond ``outbox_limit`` bytes, and counted).

Keys and channels of topic ``T``: the channel ``wsfast:T``; with history,
``wsfast:{T}:epoch``, ``wsfast:{T}:offset`` and the stream
``wsfast:{T}:history`` (the braces keep them in one Redis Cluster slot).

What travels on a channel: ``L`` + kind (``t`` text, ``b`` binary) + the
publishing node + a space + the payload, for topics without history; ``H`` +
kind + epoch + ``:`` + offset + ``:`` + payload, for topics with history.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import logging
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..loop import Loop, Stream
from . import resp
from .base import HistoryOptions, Message, Position, Replay
from .memory import replay_after

__all__ = ["PUBLISH_SCRIPT", "REPLAY_SCRIPT", "RedisBackplane", "RedisURL"]

logger = logging.getLogger("wsfast.backplane")

#: Assign the next offset, keep the message, publish it: atomically.
#: KEYS: epoch, offset, history. ARGV: channel, kind, size, ttl in ms (0: none), payload
#: (last, so that the rest of the command is built once per topic).
PUBLISH_SCRIPT = b"""
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  local now = redis.call('TIME')
  epoch = string.format('%s%06d', now[1], now[2])
  redis.call('SET', KEYS[1], epoch)
  redis.call('DEL', KEYS[2], KEYS[3])
end
local offset = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[3], offset .. '-0', 'd', ARGV[2] .. ARGV[5])
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
redis.call('PUBLISH', ARGV[1], 'H' .. ARGV[2] .. epoch .. ':' .. offset .. ':' .. ARGV[5])
return offset
"""

#: The epoch, the latest offset and the kept messages after an offset: atomically.
#: KEYS: epoch, offset, history. ARGV: the offset after which to read.
REPLAY_SCRIPT = b"""
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {'', 0, {}} end
local top = tonumber(redis.call('GET', KEYS[2]) or '0')
return {epoch, top, redis.call('XRANGE', KEYS[3], (tonumber(ARGV[1]) + 1) .. '-0', '+')}
"""

_PUBLISH_SHA = hashlib.sha1(PUBLISH_SCRIPT).hexdigest()
_REPLAY_SHA = hashlib.sha1(REPLAY_SCRIPT).hexdigest()
_CHANNEL_PREFIX = "wsfast:"
_KINDS = {True: b"t", False: b"b"}
# Reconnection delays: doubling from the first to the last, each one
# randomised down to half of it (jitter) so that nodes do not retry in step.
_FIRST_DELAY = 0.1
# Publish commands built ahead, one per topic, at most.
_MAX_HEADS = 1024
_MAX_DELAY = 5.0


@dataclass(frozen=True, slots=True)
class RedisURL:
    """What a ``redis://`` URL says: where, which database, which credentials."""

    host: str
    port: int
    db: int
    auth: list[str]
    outbox_limit: int

    @classmethod
    def parse(cls, url: str) -> RedisURL:
        """Parse ``redis://[[user]:password@]host[:port][/db][?outbox_limit=BYTES]``.

        Raises:
            ValueError: it is not such a URL.
        """
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(f"a Redis backplane URL starts with redis://, not {url!r}")
        try:
            port = parts.port or 6379
            db = int(parts.path.strip("/") or 0)
            query = parse_qs(parts.query, strict_parsing=bool(parts.query))
            unknown = set(query) - {"outbox_limit"}
            if unknown:
                raise ValueError(f"unknown option {sorted(unknown)[0]!r}")
            outbox_limit = int(query.get("outbox_limit", [8 << 20])[-1])
        except ValueError as exc:
            raise ValueError(f"invalid Redis backplane URL {url!r}: {exc}") from None
        auth = [unquote(p) for p in (parts.username, parts.password) if p] if parts.password else []
        return cls(parts.hostname or "127.0.0.1", port, db, auth, outbox_limit)


def _keys(topic: str) -> tuple[str, str, str]:
    return f"wsfast:{{{topic}}}:epoch", f"wsfast:{{{topic}}}:offset", f"wsfast:{{{topic}}}:history"


class _Link:
    """One connection to Redis on a loop: writes commands, hands back replies."""

    def __init__(
        self,
        loop: Loop,
        address: tuple[Any, ...],
        family: int,
        on_open: Callable[[], None],
        on_reply: Callable[[Any], None],
        on_lost: Callable[[str], None],
        on_drain: Callable[[], None] | None = None,
    ) -> None:
        self.loop = loop
        self.address = address
        self.family = family
        self.on_open = on_open
        self.on_reply = on_reply
        self.on_lost = on_lost
        self.on_drain = on_drain
        self.stream: Stream | None = None
        self._connecting: socket.socket | None = None
        self._reader = resp.reader()
        # A Loop writes its streams at the end of each iteration; wsfast.aio's
        # AsyncioLoop cannot see the end of one, and is told to instead.
        self._flush_later: Callable[[], None] | None = getattr(loop, "flush_later", None)

    @property
    def queued(self) -> int:
        return self.stream.queued if self.stream is not None else 0

    def connect(self) -> None:
        self._reader = resp.reader()
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        status = sock.connect_ex(self.address)
        if status not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            self.on_lost(os.strerror(status))
            return
        self._connecting = sock
        self.loop.selector.register(sock, 2, self._connected)  # EVENT_WRITE: connect() is done

    def _connected(self, sock: socket.socket, events: int) -> None:
        self.loop.selector.unregister(sock)
        self._connecting = None
        status = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if status:
            sock.close()
            self.on_lost(os.strerror(status))
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stream = Stream(self.loop, sock, on_data=self._on_data, on_close=self._on_close, on_drain=self.on_drain)
        self.on_open()

    def send(self, buffers: list[bytes], size: int = -1) -> None:
        assert self.stream is not None
        self.stream.write(buffers, size=size)
        if self._flush_later is not None:
            self._flush_later()

    def close(self) -> None:
        if self._connecting is not None:
            self.loop.selector.unregister(self._connecting)
            self._connecting.close()
            self._connecting = None
        if self.stream is not None:
            stream, self.stream = self.stream, None
            stream.on_close = lambda: None
            stream.close()

    def _on_data(self, data: memoryview) -> None:
        reader = self._reader
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not resp.NEED_DATA:
                self.on_reply(reply)
                if self.stream is None:
                    return
        except resp.ProtocolError as exc:
            logger.error("redis at %s sent what is not RESP2 (%s): dropping the connection", self.address, exc)
            if self.stream is not None:
                self.stream.close()

    def _on_close(self) -> None:
        self.stream = None
        self.on_lost("connection closed")


class RedisBackplane:
    """Topics across every node attached to one Redis; history in Redis streams.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db][?outbox_limit=BYTES]``.
        outbox_limit: the bytes of publishes kept while Redis is unreachable
            or slow (default 8 MiB, or the URL's ``outbox_limit``); beyond it
            the oldest are dropped and counted in :attr:`dropped`.
        node: this node's name, unique among the nodes (default: host name,
            PID and a random suffix).

    Raises:
        ValueError: the URL or ``outbox_limit`` is invalid.
        OSError: the host name cannot be resolved.
    """

    def __init__(self, url: str, *, outbox_limit: int | None = None, node: str = "") -> None:
        where = RedisURL.parse(url)
        if outbox_limit is None:
            outbox_limit = where.outbox_limit
        if outbox_limit < 0:
            raise ValueError(f"outbox_limit must be >= 0 bytes, not {outbox_limit}")
        family, _, _, _, address = socket.getaddrinfo(where.host, where.port, type=socket.SOCK_STREAM)[0]
        self.url = url
        self.node = node or f"{socket.gethostname()}-{os.getpid()}-{os.urandom(2).hex()}"
        self.outbox_limit = outbox_limit
        self._db = where.db
        self._auth = where.auth
        self._address = address
        self._family = family
        self._loop: Loop | None = None
        self._deliver: Callable[[Message], None] = lambda message: None
        self._resumed: Callable[[], None] = lambda: None
        self._topics: set[str] = set()
        self._closed = False
        # The commands connection: what waits to be written, what waits for a reply.
        self._commands: _Link | None = None
        self._commands_ready = False
        self._outbox: collections.deque[tuple[list[bytes], int]] = collections.deque()
        self._outbox_bytes = 0
        self._heads: dict[tuple[str, bool, HistoryOptions | None], tuple[bytes, bytes]] = {}
        self._replies: collections.deque[Callable[[Any], None] | None] = collections.deque()
        # The subscriber connection.
        self._pubsub: _Link | None = None
        self._pubsub_ready = False
        self._unconfirmed_subscriptions = 0
        self._resume_pending = False
        self._failures = {"commands": 0, "subscriber": 0}
        self._down_since: dict[str, float] = {}
        #: Publishes dropped because the outbox was full.
        self.dropped = 0
        #: Publishes written but never confirmed (the connection broke first).
        self.unconfirmed = 0
        #: Error replies to publishes (a script failed).
        self.errors = 0
        #: Successful reconnections, both connections counted.
        self.reconnections = 0

    def __repr__(self) -> str:
        return f"<RedisBackplane {self.url} node={self.node}>"

    # --- the Backplane interface -------------------------------------------------

    def attach(self, loop: Loop, deliver: Callable[[Message], None], resumed: Callable[[], None]) -> None:
        self._loop = loop
        self._deliver = deliver
        self._resumed = resumed
        self._commands = self._link("commands", self._commands_open, self._command_reply, self._flush_outbox)
        self._pubsub = self._link("subscriber", self._pubsub_open, self._pubsub_reply)
        self._commands.connect()
        self._pubsub.connect()

    def subscribe(self, topic: str) -> None:
        self._topics.add(topic)
        if self._pubsub_ready and self._pubsub is not None:
            self._pubsub.send(resp.encode("SUBSCRIBE", _CHANNEL_PREFIX + topic))

    def unsubscribe(self, topic: str) -> None:
        self._topics.discard(topic)
        if self._pubsub_ready and self._pubsub is not None:
            self._pubsub.send(resp.encode("UNSUBSCRIBE", _CHANNEL_PREFIX + topic))

    def publish(self, message: Message, history: HistoryOptions | None) -> None:
        key = (message.topic, message.text, history)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) >= _MAX_HEADS:
                self._heads.clear()  # many topics: keep the cache bounded
            head = self._heads[key] = self._command_head(*key)
        payload = message.payload
        start, prefix = head
        # The command without a copy of the payload: its head is built once per topic.
        command = [start, b"$%d\r\n%s" % (len(prefix) + len(payload), prefix), payload, b"\r\n"]
        size = len(start) + len(command[1]) + len(payload) + 2
        link = self._commands
        if self._commands_ready and link is not None and not self._outbox and link.queued <= self.outbox_limit:
            link.send(command, size)
            self._replies.append(self._published)
            return
        self._outbox.append((command, size))
        self._outbox_bytes += size
        while self._outbox_bytes > self.outbox_limit:
            _, dropped_size = self._outbox.popleft()
            self._outbox_bytes -= dropped_size
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning(
                    "redis backplane outbox full (%d bytes): %d publishes dropped", self.outbox_limit, self.dropped
                )

    def _command_head(self, topic: str, text: bool, history: HistoryOptions | None) -> tuple[bytes, bytes]:
        """The start of a publish to ``topic``: every argument but the last, and
        what starts the last one before the payload."""
        kind = _KINDS[text]
        channel = _CHANNEL_PREFIX + topic
        if history is None:
            arguments: list[str | bytes | int] = ["PUBLISH", channel]
            prefix = b"L" + kind + self.node.encode() + b" "
        else:
            ttl = 0 if history.ttl is None else max(1, round(history.ttl * 1000))
            arguments = ["EVALSHA", _PUBLISH_SHA, 3, *_keys(topic), channel, kind, history.size, ttl]
            prefix = b""
        encoded = resp.encode(*arguments)
        return b"*%d\r\n" % (len(arguments) + 1) + b"".join(encoded[1:]), prefix

    def replay(self, topic: str, since: Position, callback: Callable[[Replay], None]) -> None:
        link = self._commands
        if not self._commands_ready or link is None:
            callback(Replay(error="the history is unavailable: Redis is unreachable"))
            return

        def on_reply(reply: Any) -> None:
            if isinstance(reply, Exception):
                callback(Replay(error=f"the history is unavailable: {reply}"))
                return
            epoch, top, entries = reply
            messages = []
            for entry_id, fields in entries:
                offset = int(entry_id.partition(b"-")[0])
                data = fields[1]
                messages.append(Message(topic, data[:1] == b"t", data[1:], Position(epoch.decode(), offset)))
            callback(replay_after(since, epoch.decode() or None, int(top), messages))

        link.send(resp.encode("EVALSHA", _REPLAY_SHA, 3, *_keys(topic), since.offset))
        self._replies.append(on_reply)

    def command(self, *args: str | bytes | int, callback: Callable[[Any], None] | None = None) -> bool:
        """Send any Redis command on the commands connection, pipelined.

        Args:
            args: the command and its arguments.
            callback: called with the reply (a :class:`~wsfast.backplane.resp.ReplyError`
                for an error, or if the connection is lost first).

        Returns:
            Whether it was sent: False while Redis is unreachable.
        """
        link = self._commands
        if not self._commands_ready or link is None:
            return False
        link.send(resp.encode(*args))
        self._replies.append(callback)
        return True

    def close(self) -> None:
        self._closed = True
        for link in (self._commands, self._pubsub):
            if link is not None:
                link.close()
        self._commands_ready = self._pubsub_ready = False
        self._fail_replies()
        self._outbox.clear()
        self._outbox_bytes = 0

    # --- connections ----------------------------------------------------------------

    def _link(
        self,
        name: str,
        on_open: Callable[[], None],
        on_reply: Callable[[Any], None],
        on_drain: Callable[[], None] | None = None,
    ) -> _Link:
        assert self._loop is not None
        return _Link(
            self._loop,
            self._address,
            self._family,
            on_open,
            on_reply,
            lambda why: self._lost(name, why),
            on_drain,
        )

    def _expect_ok(self, what: str) -> Callable[[Any], None]:
        def check(reply: Any) -> None:
            if isinstance(reply, Exception):
                logger.error("redis at %s refused %s: %s", self.url, what, reply)

        return check

    def _commands_open(self) -> None:
        link = self._commands
        assert link is not None
        if self._auth:
            link.send(resp.encode("AUTH", *self._auth))
            self._replies.append(self._expect_ok("AUTH"))
        if self._db:
            link.send(resp.encode("SELECT", self._db))
            self._replies.append(self._expect_ok("SELECT"))
        link.send(resp.encode("SCRIPT", "LOAD", PUBLISH_SCRIPT) + resp.encode("SCRIPT", "LOAD", REPLAY_SCRIPT))
        self._replies.extend([self._expect_ok("SCRIPT LOAD"), self._expect_ok("SCRIPT LOAD")])
        self._commands_ready = True
        self._opened("commands")
        self._flush_outbox()
        self._resume_if_ready()

    def _pubsub_open(self) -> None:
        link = self._pubsub
        assert link is not None
        if self._auth:
            link.send(resp.encode("AUTH", *self._auth))
        self._pubsub_ready = True
        self._unconfirmed_subscriptions = len(self._topics)
        if self._topics:
            # Every topic in one command: one round trip after a reconnection.
            link.send(resp.encode("SUBSCRIBE", *(_CHANNEL_PREFIX + topic for topic in sorted(self._topics))))
        if self._opened("subscriber"):
            logger.warning("redis backplane: resubscribed to %d topics", len(self._topics))
            self._resume_pending = True
            self._resume_if_ready()

    def _resume_if_ready(self) -> None:
        """After a reconnection, once subscribed again and able to read history: resume."""
        if self._resume_pending and self._pubsub_ready and self._commands_ready and not self._unconfirmed_subscriptions:
            self._resume_pending = False
            self._resumed()

    def _opened(self, name: str) -> bool:
        """Log a reconnection; return whether this was one."""
        down_since = self._down_since.pop(name, None)
        attempts, self._failures[name] = self._failures[name], 0
        if down_since is None:
            return False
        self.reconnections += 1
        logger.warning(
            "redis backplane: %s connection to %s back after %.1f s and %d attempts (%d publishes dropped, "
            "%d unconfirmed so far)",
            name,
            self.url,
            time.monotonic() - down_since,
            attempts,
            self.dropped,
            self.unconfirmed,
        )
        return True

    def _lost(self, name: str, why: str) -> None:
        if name == "commands":
            self._commands_ready = False
            self._fail_replies()
        else:
            self._pubsub_ready = False
        if self._closed or self._loop is None:
            return
        attempts = self._failures[name]
        self._failures[name] = attempts + 1
        delay = min(_MAX_DELAY, _FIRST_DELAY * 2**attempts) * random.uniform(0.5, 1.0)
        if name not in self._down_since:
            self._down_since[name] = time.monotonic()
            logger.warning("redis backplane: %s connection to %s lost (%s); reconnecting", name, self.url, why)
        else:
            logger.info(
                "redis backplane: %s connection to %s failed (%s); retrying in %.2f s", name, self.url, why, delay
            )
        link = self._commands if name == "commands" else self._pubsub
        assert link is not None
        self._loop.call_later(delay, self._reconnect, link)

    def _reconnect(self, link: _Link) -> None:
        if not self._closed:
            link.connect()

    def _fail_replies(self) -> None:
        replies, self._replies = self._replies, collections.deque()
        for callback in replies:
            if callback == self._published:  # a bound method: equal, never the same object
                self.unconfirmed += 1
            elif callback is not None:
                callback(resp.ReplyError("the connection to Redis was lost"))

    def _flush_outbox(self) -> None:
        link = self._commands
        outbox = self._outbox
        if not self._commands_ready or link is None or not outbox:
            return
        while outbox and link.queued <= self.outbox_limit:
            command, size = outbox.popleft()
            self._outbox_bytes -= size
            link.send(command, size)
            self._replies.append(self._published)

    # --- replies ---------------------------------------------------------------------

    def _published(self, reply: Any) -> None:
        if isinstance(reply, Exception):
            self.errors += 1
            logger.error("redis backplane: a publish failed: %s", reply)

    def _command_reply(self, reply: Any) -> None:
        if not self._replies:
            logger.error("redis backplane: a reply nobody asked for: %r", reply)
            return
        callback = self._replies.popleft()
        if callback is not None:
            callback(reply)

    def _pubsub_reply(self, reply: Any) -> None:
        if isinstance(reply, Exception):
            logger.error("redis backplane: the subscriber connection got an error: %s", reply)
            return
        if type(reply) is not list or len(reply) != 3:
            return  # AUTH's +OK
        kind, channel, data = reply
        if kind == b"message":
            message = self._decode(channel, data)
            if message is not None:
                self._deliver(message)
        elif kind == b"subscribe" and self._unconfirmed_subscriptions:
            self._unconfirmed_subscriptions -= 1
            self._resume_if_ready()

    def _decode(self, channel: bytes, data: bytes) -> Message | None:
        topic = channel[len(_CHANNEL_PREFIX) :].decode("utf-8", "surrogateescape")
        text = data[1:2] == b"t"
        if data[:1] == b"L":
            origin, _, payload = data[2:].partition(b" ")
            return Message(topic, text, payload, origin=origin.decode("utf-8", "replace"))
        if data[:1] == b"H":
            epoch, _, rest = data[2:].partition(b":")
            offset, _, payload = rest.partition(b":")
            return Message(topic, text, payload, Position(epoch.decode(), int(offset)))
        logger.error("redis backplane: a message on %r that no wsfast node published: %r", channel, data[:40])
        return None
