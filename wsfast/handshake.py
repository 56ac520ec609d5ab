"""The WebSocket opening handshake (RFC 6455 §4), sans-IO, for both roles.

Nothing here touches a socket: bytes go in, objects and bytes come out.

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Protocol, TypeAlias
from urllib.parse import parse_qs, urlsplit

from ._version import __version__
from .exceptions import InvalidHandshake, NegotiationError
from .typing import BytesLike

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

# RFC 9110 §5.6.2: token = 1*tchar. [0-9], not \d: \d matches any Unicode digit.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 §5.5: field-value = *( VCHAR / obs-text / SP / HTAB ), once the
# bytes are decoded as latin-1 (so obs-text is \x80-\xff).
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT
_VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
# RFC 9112 §3.2: a request-target is visible ASCII, with no whitespace.
_TARGET = re.compile(r"[\x21-\x7e]+")
# RFC 9112 §4: status-code SP [ reason-phrase ], after "HTTP-version SP".
# The SP before an empty reason is optional here: many servers omit it.
_STATUS = re.compile(r"([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?")
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


def _split_list(values: Iterable[str]) -> list[str]:
    """Split comma-separated list headers into their stripped elements.

    Empty elements are dropped, as RFC 9110 §5.6.1 asks of recipients.
    """
    elements = (element.strip(" \t") for value in values for element in value.split(","))
    return [element for element in elements if element]


class Headers:
    """An ordered, case-insensitive multi-map of HTTP header fields.

    Iteration yields ``(name, value)`` pairs in the order they were added,
    with the names spelled as they were given. Lookups ignore case.
    Two ``Headers`` are equal when they hold the same values under the same
    names (ignoring case), in the same order.

    Args:
        items: initial ``(name, value)`` pairs.
    """

    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        self._index: dict[str, list[str]] = {}
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append a header field, keeping those already present.

        Args:
            name: the field name, in any case.
            value: the field value.
        """
        self._items.append((name, value))
        self._index.setdefault(name.lower(), []).append(value)

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the first value of a field.

        Args:
            name: the field name, in any case.
            default: what to return when the field is absent.

        Returns:
            The value of the first line named ``name``, else ``default``.
        """
        values = self._index.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        """Return every value of a field, in order.

        Args:
            name: the field name, in any case.

        Returns:
            A new list, empty when the field is absent.
        """
        return list(self._index.get(name.lower(), ()))

    def tokens(self, name: str) -> list[str]:
        """Return the comma-separated elements of a field, over all its lines.

        This is how list-valued fields such as ``Connection`` and ``Upgrade``
        are read: ``Connection: keep-alive, Upgrade`` gives
        ``["keep-alive", "upgrade"]``.

        Args:
            name: the field name, in any case.

        Returns:
            The non-empty elements, stripped and lower-cased.
        """
        return [element.lower() for element in _split_list(self.get_all(name))]

    def items(self) -> Iterator[tuple[str, str]]:
        """Iterate over ``(name, value)`` pairs in their original order and case."""
        return iter(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(n.lower(), v) for n, v in self._items] == [(n.lower(), v) for n, v in other._items]


def _encode_head(start_line: str, headers: Headers) -> bytes:
    """Serialize a start line and header fields, ending with the blank line.

    Raises:
        ValueError: if a name is not a token or a value holds a control
            character (CR and LF included: no header injection).
    """
    lines = [start_line]
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            raise ValueError(f"invalid header field {name!r}: {value!r}")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request head.

    Attributes:
        method: the request method, such as ``"GET"``.
        target: the request target as sent, such as ``"/chat?room=1"``.
        version: the HTTP version, such as ``"HTTP/1.1"``.
        headers: the header fields.
    """

    method: str
    target: str
    version: str
    headers: Headers

    @property
    def path(self) -> str:
        """The target up to, and without, its ``?query``."""
        return self.target.partition("?")[0]

    @property
    def query(self) -> dict[str, list[str]]:
        """The query string, decoded by :func:`urllib.parse.parse_qs`.

        Blank values are kept: ``?token=`` gives ``{"token": [""]}``.
        """
        return parse_qs(self.target.partition("?")[2], keep_blank_values=True)

    def serialize(self) -> bytes:
        """Encode the request head for the wire.

        Returns:
            The request line, the header fields and the blank line.

        Raises:
            ValueError: if the method is not a token, the target holds
                whitespace or non-ASCII characters, the version is not
                ``HTTP/d.d``, or a header field is invalid.
        """
        if not (_TOKEN.fullmatch(self.method) and _TARGET.fullmatch(self.target) and _VERSION.fullmatch(self.version)):
            line = f"{self.method!r} {self.target!r} {self.version!r}"
            raise ValueError(f"invalid request line: {line}")
        return _encode_head(f"{self.method} {self.target} {self.version}", self.headers)


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP response: its head, and a body for responses other than 101.

    Attributes:
        status: the status code, such as ``101``.
        reason: the reason phrase, possibly empty.
        headers: the header fields.
        body: the body; always empty when read by :class:`ResponseParser`.
    """

    status: int
    reason: str
    headers: Headers
    body: bytes = b""

    def serialize(self) -> bytes:
        """Encode the response for the wire.

        A response other than 101 gets ``Content-Length`` unless its headers
        have one, and ``Content-Type: text/plain; charset=utf-8`` when it has
        a body and its headers name no content type. ``self.headers`` is
        left untouched.

        Returns:
            The status line, the header fields, the blank line and the body.

        Raises:
            ValueError: if the status is not three digits, the reason holds
                control characters, or a header field is invalid.
        """
        if not 100 <= self.status <= 999 or not _FIELD_VALUE.fullmatch(self.reason):
            raise ValueError(f"invalid status line: {self.status!r} {self.reason!r}")
        headers = self.headers
        if self.status != 101:
            headers = Headers(headers)
            if self.body and "Content-Type" not in headers:
                headers.add("Content-Type", "text/plain; charset=utf-8")
            if "Content-Length" not in headers:
                headers.add("Content-Length", str(len(self.body)))
        return _encode_head(f"HTTP/1.1 {self.status} {self.reason}", headers) + self.body

    @classmethod
    def plain(cls, status: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
        """Build a short plain-text response that closes the connection.

        Args:
            status: the status code; its standard phrase becomes the reason
                (an empty reason for codes :class:`http.HTTPStatus` lacks).
            text: the body, sent as UTF-8 with a final newline.
            headers: fields added after ``Connection: close``.

        Returns:
            The response; ``serialize()`` adds the content headers.
        """
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        fields = Headers([("Connection", "close"), *headers])
        return cls(status, reason, fields, f"{text}\n".encode())


def _find_blank_line(buffer: bytearray, start: int, end: int) -> int:
    """Find the blank line that ends an HTTP head, within ``buffer[start:end]``.

    RFC 9112 §2.2: lines end with CRLF, and a recipient may also accept a
    bare LF. The blank line is thus an LF followed by CRLF or by LF.

    Returns:
        The index of the LF that ends the last line before the blank line,
        or -1 if there is none yet.
    """
    crlf = buffer.find(b"\n\r\n", start, end)
    lf = buffer.find(b"\n\n", start, end)
    if crlf < 0 or 0 <= lf < crlf:
        return lf
    return crlf


def _check_version(version: str) -> None:
    """Raise InvalidHandshake unless ``version`` is ``HTTP/1.x``."""
    match = _VERSION.fullmatch(version)
    if match is None:
        raise InvalidHandshake(400, "malformed HTTP version")
    if match[1] != "1":
        raise InvalidHandshake(505, f"HTTP version {version} not supported")


def _parse_field_line(line: str) -> tuple[str, str]:
    """Split one header line into its name and value, or raise 400.

    RFC 9112 §5: field-line = field-name ":" OWS field-value OWS, where
    field-name is a token: no whitespace before the colon.
    """
    if line[:1] in (" ", "\t"):
        raise InvalidHandshake(400, "obsolete line folding in the header block")
    name, colon, value = line.partition(":")
    if not colon:
        raise InvalidHandshake(400, "header line without a colon")
    if not _TOKEN.fullmatch(name):
        raise InvalidHandshake(400, "invalid header name")
    value = value.strip(" \t")
    if not _FIELD_VALUE.fullmatch(value):
        raise InvalidHandshake(400, f"invalid character in the {name} header")
    return name, value


class _HeadParser:
    """Buffers bytes until the blank line that ends an HTTP head.

    The buffer grows by ``+=`` (amortized O(1) for a bytearray) and only the
    new bytes, plus the two before them, are searched: feeding one byte at a
    time stays linear.
    """

    def __init__(self, *, max_header_bytes: int = 16384, max_headers: int = 100) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.trailing = b""
        self._buffer = bytearray()
        self._done = False

    def _read_head(self, data: BytesLike) -> list[str] | None:
        """Add ``data``; return the head's lines once it is complete."""
        if self._done:
            raise RuntimeError("the head is complete: what follows is the WebSocket stream")
        buffer = self._buffer
        # A terminator split across feeds starts at most 2 bytes before `data`.
        start = max(len(buffer) - 2, 0)
        buffer += data
        # Searching only up to the limit makes "found" mean "fits".
        end = _find_blank_line(buffer, start, self.max_header_bytes)
        if end < 0:
            if len(buffer) >= self.max_header_bytes:
                raise InvalidHandshake(431, "header block too large")
            return None
        self._done = True
        head_end = end + (2 if buffer[end + 1] == 0x0A else 3)
        self.trailing = bytes(buffer[head_end:])
        text = buffer[:end].decode("latin-1")
        self._buffer = bytearray()
        lines = [line.removesuffix("\r") for line in text.split("\n")]
        if len(lines) - 1 > self.max_headers:
            raise InvalidHandshake(431, f"more than {self.max_headers} header fields")
        return lines

    @staticmethod
    def _headers(lines: list[str]) -> Headers:
        """Parse the header lines that follow the start line."""
        return Headers(_parse_field_line(line) for line in lines)


class RequestParser(_HeadParser):
    """Reads the client's request head, incrementally and within bounds.

    Call :meth:`feed` with each chunk received until it returns a
    :class:`Request`; then read :attr:`trailing` and stop feeding this
    parser. After an :class:`InvalidHandshake`, reply with
    ``ServerHandshake.reject(exc)`` and discard the parser.

    Lines must end with CRLF or a bare LF. Leading empty lines, obsolete
    line folding and whitespace before a colon are refused.

    Args:
        max_header_bytes: the most bytes the head may take, request line
            and final blank line included.
        max_headers: the most header lines the head may have.

    Attributes:
        trailing: the bytes received after the head (frames the client sent
            without waiting), valid once :meth:`feed` returned a request.
    """

    def feed(self, data: BytesLike) -> Request | None:
        """Add received bytes.

        Args:
            data: the next chunk of the stream; it is copied, so a reused
                receive buffer may be passed.

        Returns:
            The request once its head is complete, else ``None``: feed more.

        Raises:
            InvalidHandshake: 431 when the head exceeds ``max_header_bytes``
                or ``max_headers``; 400 for a malformed request line or
                header line; 505 for an HTTP version other than ``HTTP/1.x``.
            RuntimeError: if called again after a request was returned.
        """
        lines = self._read_head(data)
        if lines is None:
            return None
        # RFC 9112 §3: request-line = method SP request-target SP HTTP-version
        parts = lines[0].split(" ")
        if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not _TARGET.fullmatch(parts[1]):
            raise InvalidHandshake(400, "malformed request line")
        method, target, version = parts
        _check_version(version)
        return Request(method, target, version, self._headers(lines[1:]))


class ResponseParser(_HeadParser):
    """Reads the server's response head, incrementally and within bounds.

    Call :meth:`feed` with each chunk received until it returns a
    :class:`Response`; then read :attr:`trailing` and stop feeding this
    parser. The body of a response other than 101 is not read: it starts
    in :attr:`trailing`, and the returned response has an empty body.

    The statuses of the :class:`InvalidHandshake` raised here describe what
    was wrong with the response (the server never sent them): 431 for an
    oversized head, 400 for a malformed one, 505 for a version other than
    ``HTTP/1.x``.

    Args:
        max_header_bytes: the most bytes the head may take, status line
            and final blank line included.
        max_headers: the most header lines the head may have.

    Attributes:
        trailing: the bytes received after the head (after a 101, the
            server's first frames), valid once :meth:`feed` returned.
    """

    def feed(self, data: BytesLike) -> Response | None:
        """Add received bytes.

        Args:
            data: the next chunk of the stream; it is copied, so a reused
                receive buffer may be passed.

        Returns:
            The response once its head is complete, else ``None``: feed more.

        Raises:
            InvalidHandshake: 431, 400 or 505, as described above.
            RuntimeError: if called again after a response was returned.
        """
        lines = self._read_head(data)
        if lines is None:
            return None
        version, _, rest = lines[0].partition(" ")
        _check_version(version)
        match = _STATUS.fullmatch(rest)
        if match is None:
            raise InvalidHandshake(400, "malformed status line")
        return Response(int(match[1]), match[2] or "", self._headers(lines[1:]))


def _parse_extension_param(text: str) -> tuple[str, str | None]:
    """Parse ``name`` or ``name=token`` or ``name="token"``, or raise 400."""
    name, equals, value = text.partition("=")
    name = name.strip(" \t")
    if not _TOKEN.fullmatch(name):
        raise InvalidHandshake(400, "malformed extension parameter name")
    if not equals:
        return name.lower(), None
    value = value.strip(" \t")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
    if not _TOKEN.fullmatch(value):
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
    for element in _split_list(values):
        name, *params = element.split(";")
        name = name.strip(" \t")
        if not _TOKEN.fullmatch(name):
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
        if not _TOKEN.fullmatch(word):
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
            if not _TOKEN.fullmatch(subprotocol):
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
        version = _VERSION.fullmatch(request.version)
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
            raise InvalidHandshake(403, "origin not allowed")

    def _choose_subprotocol(self, request: Request) -> str | None:
        offered = _split_list(request.headers.get_all("Sec-WebSocket-Protocol"))
        if not all(_TOKEN.fullmatch(subprotocol) for subprotocol in offered):
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
        if not _TARGET.fullmatch(self.resource):
            raise ValueError(f"the path and query of {url!r} must be visible ASCII")
        for subprotocol in subprotocols:
            if not _TOKEN.fullmatch(subprotocol):
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
        chosen = _split_list(headers.get_all("Sec-WebSocket-Protocol"))
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
