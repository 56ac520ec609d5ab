"""wsfast.aio benchmark server: ``wsfast.aio.serve`` with a ``wsfast.Handler`` on uvloop (see ``_common``)."""

from __future__ import annotations

import asyncio

import _common
import uvloop

import wsfast
import wsfast.aio
from wsfast.aio import Server, ServerConnection


class Echo(wsfast.Handler):
    def on_message(self, ws: ServerConnection, message: str | bytes) -> None:
        ws.send(message)


class Broadcast(wsfast.Handler):
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


async def main() -> None:
    args = _common.parse_args(__doc__ or "")
    handler = Echo() if args.mode == "echo" else Broadcast(args.size)
    options = {"ping_interval": None, "max_connections": 100_000, "backlog": 4096}
    async with wsfast.aio.serve(handler, args.host, args.port, **options) as server:
        if isinstance(handler, Broadcast):
            handler.server = server
        _common.ready(server.port)
        await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main())
