"""aiohttp benchmark server, on uvloop, compression off (see ``_common``)."""

from __future__ import annotations

import _common
import uvloop
from aiohttp import WSMsgType, web

CLIENTS: set[web.WebSocketResponse] = set()
PADDING = b""


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
            if msg.type == WSMsgType.TEXT:
                n = _common.burst_count(msg.data)
                time_ns = _common.time_ns
                for _ in range(n):
                    payload = time_ns().to_bytes(8, "big") + PADDING
                    for client in list(CLIENTS):
                        if not client.closed:
                            await client.send_bytes(payload)
    finally:
        CLIENTS.discard(ws)
    return ws


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
    await asyncio_forever()


async def asyncio_forever() -> None:
    import asyncio

    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main())
