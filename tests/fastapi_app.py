"""A FastAPI app for the uvicorn tests: an echo endpoint and chat rooms.

Served by ``uvicorn tests.fastapi_app:app --ws wsfast.asgi:UvicornProtocol``.
``/echo`` sends every message back; ``/chat/{room}`` sends every text message
to all members of the room, the sender included, prefixed with its name.
"""

from __future__ import annotations

from collections import defaultdict

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()
rooms: defaultdict[str, set[WebSocket]] = defaultdict(set)


@app.websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="echo.v1" if "echo.v1" in websocket.scope["subprotocols"] else None)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        pass


@app.websocket("/chat/{room}")
async def chat(websocket: WebSocket, room: str, name: str) -> None:
    await websocket.accept()
    members = rooms[room]
    members.add(websocket)
    try:
        async for text in websocket.iter_text():
            for member in list(members):
                await member.send_text(f"{name}: {text}")
    except WebSocketDisconnect:
        pass
    finally:
        members.discard(websocket)


@app.get("/")
async def index() -> dict[str, str]:
    return {"app": "wsfast test"}
