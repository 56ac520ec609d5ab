"""The WebSocket opening handshake (RFC 6455 §4), sans-IO, for both roles.

Nothing here touches a socket: bytes go in, objects and bytes come out. The
HTTP/1.1 messages and their parsers live in :mod:`wsfast.http11` and are
re-exported here.

Server: feed received bytes to :class:`RequestParser` until it returns a
:class:`Request`; pass it to :meth:`ServerHandshake.accept` and send
``accepted.response.serialize()``. If ``accept`` (or the parser) raises
:class:`~wsfast.exceptions.InvalidHandshake`, send
``ServerHandshake.reject(exc).serialize()`` and close the connection.

Client: send ``ClientHandshake.request().serialize()``, feed received bytes to
:class:`ResponseParser` until it returns a :class:`Response`, and pass it to
:meth:`ClientHandshake.validate`; on :class:`InvalidHandshake`, close.

In both roles, the parser's ``trailing`` bytes arrived after the handshake:
they are the first bytes of the WebSocket stream and must be handed to the
protocol layer.

Extensions take part through two structural protocols,
:class:`ServerExtension` and :class:`ClientExtension`; the runtime objects
they return end up in :attr:`Accepted.extensions`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias
from urllib.parse import urlsplit

from ._version import __version__
from .exceptions import InvalidHandshake, NegotiationError
from .http11 import TARGET, TOKEN, VERSION, Headers, Request, RequestParser, Response, ResponseParser, split_list

__all__ = [
    "GUID",
    "Accepted",
    "ClientExtension",
    "ClientHandshake",
    "ExtensionParams",
    "Headers",
    "Request",
    "RequestParser",
    "Response",
    "ResponseParser",
    "ServerExtension",
    "ServerHandshake",
    "accept_key",
    "format_extension_header",
    "generate_key",
    "parse_extension_header",
]

#: The fixed GUID of RFC 6455 §1.3, appended to the key before hashing.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: The parameters of one extension, in order. A parameter without ``=`` has
#: the value ``None``; ``permessage-deflate; client_max_window_bits=10``
#: has ``[("client_max_window_bits", "10")]``.
ExtensionParams: TypeAlias = list[tuple[str, str | None]]

_DEFAULT_AGENT = f"wsfast/{__version__}"

# RFC 9110 §5.6.4: quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def accept_key(key: str) -> str:
    """Compute the ``Sec-WebSocket-Accept`` value for a client key.

    Args:
        key: the client's ``Sec-WebSocket-Key`` value.

    Returns:
        ``base64(sha1(key + GUID))``, as RFC 6455 §1.3 defines it.
    """
    digest = hashlib.sha1((key + GUID).encode()).digest()
    return base64.b64encode(digest).decode()


def generate_key() -> str:
    """Draw a fresh ``Sec-WebSocket-Key``.

    Returns:
        16 random bytes (from :func:`os.urandom`), base64-encoded.
    """
    return base64.b64encode(os.urandom(16)).decode()


def _parse_extension_param(text: str) -> tuple[str, str | None]:
    """Parse ``name`` or ``name=token`` or ``name="token"``, or raise 400."""
    name, equals, value = text.partition("=")
    name = name.strip(" \t")
    if not TOKEN.fullmatch(name):
        raise InvalidHandshake(400, "malformed extension parameter name")
    if not equals:
        return name.lower(), None
    value = value.strip(" \t")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
    if not TOKEN.fullmatch(value):
        raise InvalidHandshake(400, f"malformed value for extension parameter {name}")
    return name.lower(), value


def parse_extension_header(values: Iterable[str]) -> list[tuple[str, ExtensionParams]]:
    """Parse ``Sec-WebSocket-Extensions`` header values.

    The grammar is RFC 6455 §9.1::

        extension-list  = 1#extension
        extension       = extension-token *( ";" extension-param )
        extension-param = token [ "=" (token | quoted-string) ]

    where a quoted value must be a token once unescaped. Whitespace around
    the separators is allowed and empty list elements are skipped. Commas
    and semicolons are never valid inside a value, so splitting on them
    before unquoting is exact.

    Args:
        values: the values of every ``Sec-WebSocket-Extensions`` line,
            in order.

    Returns:
        ``(name, params)`` for each extension in order, with extension and
        parameter names lower-cased and values unquoted.

    Raises:
        InvalidHandshake: 400 when a name or value is not a token.
    """
    extensions: list[tuple[str, ExtensionParams]] = []
    for element in split_list(values):
        name, *params = element.split(";")
        name = name.strip(" \t")
        if not TOKEN.fullmatch(name):
            raise InvalidHandshake(400, "malformed extension name")
        extensions.append((name.lower(), [_parse_extension_param(param) for param in params]))
    return extensions


def format_extension_header(name: str, params: ExtensionParams) -> str:
    """Format one extension for a ``Sec-WebSocket-Extensions`` header.

    Args:
        name: the extension name.
        params: its parameters; ``None`` values are written without ``=``.

    Returns:
        For example ``"permessage-deflate; client_max_window_bits=10"``.

    Raises:
        ValueError: if a name or value is not a token (RFC 6455 §9.1 allows
            nothing else, even quoted).
    """
    parts = [name]
    for param, value in params:
        parts.append(param if value is None else f"{param}={value}")
    for word in (name, *(param for param, _ in params), *(v for _, v in params if v is not None)):
        if not TOKEN.fullmatch(word):
            raise ValueError(f"not a token in extension {name!r}: {word!r}")
    return "; ".join(parts)


class ServerExtension(Protocol):
    """What :class:`ServerHandshake` needs from an extension (structural)."""

    @property
    def name(self) -> str:
        """The registered extension name, such as ``"permessage-deflate"``."""

    def accept(self, params: ExtensionParams) -> tuple[ExtensionParams, object] | None:
        """Consider one offer from the client.

        Args:
            params: the offer's parameters, as :func:`parse_extension_header`
                returns them.

        Returns:
            The parameters for the response and the negotiated runtime
            object, or ``None`` to decline this offer.

        Raises:
            NegotiationError: to refuse the whole handshake (400).
        """


class ClientExtension(Protocol):
    """What :class:`ClientHandshake` needs from an extension (structural)."""

    @property
    def name(self) -> str:
        """The registered extension name, such as ``"permessage-deflate"``."""

    def offer(self) -> ExtensionParams:
        """Return the parameters of the offer to send."""

    def confirm(self, params: ExtensionParams) -> object:
        """Accept the server's answer to the offer.

        Args:
            params: the parameters the server answered with.

        Returns:
            The negotiated runtime object.

        Raises:
            NegotiationError: if the server's parameters are unacceptable.
        """


@dataclass(frozen=True, slots=True)
class Accepted:
    """The outcome of a successful handshake.

    Attributes:
        subprotocol: the selected subprotocol, or ``None``.
        extensions: the negotiated runtime objects, in the order the
            response lists the extensions.
        response: the 101 response (sent by the server, received by the
            client).
    """

    subprotocol: str | None
    extensions: list[object]
    response: Response


class ServerHandshake:
    """Validates a client's request and builds the 101 response.

    The checks run in this order, and the first failure raises
    :class:`InvalidHandshake` with this status:

    ======  ==============================================================
    405     method other than GET (with ``Allow: GET``)
    505     HTTP version other than ``HTTP/1.x``
    400     ``HTTP/1.0`` (RFC 6455 §4.1 needs HTTP/1.1; ``HTTP/1.2`` and up
            count as 1.1, as RFC 9110 §2.5 says)
    400     no ``Host`` header, or more than one
    426     no ``Upgrade`` header at all: a plain HTTP request (with
            ``Upgrade: websocket``, as RFC 9110 §15.5.22 requires; use
            :meth:`is_upgrade` to route such requests elsewhere first)
    400     an ``Upgrade`` header without the ``websocket`` token
    400     a ``Connection`` header without the ``upgrade`` token
    400     ``Sec-WebSocket-Key`` missing, repeated, or not the base64 of
            exactly 16 bytes
    426     ``Sec-WebSocket-Version`` other than a single ``13`` (with
            ``Sec-WebSocket-Version: 13``)
    403     ``Origin`` not in the allowlist, or missing when required
    400     a ``Sec-WebSocket-Protocol`` element that is not a token
    400     a malformed ``Sec-WebSocket-Extensions`` header, or a
            :class:`NegotiationError` from an extension
    ======  ==============================================================

    Subprotocols: the client's offer is the union of its
    ``Sec-WebSocket-Protocol`` lines. The server picks the first of its own
    ``subprotocols`` that the client offered. When nothing matches, or the
    client offered nothing, the handshake still succeeds, without a
    ``Sec-WebSocket-Protocol`` header: browsers then open with
    ``protocol == ""`` and the application decides.

    Extensions: each offer, in the client's order, goes to every configured
    extension of that name until one accepts it; at most one offer per name
    is accepted.

    Args:
        origins: the allowed ``Origin`` values (``scheme://host[:port]``,
            compared ignoring case), or ``None`` to allow any. A request
            without ``Origin`` (a non-browser client) is allowed unless
            ``require_origin`` is set.
        require_origin: refuse requests without an ``Origin`` header.
        subprotocols: the supported subprotocols, most preferred first.
        select_subprotocol: replaces the preference rule: called with the
            request and the offered list (possibly empty), it returns one of
            the offered subprotocols or ``None``. It may raise
            :class:`InvalidHandshake` to refuse the connection.
        extensions: the supported extensions.
        extra_headers: fields added to every 101 response.
        server_header: the ``Server`` header value, or ``None`` for none.

    Raises:
        ValueError: if a subprotocol is not a token.
    """

    def __init__(
        self,
        *,
        origins: Iterable[str] | None = None,
        require_origin: bool = False,
        subprotocols: Sequence[str] = (),
        select_subprotocol: Callable[[Request, list[str]], str | None] | None = None,
        extensions: Sequence[ServerExtension] = (),
        extra_headers: Iterable[tuple[str, str]] = (),
        server_header: str | None = _DEFAULT_AGENT,
    ) -> None:
        for subprotocol in subprotocols:
            if not TOKEN.fullmatch(subprotocol):
                raise ValueError(f"subprotocol {subprotocol!r} is not a token")
        self._origins = None if origins is None else frozenset(o.lower() for o in origins)
        self._require_origin = require_origin
        self._subprotocols = tuple(subprotocols)
        self._select_subprotocol = select_subprotocol
        self._extensions = tuple(extensions)
        self._extra_headers = list(extra_headers)
        self._server_header = server_header

    @staticmethod
    def is_upgrade(request: Request) -> bool:
        """Tell whether a request asks for a WebSocket upgrade.

        Lets a server answer plain HTTP requests (a page, ``/healthz``)
        itself and pass only upgrades to :meth:`accept`.

        Args:
            request: a parsed request.

        Returns:
            True if its ``Upgrade`` header lists the ``websocket`` token.
        """
        return "websocket" in request.headers.tokens("Upgrade")

    def accept(self, request: Request) -> Accepted:
        """Validate a request and negotiate; build the 101 response.

        Args:
            request: the client's request.

        Returns:
            The subprotocol, the negotiated extension objects and the
            response to send. Its headers are, in order: ``Upgrade``,
            ``Connection``, ``Sec-WebSocket-Accept``, then
            ``Sec-WebSocket-Protocol`` and ``Sec-WebSocket-Extensions`` if
            anything was negotiated, the extra headers, and ``Server``.

        Raises:
            InvalidHandshake: with the status of the class table; send
                ``reject(exc)`` and close.
            ValueError: if ``select_subprotocol`` returned a subprotocol the
                client did not offer (a bug in the server, not the client).
        """
        key = self._check(request)
        subprotocol = self._choose_subprotocol(request)
        answers, negotiated = self._negotiate_extensions(request)
        headers = Headers(
            [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", accept_key(key)),
            ]
        )
        if subprotocol is not None:
            headers.add("Sec-WebSocket-Protocol", subprotocol)
        if answers:
            headers.add("Sec-WebSocket-Extensions", ", ".join(answers))
        for name, value in self._extra_headers:
            headers.add(name, value)
        if self._server_header is not None:
            headers.add("Server", self._server_header)
        return Accepted(subprotocol, negotiated, Response(101, "Switching Protocols", headers))

    @staticmethod
    def reject(exc: InvalidHandshake) -> Response:
        """Build the response that reports a failed handshake.

        Args:
            exc: the error raised by a parser or by :meth:`accept`.

        Returns:
            A plain-text response with ``exc.status``, ``exc.reason`` as its
            body and ``exc.headers``; it closes the connection.
        """
        return Response.plain(exc.status, exc.reason, exc.headers)

    def _check(self, request: Request) -> str:
        """Run the checks of the class table up to Origin; return the key."""
        headers = request.headers
        if request.method != "GET":
            raise InvalidHandshake(405, f"method {request.method} not allowed", [("Allow", "GET")])
        version = VERSION.fullmatch(request.version)
        if version is None or version[1] != "1":
            raise InvalidHandshake(505, f"HTTP version {request.version} not supported")
        if version[2] == "0":
            raise InvalidHandshake(400, "WebSocket needs HTTP/1.1")
        hosts = headers.get_all("Host")
        if len(hosts) != 1:
            raise InvalidHandshake(400, "repeated Host header" if hosts else "missing Host header")
        if "Upgrade" not in headers:
            raise InvalidHandshake(426, "this resource only speaks WebSocket", [("Upgrade", "websocket")])
        if not self.is_upgrade(request):
            raise InvalidHandshake(400, "Upgrade header does not name websocket")
        if "upgrade" not in headers.tokens("Connection"):
            raise InvalidHandshake(400, "Connection header lacks the upgrade option")
        keys = headers.get_all("Sec-WebSocket-Key")
        if len(keys) != 1 or not _is_valid_key(keys[0]):
            raise InvalidHandshake(400, "missing, repeated or invalid Sec-WebSocket-Key")
        if headers.get_all("Sec-WebSocket-Version") != ["13"]:
            raise InvalidHandshake(426, "unsupported WebSocket version", [("Sec-WebSocket-Version", "13")])
        self._check_origin(headers)
        return keys[0]

    def _check_origin(self, headers: Headers) -> None:
        origins = headers.get_all("Origin")
        if not origins:
            if self._require_origin:
                raise InvalidHandshake(403, "missing Origin header")
            return
        if self._origins is not None and (len(origins) != 1 or origins[0].lower() not in self._origins):
            raise InvalidHandshake(403, f"origin {', '.join(map(repr, origins))} not allowed")

    def _choose_subprotocol(self, request: Request) -> str | None:
        offered = split_list(request.headers.get_all("Sec-WebSocket-Protocol"))
        if not all(TOKEN.fullmatch(subprotocol) for subprotocol in offered):
            raise InvalidHandshake(400, "malformed Sec-WebSocket-Protocol header")
        if self._select_subprotocol is None:
            return next((p for p in self._subprotocols if p in offered), None)
        choice = self._select_subprotocol(request, offered)
        if choice is not None and choice not in offered:
            raise ValueError(f"select_subprotocol chose {choice!r}, which was not offered")
        return choice

    def _negotiate_extensions(self, request: Request) -> tuple[list[str], list[object]]:
        """Return the response's extension values and the runtime objects."""
        offers = parse_extension_header(request.headers.get_all("Sec-WebSocket-Extensions"))
        answers: list[str] = []
        negotiated: list[object] = []
        accepted: set[str] = set()
        for name, params in offers:
            if name in accepted:
                continue
            for extension in self._extensions:
                if extension.name.lower() != name:
                    continue
                result = extension.accept(params)
                if result is not None:
                    answers.append(format_extension_header(name, result[0]))
                    negotiated.append(result[1])
                    accepted.add(name)
                    break
        return answers, negotiated


def _is_valid_key(key: str) -> bool:
    """RFC 6455 §4.2.1: the key is the base64 of exactly 16 bytes."""
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except ValueError:  # binascii.Error, or non-ASCII characters
        return False


class ClientHandshake:
    """Builds a client's request and validates the server's response.

    Args:
        url: a ``ws://`` or ``wss://`` URL.
        origin: the ``Origin`` header value, or ``None`` for none.
        subprotocols: the subprotocols to offer, most preferred first.
        extensions: the extensions to offer, in order.
        extra_headers: fields added to the request.
        key: the ``Sec-WebSocket-Key`` (default: :func:`generate_key`);
            pinning it is for tests.
        user_agent: the ``User-Agent`` header value, or ``None`` for none.

    Attributes:
        host: the host to connect to, without the brackets of an IPv6
            literal (the ``Host`` header keeps them).
        port: the port, 80 for ``ws`` and 443 for ``wss`` by default.
        secure: True for ``wss``: the caller must wrap the socket in TLS.
        resource: the request target: the path (``/`` if empty) and query.
        key: the ``Sec-WebSocket-Key`` sent.

    Raises:
        ValueError: if the URL is not ``ws``/``wss``, has no host, has
            credentials, a fragment, or characters that are not visible
            ASCII in its path or query; if its port is invalid; or if a
            subprotocol is not a token.
    """

    def __init__(
        self,
        url: str,
        *,
        origin: str | None = None,
        subprotocols: Sequence[str] = (),
        extensions: Sequence[ClientExtension] = (),
        extra_headers: Iterable[tuple[str, str]] = (),
        key: str | None = None,
        user_agent: str | None = _DEFAULT_AGENT,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"not a WebSocket URL: {url!r}")
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        if "@" in parts.netloc:
            raise ValueError("credentials in the URL are not supported")
        if parts.fragment:
            raise ValueError("a WebSocket URL has no fragment (RFC 6455 §3)")
        self.secure = parts.scheme == "wss"
        self.host = parts.hostname
        default_port = 443 if self.secure else 80
        self.port = default_port if parts.port is None else parts.port
        self.resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if not TARGET.fullmatch(self.resource):
            raise ValueError(f"the path and query of {url!r} must be visible ASCII")
        for subprotocol in subprotocols:
            if not TOKEN.fullmatch(subprotocol):
                raise ValueError(f"subprotocol {subprotocol!r} is not a token")
        self.key = generate_key() if key is None else key
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._host_header = host if self.port == default_port else f"{host}:{self.port}"
        self._origin = origin
        self._subprotocols = tuple(subprotocols)
        self._extensions = tuple(extensions)
        self._extra_headers = list(extra_headers)
        self._user_agent = user_agent

    def request(self) -> Request:
        """Build the opening request; each extension is asked for its offer.

        Returns:
            The request; send ``request.serialize()``. Its headers are, in
            order: ``Host``, ``Upgrade``, ``Connection``,
            ``Sec-WebSocket-Key``, ``Sec-WebSocket-Version``, then
            ``Origin``, ``Sec-WebSocket-Protocol`` and
            ``Sec-WebSocket-Extensions`` when set, the extra headers, and
            ``User-Agent``.
        """
        headers = Headers(
            [
                ("Host", self._host_header),
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", self.key),
                ("Sec-WebSocket-Version", "13"),
            ]
        )
        if self._origin is not None:
            headers.add("Origin", self._origin)
        if self._subprotocols:
            headers.add("Sec-WebSocket-Protocol", ", ".join(self._subprotocols))
        if self._extensions:
            offers = (format_extension_header(e.name, e.offer()) for e in self._extensions)
            headers.add("Sec-WebSocket-Extensions", ", ".join(offers))
        for name, value in self._extra_headers:
            headers.add(name, value)
        if self._user_agent is not None:
            headers.add("User-Agent", self._user_agent)
        return Request("GET", self.resource, "HTTP/1.1", headers)

    def validate(self, response: Response) -> Accepted:
        """Check the server's response and finish the negotiation.

        Every failure raises :class:`InvalidHandshake` whose ``status`` is
        the status the server answered with. For a 101 that breaks
        RFC 6455 §4.1 the status is therefore 101, and the reason says
        what was wrong; a :class:`NegotiationError` from an extension is
        chained as the cause.

        Args:
            response: the server's response.

        Returns:
            The subprotocol, the negotiated extension objects (in the
            response's order) and the response.

        Raises:
            InvalidHandshake: ``status`` other than 101 (the reason is the
                body text, else the reason phrase; the response headers are
                in ``exc.headers``, for a redirect's ``Location``), or 101
                with an ``Upgrade`` other than ``websocket``, a
                ``Connection`` without ``upgrade``, a wrong or repeated
                ``Sec-WebSocket-Accept``, a subprotocol that was not offered
                or more than one, or an extension that was not offered,
                appears twice, is malformed or is refused by every offering
                extension.
        """
        if response.status != 101:
            text = response.body.decode("utf-8", "replace").strip()
            reason = text or response.reason
            raise InvalidHandshake(response.status, reason, list(response.headers))
        headers = response.headers
        if headers.tokens("Upgrade") != ["websocket"]:
            raise InvalidHandshake(101, "Upgrade header is not websocket")
        if "upgrade" not in headers.tokens("Connection"):
            raise InvalidHandshake(101, "Connection header lacks the upgrade option")
        if headers.get_all("Sec-WebSocket-Accept") != [accept_key(self.key)]:
            raise InvalidHandshake(101, "wrong Sec-WebSocket-Accept")
        subprotocol = self._check_subprotocol(headers)
        return Accepted(subprotocol, self._confirm_extensions(headers), response)

    def _check_subprotocol(self, headers: Headers) -> str | None:
        chosen = split_list(headers.get_all("Sec-WebSocket-Protocol"))
        if not chosen:
            return None
        if len(chosen) > 1:
            raise InvalidHandshake(101, "server selected more than one subprotocol")
        if chosen[0] not in self._subprotocols:
            raise InvalidHandshake(101, f"server selected subprotocol {chosen[0]!r}, not offered")
        return chosen[0]

    def _confirm_extensions(self, headers: Headers) -> list[object]:
        try:
            answers = parse_extension_header(headers.get_all("Sec-WebSocket-Extensions"))
        except InvalidHandshake as exc:
            raise InvalidHandshake(101, exc.reason) from exc
        negotiated: list[object] = []
        seen: set[str] = set()
        for name, params in answers:
            if name in seen:
                raise InvalidHandshake(101, f"server accepted extension {name} twice")
            seen.add(name)
            negotiated.append(self._confirm(name, params))
        return negotiated

    def _confirm(self, name: str, params: ExtensionParams) -> object:
        """Give the server's answer to each offering extension of that name."""
        error: NegotiationError | None = None
        for extension in self._extensions:
            if extension.name.lower() == name:
                try:
                    return extension.confirm(params)
                except NegotiationError as exc:
                    error = exc
        if error is None:
            raise InvalidHandshake(101, f"server accepted extension {name}, not offered")
        raise InvalidHandshake(101, f"extension {name} refused: {error.reason}") from error
