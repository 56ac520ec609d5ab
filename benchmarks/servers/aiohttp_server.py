"""aiohttp benchmark server, on uvloop, compression off (see ``_common``)."""

from __future__ import annotations

import asyncio

import _common
import uvloop
from aiohttp import WSMsgType, web

CLIENTS: set[web.WebSocketResponse] = set()
PADDING = b""
TASKS: set[asyncio.Future[None]] = set()  # the running publishers


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, autoping=True, max_msg_size=0)
    await ws.prepare(request)
    receive = ws.receive
    while True:
        msg = await receive()
        if msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
        elif msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        else:
            break
    return ws


async def publisher(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, autoping=True, max_msg_size=0)
    await ws.prepare(request)
    CLIENTS.add(ws)
    try:
        async for msg in ws:
            trigger = _common.parse_trigger(msg.data) if msg.type == WSMsgType.TEXT else None
            if trigger is not None:
                TASKS.add(asyncio.ensure_future(_common.publish_async(*trigger, publish_one)))
    finally:
        CLIENTS.discard(ws)
    return ws


async def publish_one() -> None:
    payload = _common.time_ns().to_bytes(8, "big") + PADDING
    for client in list(CLIENTS):
        if not client.closed:
            await client.send_bytes(payload)


async def main() -> None:
    global PADDING
    args = _common.parse_args(__doc__ or "")
    PADDING = bytes(args.size - 8)
    app = web.Application()
    app.router.add_get("/{tail:.*}", echo if args.mode == "echo" else publisher)
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=4096)
    await site.start()
    server = site._server  # the asyncio Server, for the port actually bound
    assert server is not None
    _common.ready(server.sockets[0].getsockname()[1])
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main())
