"""websockets benchmark server: ``websockets.asyncio.server.serve`` on asyncio, compression off (see ``_common``)."""

from __future__ import annotations

import asyncio

import _common
from websockets.asyncio.server import ServerConnection, broadcast, serve

PADDING = b""
TASKS: set[asyncio.Future[None]] = set()  # the running publishers


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def publisher(ws: ServerConnection) -> None:
    server = ws.server  # type: ignore[attr-defined]

    async def publish_one() -> None:
        broadcast(server.connections, _common.time_ns().to_bytes(8, "big") + PADDING)

    async for message in ws:
        trigger = _common.parse_trigger(message)
        if trigger is not None:
            TASKS.add(asyncio.ensure_future(_common.publish_async(*trigger, publish_one)))


async def main() -> None:
    global PADDING
    args = _common.parse_args(__doc__ or "")
    PADDING = bytes(args.size - 8)
    handler = echo if args.mode == "echo" else publisher
    async with serve(
        handler,
        args.host,
        args.port,
        compression=None,
        ping_interval=None,
        max_size=None,
        backlog=4096,
    ) as server:
        _common.ready(server.sockets[0].getsockname()[1])
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
