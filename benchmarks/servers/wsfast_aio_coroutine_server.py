"""wsfast.aio benchmark server: ``wsfast.aio.serve`` with ``async def handler(ws)``, on asyncio (see ``_common``).

The websockets idiom (one task per connection, ``async for`` and ``await
ws.send``) on the standard loop, as ``websockets_server.py`` runs.
"""

from __future__ import annotations

import asyncio

import _common

import wsfast.aio
from wsfast.aio import ServerConnection

PADDING = b""


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def publisher(ws: ServerConnection) -> None:
    async for message in ws:
        n = _common.burst_count(message)
        time_ns = _common.time_ns
        for _ in range(n):
            ws.server.broadcast(time_ns().to_bytes(8, "big") + PADDING)


async def main() -> None:
    global PADDING
    args = _common.parse_args(__doc__ or "")
    PADDING = bytes(args.size - 8)
    handler = echo if args.mode == "echo" else publisher
    options = {"ping_interval": None, "max_connections": 100_000, "backlog": 4096}
    async with wsfast.aio.serve(handler, args.host, args.port, **options) as server:
        _common.ready(server.port)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
