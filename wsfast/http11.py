"""HTTP/1.1 messages for the opening handshake (RFC 9110, RFC 9112), sans-IO.

:class:`Headers`, :class:`Request` and :class:`Response`, and the bounded,
incremental parsers that turn received bytes into them. Only what a
WebSocket upgrade needs: no bodies are read, no keep-alive.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs

from .exceptions import InvalidHandshake
from .typing import BytesLike

__all__ = [
    "TARGET",
    "TOKEN",
    "VERSION",
    "Headers",
    "Request",
    "RequestParser",
    "Response",
    "ResponseParser",
    "split_list",
]

# RFC 9110 §5.6.2: token = 1*tchar. [0-9], not \d: \d matches any Unicode digit.
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 §5.5: field-value = *( VCHAR / obs-text / SP / HTAB ), once the
# bytes are decoded as latin-1 (so obs-text is \x80-\xff).
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT
VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
# RFC 9112 §3.2: a request-target is visible ASCII, with no whitespace.
TARGET = re.compile(r"[\x21-\x7e]+")
# What a request line can begin with (RFC 9112 §3): a method, a target, then
# "HTTP/d.d", each possibly cut short. Checked as the line arrives, so that
# bytes that cannot be HTTP (random bytes, TLS to a plain port) get a 400 at
# once, not at the handshake timeout.
_VERSION_START = r"(?:H(?:T(?:T(?:P(?:/(?:[0-9](?:\.(?:[0-9]\r?)?)?)?)?)?)?)?)?"
_REQUEST_LINE_START = re.compile(
    rf"(?:{TOKEN.pattern})?"
    rf"|{TOKEN.pattern} (?:{TARGET.pattern})?"
    rf"|{TOKEN.pattern} {TARGET.pattern} {_VERSION_START}"
)
# Beyond this, a request line still without its end is checked once complete:
# the early check is then cheap even for a line fed one byte at a time.
_REQUEST_LINE_CHECKED = 1024
# RFC 9112 §4: status-code SP [ reason-phrase ], after "HTTP-version SP".
# The SP before an empty reason is optional here: many servers omit it.
_STATUS = re.compile(r"([1-9][0-9]{2})(?: ([\t\x20-\x7e\x80-\xff]*))?")


def split_list(values: Iterable[str]) -> list[str]:
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
        return [element.lower() for element in split_list(self.get_all(name))]

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
        if not TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
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
        if not (TOKEN.fullmatch(self.method) and TARGET.fullmatch(self.target) and VERSION.fullmatch(self.version)):
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


def _parse_request_line(line: str) -> tuple[str, str, str]:
    """``(method, target, version)`` of a request line, or raise 400 or 505.

    RFC 9112 §3: request-line = method SP request-target SP HTTP-version.
    """
    parts = line.split(" ")
    if len(parts) != 3 or not TOKEN.fullmatch(parts[0]) or not TARGET.fullmatch(parts[1]):
        raise InvalidHandshake(400, f"malformed request line: {line[:40]!r}")
    _check_version(parts[2])
    return parts[0], parts[1], parts[2]


def _check_version(version: str) -> None:
    """Raise InvalidHandshake unless ``version`` is ``HTTP/1.x``."""
    match = VERSION.fullmatch(version)
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
    if not TOKEN.fullmatch(name):
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
            self._check_request_line()
            return None
        method, target, version = _parse_request_line(lines[0])
        return Request(method, target, version, self._headers(lines[1:]))

    def _check_request_line(self) -> None:
        """Reject the head before it is complete when its first line cannot be a request line."""
        buffer = self._buffer
        if len(buffer) > _REQUEST_LINE_CHECKED:
            return
        line = buffer.decode("latin-1")
        end = line.find("\n")
        if end >= 0:
            _parse_request_line(line[:end].removesuffix("\r"))
        elif not _REQUEST_LINE_START.fullmatch(line):
            raise InvalidHandshake(400, f"malformed request line: {line[:40]!r}")


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
