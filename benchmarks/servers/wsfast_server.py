"""wsfast benchmark server: ``wsfast.Server`` with a ``Handler`` subclass (see ``_common``)."""

from __future__ import annotations

import time

import _common

from wsfast.server import Handler, Server, ServerConnection


class Echo(Handler):
    def on_message(self, ws: ServerConnection, message: str | bytes) -> None:
        ws.send(message)


class Broadcast(Handler):
    def __init__(self, size: int) -> None:
        self.padding = bytes(size - 8)
        self.server: Server | None = None

    def on_message(self, ws: ServerConnection, message: str | bytes) -> None:
        trigger = _common.parse_trigger(message)
        if trigger is None or self.server is None:
            return
        pattern, count = trigger
        if pattern == "burst":
            for _ in range(count):
                self.publish_one()
        elif pattern == "trickle":
            self.trickle(count)
        else:
            self.at_rate(count, self.server.loop.now, 0)

    def publish_one(self) -> None:
        assert self.server is not None
        self.server.broadcast(_common.time_ns().to_bytes(8, "big") + self.padding)

    def trickle(self, left: int) -> None:
        """One message now, the next in the next loop iteration."""
        assert self.server is not None
        self.publish_one()
        if left > 1:
            self.server.call_later(0, self.trickle, left - 1)

    def at_rate(self, rate: int, start: float, sent: int) -> None:
        assert self.server is not None
        now = time.monotonic()
        for _ in range(_common.owed(rate, now - start, sent)):
            self.publish_one()
            sent += 1
        self.server.call_later(max(0.0, start + sent / rate - now), self.at_rate, rate, start, sent)


def main() -> None:
    args = _common.parse_args(__doc__ or "")
    handler: Handler = Echo() if args.mode == "echo" else Broadcast(args.size)
    server = Server(handler, host=args.host, port=args.port, ping_interval=None, max_connections=100_000)
    if isinstance(handler, Broadcast):
        handler.server = server
    _common.ready(server.port)
    server.serve_forever()


if __name__ == "__main__":
    main()
