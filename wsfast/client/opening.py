"""What both clients do to open a connection: the sans-IO protocol and the TLS context for a URL."""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Iterable, Sequence

from ..extensions import PerMessageDeflate
from ..handshake import ClientHandshake
from ..protocol import Connection, Role

__all__ = ["client_protocol", "tls_context"]


def client_protocol(
    url: str,
    *,
    origin: str | None,
    subprotocols: Sequence[str],
    extra_headers: Iterable[tuple[str, str]],
    compression: PerMessageDeflate | bool,
    max_message_size: int,
) -> tuple[Connection, ClientHandshake]:
    if compression is True:
        compression = PerMessageDeflate()
    handshake = ClientHandshake(
        url,
        origin=origin,
        subprotocols=subprotocols,
        extensions=[compression] if compression else [],
        extra_headers=extra_headers,
    )
    return Connection(Role.CLIENT, handshake=handshake, max_message_size=max_message_size), handshake


def tls_context(ssl: ssl_module.SSLContext | None, secure: bool) -> ssl_module.SSLContext | None:
    if not secure:
        if ssl is not None:
            raise ValueError("an ssl context was given for a ws:// URL: use wss://")
        return None
    return ssl if ssl is not None else ssl_module.create_default_context()
