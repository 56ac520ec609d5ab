"""Stand-ins that let the benchmarks drive peers' parsers without a socket."""

from __future__ import annotations

import logging
import socket
from typing import Any

__all__ = ["UPGRADE", "AiohttpProtocol", "PicowsTransport", "open_picows_server"]

#: The handshake request that puts a picows server protocol in the OPEN state.
UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class AiohttpProtocol:
    """What aiohttp's WebSocketDataQueue needs from its protocol: never paused."""

    _reading_paused = False

    def pause_reading(self) -> None:  # not reached: the queue limit is 1 GiB
        raise AssertionError("aiohttp queue over its limit")

    def resume_reading(self) -> None:
        pass


class PicowsTransport:
    """The asyncio transport picows' WSProtocol asks for: writes are collected.

    picows looks at ``get_extra_info("socket")`` for setsockopt() and a file
    descriptor; an unconnected TCP socket serves. Its ``send()`` on that fd
    fails, so picows falls back to ``write()`` (only the 101 response here).
    """

    def __init__(self, sock: socket.socket) -> None:
        self._extra = {"socket": sock, "peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 2)}
        self.written: list[bytes] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def open_picows_server(sock: socket.socket, listener: Any) -> Any:
    """A picows server ``WSProtocol`` past its handshake, feeding frames to ``listener``.

    Call it inside a running event loop (picows' constructor wants one).
    """
    from picows import picows

    proto = picows.WSProtocol(
        None, None, False, lambda request: listener, logging.getLogger("wsfast.bench.picows"),
        True,  # disconnect_on_exception
        None,  # websocket_handshake_timeout
        False, 10, 10, picows.WSAutoPingStrategy.PING_WHEN_IDLE,  # no auto ping
        True,  # enable_auto_pong
        64 * 1024 * 1024,  # max_frame_size
        None,  # extra_headers
        256 * 1024,  # read_buffer_init_size: a 64 KiB read fits in one get_buffer()
    )  # fmt: skip
    transport = PicowsTransport(sock)
    proto.connection_made(transport)
    buffer = proto.get_buffer(-1)  # the upgrade request: picows is then OPEN
    buffer[: len(UPGRADE)] = UPGRADE
    proto.buffer_updated(len(UPGRADE))
    assert transport.written and transport.written[0].startswith(b"HTTP/1.1 101"), transport.written
    return proto
