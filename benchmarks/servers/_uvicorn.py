"""A Starlette app under uvicorn, for the ``uvicorn_*_server.py`` benchmark servers (see ``_common``).

The same endpoint runs under each WebSocket protocol class uvicorn can be
given (``--ws``); HTTP is httptools, the loop uvloop, keepalive pings,
compression and access logs are off.
"""

from __future__ import annotations

import socket

import _common
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

CLIENTS: set[WebSocket] = set()
PADDING = b""


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await websocket.send_bytes(message["bytes"])
            else:
                await websocket.send_text(message["text"])
    except WebSocketDisconnect:
        pass


async def broadcast(websocket: WebSocket) -> None:
    await websocket.accept()
    CLIENTS.add(websocket)
    time_ns = _common.time_ns
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            for _ in range(_common.burst_count(message.get("text") or b"")):
                payload = time_ns().to_bytes(8, "big") + PADDING
                for client in list(CLIENTS):
                    try:
                        await client.send_bytes(payload)
                    except (WebSocketDisconnect, RuntimeError, OSError):
                        CLIENTS.discard(client)
    except WebSocketDisconnect:
        pass
    finally:
        CLIENTS.discard(websocket)


def serve(ws: str) -> None:
    """Serve the endpoint of ``--mode`` with uvicorn's ``ws`` protocol class (a name or ``module:Class``)."""
    global PADDING
    args = _common.parse_args(__doc__ or "")
    PADDING = bytes(args.size - 8)
    app = Starlette(routes=[WebSocketRoute("/{path:path}", echo if args.mode == "echo" else broadcast)])
    config = uvicorn.Config(
        app,
        ws=ws,
        http="httptools",
        loop="uvloop",
        lifespan="off",
        log_level="critical",
        access_log=False,
        ws_ping_interval=None,
        ws_per_message_deflate=False,
        backlog=4096,
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    _common.ready(sock.getsockname()[1])
    uvicorn.Server(config).run(sockets=[sock])
