"""wsfast benchmark server: ``wsfast.Server`` with a ``Handler`` subclass (see ``_common``)."""

from __future__ import annotations

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
        n = _common.burst_count(message)
        if not n or self.server is None:
            return
        broadcast = self.server.broadcast
        padding = self.padding
        time_ns = _common.time_ns
        for _ in range(n):
            broadcast(time_ns().to_bytes(8, "big") + padding)


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
