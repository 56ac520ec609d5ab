"""uvicorn benchmark server: a Starlette WebSocket echo endpoint, ``--ws websockets-sansio|wsproto`` (see ``_common``).

Echo mode only: uvicorn is measured with and without ``wsfast.accelerate()``
by ``accelerated.py``, not in the broadcast tables.
"""

from __future__ import annotations

import asyncio
import socket
import sys

import _common
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

WS_IMPLEMENTATIONS = ("websockets-sansio", "wsproto")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    receive, send = websocket.receive, websocket.send
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        if message.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            await send({"type": "websocket.send", "text": message["text"]})


def take_ws_argument() -> str:
    """Remove ``--ws NAME`` from the command line (``_common`` parses the rest) and return NAME."""
    if "--ws" not in sys.argv:
        return WS_IMPLEMENTATIONS[0]
    index = sys.argv.index("--ws")
    name = sys.argv[index + 1] if index + 1 < len(sys.argv) else ""
    if name not in WS_IMPLEMENTATIONS:
        sys.exit(f"--ws must be one of {', '.join(WS_IMPLEMENTATIONS)}, got {name!r}")
    del sys.argv[index : index + 2]
    return name


async def main() -> None:
    ws = take_ws_argument()
    args = _common.parse_args(__doc__ or "")
    if args.mode != "echo":
        sys.exit("uvicorn_server.py serves --mode echo only")
    app = Starlette(routes=[WebSocketRoute("/", echo)])
    listener = socket.create_server((args.host, args.port), backlog=4096)
    config = uvicorn.Config(
        app,
        ws=ws,
        loop="asyncio",
        lifespan="off",
        log_level="critical",
        access_log=False,
        ws_max_size=2**31,
        ws_ping_interval=None,
        ws_per_message_deflate=False,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    _common.ready(listener.getsockname()[1])
    await serving


if __name__ == "__main__":
    asyncio.run(main())
