"""What both clients do to open a connection: the sans-IO protocol, the TLS
context and the addresses for a URL, and errors that name the URL."""

from __future__ import annotations

import ipaddress
import socket
import ssl as ssl_module
from collections.abc import Iterable, Sequence
from typing import Any

from ..extensions import PerMessageDeflate
from ..handshake import ClientHandshake
from ..protocol import Connection, Role

__all__ = ["client_protocol", "connection_error", "is_ip_literal", "resolve", "tls_context"]


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


def is_ip_literal(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address, which needs no resolver."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve(host: str, port: int) -> list[tuple[int, Any]]:
    """The ``(family, sockaddr)`` pairs to try for ``host:port``, in the resolver's
    order (IPv6 and IPv4 alike). Blocks while the name is resolved.

    Raises:
        OSError: the name cannot be resolved (``socket.gaierror``).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, sockaddr) for family, _, _, _, sockaddr in infos]


def connection_error(url: str, error: OSError) -> OSError:
    """``error`` again (same class, same ``errno``), its message naming ``url``."""
    if error.errno is None:
        return type(error)(f"cannot connect to {url}: {error}")
    return type(error)(error.errno, f"cannot connect to {url}: {error.strerror}")
