"""The asyncio WebSocket client: :func:`connect`, with optional reconnection."""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import AsyncIterator, Generator, Iterable, Sequence
from types import TracebackType
from typing import Any

from ..client.opening import client_protocol, tls_context
from ..client.reconnect import Reconnect
from ..events import HandshakeFailed, Opened
from ..exceptions import InvalidHandshake
from ..extensions import PerMessageDeflate
from ..handshake import Response
from ..protocol import DEFAULT_MAX_MESSAGE_SIZE
from .connection import DEFAULT_MAX_QUEUE, Connection

__all__ = ["ClientConnection", "connect"]

logger = logging.getLogger("wsfast.aio.client")


class ClientConnection(Connection):
    """A client connection; see :class:`~wsfast.aio.connection.Connection` for its API.

    Attributes:
        response: the server's handshake response, once open.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.response: Response | None = None
        self._opening: asyncio.Future[None] = self._loop.create_future()

    def _on_open(self, event: Opened) -> None:
        super()._on_open(event)
        self.response = event.response
        if not self._opening.done():
            self._opening.set_result(None)

    def _on_handshake_failed(self, event: HandshakeFailed) -> None:
        if not self._opening.done():
            self._opening.set_exception(event.error)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self._opening.done():
            self._opening.set_exception(
                InvalidHandshake(502, "connection closed during the opening handshake") if exc is None else exc
            )


class connect:  # noqa: N801 - used as a function, like websockets.connect
    """Connect to a WebSocket server on asyncio.

    ``async with connect(url) as ws:`` opens one connection and closes it on
    exit. ``ws = await connect(url)`` opens one to close yourself.
    ``async for ws in connect(url, reconnect=wsfast.Reconnect()):`` yields a
    new connection each time the previous one is over, waiting as the policy
    says between failed attempts, and raises the last error once
    ``max_attempts`` attempts in a row failed.

    Args:
        url: ``ws://`` or ``wss://`` URL.
        subprotocols: subprotocols to offer, in order of preference.
        origin: the ``Origin`` header to send.
        extra_headers: more request headers.
        compression: True or a :class:`wsfast.PerMessageDeflate` to offer compression.
        ssl: the client ``SSLContext`` for ``wss://`` (default: the system's trusted CAs).
        open_timeout: bound on the TCP connection plus the handshake.
        close_timeout: bound on the closing handshake.
        max_message_size: the largest message accepted (1009 beyond).
        max_queue: messages held for ``recv()`` before reading pauses.
        write_limit: bytes the transport may hold before ``await ws.send()`` waits.
        reconnect: the policy for ``async for`` (default: :class:`wsfast.Reconnect()`).

    Raises:
        ValueError: a bad URL or option (at once).
    """

    def __init__(
        self,
        url: str,
        *,
        subprotocols: Sequence[str] = (),
        origin: str | None = None,
        extra_headers: Iterable[tuple[str, str]] = (),
        compression: PerMessageDeflate | bool = False,
        ssl: ssl_module.SSLContext | None = None,
        open_timeout: float = 10.0,
        close_timeout: float = 5.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_queue: int = DEFAULT_MAX_QUEUE,
        write_limit: int = 4 * 1024 * 1024,
        reconnect: Reconnect | None = None,
    ) -> None:
        self._handshake_options: dict[str, Any] = {
            "origin": origin,
            "subprotocols": subprotocols,
            "extra_headers": list(extra_headers),
            "compression": compression,
            "max_message_size": max_message_size,
        }
        _, handshake = client_protocol(url, **self._handshake_options)  # validates the URL and options
        self.url = url
        self._ssl = tls_context(ssl, handshake.secure)
        self._connection_options = {"max_queue": max_queue, "write_limit": write_limit, "close_timeout": close_timeout}
        self.open_timeout = open_timeout
        self.reconnect = reconnect if reconnect is not None else Reconnect()
        self._connection: ClientConnection | None = None

    async def _open(self) -> ClientConnection:
        protocol, handshake = client_protocol(self.url, **self._handshake_options)
        loop = asyncio.get_running_loop()

        async def opening() -> ClientConnection:
            _, ws = await loop.create_connection(
                lambda: ClientConnection(protocol, **self._connection_options),
                handshake.host,
                handshake.port,
                ssl=self._ssl,
                server_hostname=handshake.host if self._ssl is not None else None,
            )
            try:
                await asyncio.shield(ws._opening)
            except BaseException:
                ws._opening.cancel()  # nobody waits for it any more
                ws.abort()
                raise
            return ws

        try:
            return await asyncio.wait_for(opening(), self.open_timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"opening {self.url} took over {self.open_timeout} seconds") from None

    def __await__(self) -> Generator[Any, None, ClientConnection]:
        return self._open().__await__()

    async def __aenter__(self) -> ClientConnection:
        self._connection = await self._open()
        return self._connection

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        assert self._connection is not None
        await self._connection.close()

    async def __aiter__(self) -> AsyncIterator[ClientConnection]:
        """Yield a connection, and a new one whenever the previous one is over.

        A connection that stayed open less than ``reset_after`` counts as an
        attempt for the backoff, so a server that accepts and drops at once
        is not hammered; only failures to connect count towards ``max_attempts``.
        """
        loop = asyncio.get_running_loop()
        policy = self.reconnect
        attempt = failures = 0
        while True:
            try:
                ws = await self._open()
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                attempt += 1
                failures += 1
                if policy.max_attempts is not None and failures >= policy.max_attempts:
                    raise
                delay = policy.delay(attempt)
                logger.info("connecting to %s failed (%s); retrying in %.2f s", self.url, exc, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            opened_at = loop.time()
            try:
                yield ws
            finally:
                await ws.close()
            if loop.time() - opened_at >= policy.reset_after:
                attempt = 0
            else:
                attempt += 1
                await asyncio.sleep(policy.delay(attempt))
