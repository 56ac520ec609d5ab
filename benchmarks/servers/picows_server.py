"""picows benchmark server, on uvloop (see ``_common``)."""

from __future__ import annotations

import asyncio

import _common
import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

CLIENTS: set[WSTransport] = set()
TASKS: set[asyncio.Future[None]] = set()  # the running trickle and rate publishers


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif msg_type == WSMsgType.BINARY or msg_type == WSMsgType.TEXT:
            transport.send(msg_type, frame.get_payload_as_memoryview())


class Broadcast(WSListener):
    padding = b""

    def on_ws_connected(self, transport: WSTransport) -> None:
        CLIENTS.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        CLIENTS.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif msg_type == WSMsgType.TEXT:
            trigger = _common.parse_trigger(frame.get_payload_as_ascii_text())
            if trigger is None:
                return
            pattern, count = trigger
            if pattern == "burst":
                for _ in range(count):
                    self.publish_one()
            else:
                TASKS.add(asyncio.ensure_future(_common.publish_async(pattern, count, self.publish_async)))

    def publish_one(self) -> None:
        payload = _common.time_ns().to_bytes(8, "big") + self.padding
        binary = WSMsgType.BINARY
        for client in CLIENTS:
            client.send(binary, payload)

    async def publish_async(self) -> None:
        self.publish_one()


async def serve() -> None:
    args = _common.parse_args(__doc__ or "")
    Broadcast.padding = bytes(args.size - 8)
    listener = Echo if args.mode == "echo" else Broadcast

    def factory(request: WSUpgradeRequest) -> WSListener:
        return listener()

    server = await ws_create_server(factory, args.host, args.port, enable_auto_ping=False, backlog=4096)
    _common.ready(server.sockets[0].getsockname()[1])
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve())
