"""The opening handshake (RFC 6455 §4), both roles, without sockets."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsfast._version import __version__
from wsfast.exceptions import InvalidHandshake, NegotiationError
from wsfast.handshake import (
    GUID,
    Accepted,
    ClientExtension,
    ClientHandshake,
    ExtensionParams,
    Headers,
    Request,
    RequestParser,
    Response,
    ResponseParser,
    ServerHandshake,
    accept_key,
    format_extension_header,
    generate_key,
    parse_extension_header,
)

# RFC 6455 §1.3: the sample nonce and the accept value it leads to.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

# RFC 6455 §1.2, the client's handshake.
REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)

BASE_HEADERS = [
    ("Host", "server.example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Sec-WebSocket-Version", "13"),
]

# A masked text frame "Hello" (RFC 6455 §5.7), as a client may pipeline it.
FRAME = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"


def handshake_request(
    *extra: tuple[str, str],
    drop: tuple[str, ...] = (),
    method: str = "GET",
    version: str = "HTTP/1.1",
) -> Request:
    """A valid request, minus the ``drop`` headers, plus the ``extra`` ones."""
    kept = [(n, v) for n, v in BASE_HEADERS if n not in drop]
    return Request(method, "/chat", version, Headers([*kept, *extra]))


def parse_request(data: bytes) -> Request:
    request = RequestParser().feed(data)
    assert request is not None
    return request


def parse_response(data: bytes) -> Response:
    response = ResponseParser().feed(data)
    assert response is not None
    return response


def rejection(server: ServerHandshake, request: Request) -> InvalidHandshake:
    with pytest.raises(InvalidHandshake) as info:
        server.accept(request)
    return info.value


@dataclass
class FakeServerExtension:
    """Echoes offers back; declines ``decline``; fails the handshake on ``bad``."""

    name: str = "x-test"
    tag: str = "server"

    def accept(self, params: ExtensionParams) -> tuple[ExtensionParams, object] | None:
        if ("decline", None) in params:
            return None
        if ("bad", None) in params:
            raise NegotiationError("bad parameter")
        return params, (self.tag, params)


@dataclass
class FakeClientExtension:
    """Offers ``params``; refuses answers carrying ``refuse``."""

    name: str = "x-test"
    params: ExtensionParams = field(default_factory=list)
    tag: str = "client"

    def offer(self) -> ExtensionParams:
        return self.params

    def confirm(self, params: ExtensionParams) -> object:
        if ("refuse", None) in params:
            raise NegotiationError("refused by the client")
        return (self.tag, params)


# --- Keys -----------------------------------------------------------------


def test_accept_key_is_the_rfc_6455_example() -> None:
    assert accept_key(KEY) == ACCEPT
    assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def test_generate_key_is_16_random_bytes_in_base64() -> None:
    key = generate_key()
    assert len(base64.b64decode(key, validate=True)) == 16
    assert generate_key() != key


# --- Headers --------------------------------------------------------------


def test_headers_lookups_ignore_case_and_iteration_keeps_order_and_case() -> None:
    headers = Headers([("Host", "a"), ("X-Thing", "1")])
    headers.add("x-thing", "2")
    assert headers.get("HOST") == "a"
    assert headers.get("x-THING") == "1"
    assert headers.get_all("X-Thing") == ["1", "2"]
    assert list(headers) == [("Host", "a"), ("X-Thing", "1"), ("x-thing", "2")]
    assert list(headers.items()) == list(headers)
    assert len(headers) == 3
    assert "host" in headers and "Missing" not in headers and 42 not in headers


def test_headers_absent_fields() -> None:
    headers = Headers()
    assert headers.get("Host") is None
    assert headers.get("Host", "default") == "default"
    assert headers.get_all("Host") == []
    assert headers.tokens("Connection") == []


def test_headers_tokens_span_every_line_stripped_and_lower_cased() -> None:
    headers = Headers([("Connection", "keep-alive, Upgrade"), ("connection", " ,CLOSE ,")])
    assert headers.tokens("Connection") == ["keep-alive", "upgrade", "close"]


def test_headers_equality_ignores_name_case_but_not_order_or_values() -> None:
    assert Headers([("Host", "a"), ("X", "1")]) == Headers([("host", "a"), ("x", "1")])
    assert Headers([("Host", "a"), ("X", "1")]) != Headers([("X", "1"), ("Host", "a")])
    assert Headers([("Host", "a")]) != Headers([("Host", "A")])
    assert Headers() != []


def test_headers_repr_shows_the_fields() -> None:
    assert repr(Headers([("Host", "a")])) == "Headers([('Host', 'a')])"


# --- Request and Response -------------------------------------------------


def test_request_path_and_query() -> None:
    request = Request("GET", "/feed?topic=a&topic=b&token=", "HTTP/1.1", Headers())
    assert request.path == "/feed"
    assert request.query == {"topic": ["a", "b"], "token": [""]}
    assert Request("GET", "/", "HTTP/1.1", Headers()).query == {}


def test_request_serializes_to_what_the_parser_reads() -> None:
    request = parse_request(REQUEST)
    assert request.serialize() == REQUEST
    assert parse_request(request.serialize()) == request


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(Request("GE T", "/", "HTTP/1.1", Headers()), id="method not a token"),
        pytest.param(Request("GET", "/a b", "HTTP/1.1", Headers()), id="space in target"),
        pytest.param(Request("GET", "/", "HTTP/1", Headers()), id="bad version"),
        pytest.param(
            Request("GET", "/", "HTTP/1.1", Headers([("X", "a\r\nEvil: 1")])),
            id="header injection",
        ),
        pytest.param(Request("GET", "/", "HTTP/1.1", Headers([("X Y", "1")])), id="bad name"),
    ],
)
def test_request_serialize_refuses_what_is_not_http(request_: Request) -> None:
    with pytest.raises(ValueError):
        request_.serialize()


def test_a_101_response_has_no_content_headers() -> None:
    response = Response(101, "Switching Protocols", Headers([("Upgrade", "websocket")]))
    assert response.serialize() == (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")


def test_other_responses_get_content_length_and_type_without_touching_headers() -> None:
    headers = Headers([("Connection", "close")])
    response = Response(404, "Not Found", headers, b"nope")
    assert response.serialize() == (
        b"HTTP/1.1 404 Not Found\r\n"
        b"Connection: close\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 4\r\n"
        b"\r\n"
        b"nope"
    )
    assert list(headers) == [("Connection", "close")]


def test_given_content_headers_are_kept() -> None:
    headers = Headers([("Content-Type", "text/html"), ("Content-Length", "2")])
    assert Response(200, "OK", headers, b"<p").serialize() == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\n<p"
    )


def test_an_empty_body_gets_content_length_zero_and_no_type() -> None:
    assert Response(204, "No Content", Headers()).serialize() == (
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
    )


@pytest.mark.parametrize("status, reason", [(99, "Low"), (1000, "High"), (400, "Bad\r\nX: 1")])
def test_response_serialize_refuses_a_bad_status_line(status: int, reason: str) -> None:
    with pytest.raises(ValueError):
        Response(status, reason, Headers()).serialize()


def test_plain_response_closes_and_carries_text() -> None:
    response = Response.plain(403, "origin not allowed", [("X-Why", "origin")])
    assert response == Response(
        403,
        "Forbidden",
        Headers([("Connection", "close"), ("X-Why", "origin")]),
        b"origin not allowed\n",
    )


def test_plain_response_with_an_unregistered_status_has_an_empty_reason() -> None:
    response = Response.plain(599, "odd")
    assert response.reason == ""
    assert response.serialize().startswith(b"HTTP/1.1 599 \r\n")


# --- RequestParser --------------------------------------------------------


def test_parser_reads_the_rfc_request() -> None:
    parser = RequestParser()
    request = parser.feed(REQUEST)
    assert request == Request(
        "GET",
        "/chat",
        "HTTP/1.1",
        Headers(
            [
                ("Host", "server.example.com"),
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", KEY),
                ("Origin", "http://example.com"),
                ("Sec-WebSocket-Protocol", "chat, superchat"),
                ("Sec-WebSocket-Version", "13"),
            ]
        ),
    )
    assert parser.trailing == b""


def test_parser_fed_byte_by_byte_returns_none_until_the_last_byte() -> None:
    parser = RequestParser()
    results = [parser.feed(REQUEST[i : i + 1]) for i in range(len(REQUEST))]
    assert results[:-1] == [None] * (len(REQUEST) - 1)
    assert results[-1] == parse_request(REQUEST)


@pytest.mark.parametrize("cut", range(len(REQUEST) + len(FRAME) + 1))
def test_parser_split_anywhere_gives_the_same_request_and_trailing_bytes(cut: int) -> None:
    data = REQUEST + FRAME
    parser = RequestParser()
    first = parser.feed(data[:cut])
    request = first if first is not None else parser.feed(data[cut:])
    assert request == parse_request(REQUEST)
    if first is None:
        assert parser.trailing == FRAME
    else:  # the head was complete: the rest was never fed
        assert parser.trailing == FRAME[: cut - len(REQUEST)]


def test_parser_keeps_the_bytes_pipelined_after_the_head() -> None:
    parser = RequestParser()
    assert parser.feed(REQUEST + FRAME + FRAME) is not None
    assert parser.trailing == FRAME + FRAME


def test_parser_copies_what_it_is_fed_so_a_receive_buffer_can_be_reused() -> None:
    buffer = bytearray(REQUEST[:10])
    parser = RequestParser()
    assert parser.feed(memoryview(buffer)) is None
    buffer[:] = b"XXXXXXXXXX"
    assert parser.feed(bytearray(REQUEST[10:])) == parse_request(REQUEST)


def test_parser_accepts_bare_lf_line_endings() -> None:
    assert parse_request(REQUEST.replace(b"\r\n", b"\n")) == parse_request(REQUEST)


def test_parser_strips_whitespace_around_values_and_decodes_latin_1() -> None:
    request = parse_request(b"GET / HTTP/1.1\r\nX-Name:  caf\xe9 \t\r\n\r\n")
    assert request.headers.get("X-Name") == "caf\u00e9"


def test_parser_refuses_to_be_fed_after_the_head() -> None:
    parser = RequestParser()
    parser.feed(REQUEST)
    with pytest.raises(RuntimeError):
        parser.feed(FRAME)


def test_a_head_of_exactly_max_header_bytes_fits() -> None:
    assert RequestParser(max_header_bytes=len(REQUEST)).feed(REQUEST) is not None


def test_a_head_one_byte_over_max_header_bytes_is_431() -> None:
    with pytest.raises(InvalidHandshake) as info:
        RequestParser(max_header_bytes=len(REQUEST) - 1).feed(REQUEST)
    assert info.value.status == 431


def test_a_huge_header_is_431_before_the_head_ends() -> None:
    parser = RequestParser()
    assert parser.feed(b"GET / HTTP/1.1\r\nX-Big: ") is None
    with pytest.raises(InvalidHandshake) as info:
        for _ in range(100):
            parser.feed(b"a" * 1000)
    assert info.value.status == 431


def test_too_many_header_lines_is_431() -> None:
    head = b"GET / HTTP/1.1\r\n" + b"X: 1\r\n" * 4 + b"\r\n"
    assert RequestParser(max_headers=4).feed(head) is not None
    with pytest.raises(InvalidHandshake) as info:
        RequestParser(max_headers=3).feed(head)
    assert info.value.status == 431


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"\r\nGET / HTTP/1.1\r\n\r\n", id="empty line first"),
        pytest.param(b"GET  / HTTP/1.1\r\n\r\n", id="two spaces"),
        pytest.param(b"GET / HTTP/1.1 x\r\n\r\n", id="four words"),
        pytest.param(b"GET /\r\n\r\n", id="no version"),
        pytest.param(b"GET / http/1.1\r\n\r\n", id="lower-case version"),
        pytest.param(b"GET / HTTP/1.10\r\n\r\n", id="two-digit minor"),
        pytest.param(b"G(T / HTTP/1.1\r\n\r\n", id="method not a token"),
        pytest.param(b"GET /\x7f HTTP/1.1\r\n\r\n", id="control char in target"),
        pytest.param(b"GET / HTTP/1.1\r\nHost\r\n\r\n", id="no colon"),
        pytest.param(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", id="space before colon"),
        pytest.param(b"GET / HTTP/1.1\r\n: a\r\n\r\n", id="empty name"),
        pytest.param(b"GET / HTTP/1.1\r\nX: a\r\n  b\r\n\r\n", id="obs-fold"),
        pytest.param(b"GET / HTTP/1.1\r\nX\xe9: a\r\n\r\n", id="non-ASCII name"),
        pytest.param(b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", id="NUL in value"),
        pytest.param(b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", id="bare CR in value"),
        pytest.param(b"GET / HTTP/1.1\r\nX: a\r\r\n\r\n", id="CR CR LF"),
    ],
)
def test_malformed_request_heads_are_400(head: bytes) -> None:
    with pytest.raises(InvalidHandshake) as info:
        RequestParser().feed(head)
    assert info.value.status == 400


@pytest.mark.parametrize(
    "start",
    [
        pytest.param(b"\x16", id="TLS ClientHello"),
        pytest.param(b"\x00", id="NUL"),
        pytest.param(b" ", id="space first"),
        pytest.param(b"G(", id="method not a token"),
        pytest.param(b"GET /\x7f", id="control char in target"),
        pytest.param(b"GET / HTTX", id="not HTTP"),
        pytest.param(b"GET / HTTP/1.1 ", id="four words"),
        pytest.param(b"GET / HTTP/1.1\rX", id="bare CR"),
        pytest.param(b"GET /\n", id="a whole line without a version"),
    ],
)
def test_what_cannot_start_a_request_line_is_400_as_soon_as_it_arrives(start: bytes) -> None:
    # Issue 9: random bytes were held until the handshake timeout.
    parser = RequestParser()
    with pytest.raises(InvalidHandshake) as info:
        for i in range(len(start)):
            parser.feed(start[i : i + 1])
    assert (info.value.status, i) == (400, len(start) - 1)
    assert "malformed request line: '" in str(info.value)  # names what arrived


def test_every_prefix_of_a_valid_request_line_is_awaited() -> None:
    for line in (b"GET /chat HTTP/1.1\r\n", b"M-SEARCH * HTTP/1.0\n", b"GET /%7E?a=b HTTP/9.9"):
        for end in range(len(line) + 1):
            assert RequestParser().feed(line[:end]) is None


def test_the_early_check_stops_at_a_long_request_line() -> None:
    parser = RequestParser()
    assert parser.feed(b"GET /" + b"a" * 2000) is None
    assert parser.feed(b"\x7f HTTP/1.1\r\n") is None  # checked when the head is complete
    with pytest.raises(InvalidHandshake, match="malformed request line"):
        parser.feed(b"\r\n")


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/0.9"])
def test_a_version_other_than_http_1_is_505(version: bytes) -> None:
    with pytest.raises(InvalidHandshake) as info:
        RequestParser().feed(b"GET / " + version + b"\r\n\r\n")
    assert info.value.status == 505


# Pieces of HTTP, so that random chunks often form complete (and broken) heads.
HTTP_PIECES = st.sampled_from(
    [b"GET ", b"/ ", b"HTTP/1.1", b"HTTP/2.0", b"\r\n", b"\n", b"\r", b"Host", b": ", b" ", b"\xff"]
)


@given(st.lists(st.one_of(HTTP_PIECES, st.binary(max_size=16)), max_size=40))
def test_any_bytes_give_none_a_request_or_invalid_handshake(chunks: list[bytes]) -> None:
    parser = RequestParser(max_header_bytes=256, max_headers=4)
    for chunk in chunks:
        try:
            result = parser.feed(chunk)
        except InvalidHandshake as error:
            assert error.status in (400, 431, 505)
            return
        assert result is None or isinstance(result, Request)
        if result is not None:
            return


# --- ResponseParser -------------------------------------------------------


def test_response_parser_reads_a_101_and_keeps_the_frames_after_it() -> None:
    parser = ResponseParser()
    response = parser.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00")
    assert response == Response(101, "Switching Protocols", Headers([("Upgrade", "websocket")]))
    assert parser.trailing == b"\x81\x00"


@pytest.mark.parametrize("status_line", [b"HTTP/1.1 101 ", b"HTTP/1.1 101"])
def test_response_reason_phrase_may_be_empty(status_line: bytes) -> None:
    response = parse_response(status_line + b"\r\n\r\n")
    assert (response.status, response.reason) == (101, "")


def test_response_parser_returns_at_the_end_of_the_head_of_an_error() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n") is None
    response = parser.feed(b"\r\nno wa")
    assert response is not None
    assert (response.status, response.body, parser.trailing) == (403, b"", b"no wa")


@pytest.mark.parametrize(
    "head, status",
    [
        pytest.param(b"HTTP/1.1 10 x\r\n\r\n", 400, id="two-digit status"),
        pytest.param(b"HTTP/1.1 abc\r\n\r\n", 400, id="letters for status"),
        pytest.param(b"HTTP/1.1 101x\r\n\r\n", 400, id="no space before reason"),
        pytest.param(b"ICY 200 OK\r\n\r\n", 400, id="not HTTP"),
        pytest.param(b"HTTP/1.1 101 OK\r\nX\r\n\r\n", 400, id="bad header line"),
        pytest.param(b"HTTP/2.0 101 OK\r\n\r\n", 505, id="HTTP/2"),
    ],
)
def test_malformed_responses(head: bytes, status: int) -> None:
    with pytest.raises(InvalidHandshake) as info:
        ResponseParser().feed(head)
    assert info.value.status == status


def test_response_parser_limits() -> None:
    with pytest.raises(InvalidHandshake) as info:
        ResponseParser(max_header_bytes=64).feed(b"HTTP/1.1 101 OK\r\nX: " + b"a" * 64)
    assert info.value.status == 431
    with pytest.raises(InvalidHandshake) as info:
        ResponseParser(max_headers=1).feed(b"HTTP/1.1 101 OK\r\nA: 1\r\nB: 2\r\n\r\n")
    assert info.value.status == 431


# --- Extension headers (RFC 6455 §9.1) ------------------------------------


def test_extension_header_grammar() -> None:
    values = [
        "permessage-deflate; client_max_window_bits, Permessage-Deflate;"
        ' Server_Max_Window_Bits = "10" ; server_no_context_takeover',
        " , x-webkit-deflate-frame",
    ]
    assert parse_extension_header(values) == [
        ("permessage-deflate", [("client_max_window_bits", None)]),
        (
            "permessage-deflate",
            [("server_max_window_bits", "10"), ("server_no_context_takeover", None)],
        ),
        ("x-webkit-deflate-frame", []),
    ]


def test_extension_header_unescapes_quoted_pairs() -> None:
    assert parse_extension_header(['x; a="\\b\\c"']) == [("x", [("a", "bc")])]


def test_no_extension_header_means_no_extensions() -> None:
    assert parse_extension_header([]) == []
    assert parse_extension_header([""]) == []


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("permessage deflate", id="space in name"),
        pytest.param('"x"', id="quoted name"),
        pytest.param("x; =1", id="empty param name"),
        pytest.param("x; a b=1", id="space in param name"),
        pytest.param("x; a=", id="empty value"),
        pytest.param("x; a=b c", id="space in value"),
        pytest.param('x; a="b c"', id="quoted value not a token"),
        pytest.param('x; a="b', id="unterminated quote"),
        pytest.param('x; a="\\"', id="lone backslash"),
        pytest.param("x;", id="empty param"),
    ],
)
def test_malformed_extension_headers_are_400(value: str) -> None:
    with pytest.raises(InvalidHandshake) as info:
        parse_extension_header([value])
    assert info.value.status == 400


def test_format_extension_header() -> None:
    params: ExtensionParams = [("client_no_context_takeover", None), ("server_max_window_bits", "10")]
    text = format_extension_header("permessage-deflate", params)
    assert text == "permessage-deflate; client_no_context_takeover; server_max_window_bits=10"
    assert parse_extension_header([text]) == [("permessage-deflate", params)]
    assert format_extension_header("x", []) == "x"


@pytest.mark.parametrize("name, params", [("a b", []), ("x", [("a b", None)]), ("x", [("a", "1,2")])])
def test_format_extension_header_refuses_non_tokens(name: str, params: ExtensionParams) -> None:
    with pytest.raises(ValueError):
        format_extension_header(name, params)


# --- ServerHandshake: the 101 ---------------------------------------------


def test_a_valid_request_gets_the_exact_101_response() -> None:
    server = ServerHandshake(
        subprotocols=["superchat", "chat"],
        extra_headers=[("X-Frame-Options", "DENY")],
        server_header="test",
    )
    accepted = server.accept(parse_request(REQUEST))
    assert accepted.response.serialize() == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"Sec-WebSocket-Protocol: superchat\r\n"
        b"X-Frame-Options: DENY\r\n"
        b"Server: test\r\n"
        b"\r\n"
    )
    assert accepted.subprotocol == "superchat"
    assert accepted.extensions == []


def test_the_server_header_names_wsfast_by_default_and_can_be_dropped() -> None:
    request = handshake_request()
    default = ServerHandshake().accept(request).response.headers
    assert default.get("Server") == f"wsfast/{__version__}"
    assert "Server" not in ServerHandshake(server_header=None).accept(request).response.headers


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(
            handshake_request(("Connection", "keep-alive, Upgrade"), drop=("Connection",)),
            id="Connection list",
        ),
        pytest.param(
            handshake_request(("connection", "UPGRADE"), drop=("Connection",)),
            id="Connection case",
        ),
        pytest.param(
            handshake_request(("Connection", "keep-alive"), ("Connection", "upgrade"), drop=("Connection",)),
            id="Connection on two lines",
        ),
        pytest.param(handshake_request(("upgrade", "WebSocket"), drop=("Upgrade",)), id="Upgrade case"),
        pytest.param(
            handshake_request(("Upgrade", "h2c, websocket"), drop=("Upgrade",)),
            id="Upgrade list",
        ),
        pytest.param(handshake_request(version="HTTP/1.2"), id="HTTP/1.2 counts as 1.1"),
    ],
)
def test_header_spellings_that_are_accepted(request_: Request) -> None:
    accepted = ServerHandshake().accept(request_)
    assert accepted.response.headers.get("Sec-WebSocket-Accept") == ACCEPT


def test_is_upgrade_tells_websocket_requests_from_plain_http() -> None:
    assert ServerHandshake.is_upgrade(handshake_request())
    assert not ServerHandshake.is_upgrade(handshake_request(drop=("Upgrade",)))
    assert not ServerHandshake.is_upgrade(handshake_request(("Upgrade", "h2c"), drop=("Upgrade",)))


# --- ServerHandshake: rejections, in the order they are checked ------------


def key_of(size: int) -> str:
    return base64.b64encode(b"k" * size).decode()


@pytest.mark.parametrize(
    "request_, status",
    [
        pytest.param(handshake_request(method="POST"), 405, id="method is POST"),
        pytest.param(handshake_request(version="HTTP/2.0"), 505, id="HTTP/2.0"),
        pytest.param(handshake_request(version="HTTP/1.0"), 400, id="HTTP/1.0"),
        pytest.param(handshake_request(drop=("Host",)), 400, id="no Host"),
        pytest.param(handshake_request(("Host", "b")), 400, id="two Hosts"),
        pytest.param(handshake_request(drop=("Upgrade",)), 426, id="no Upgrade"),
        pytest.param(handshake_request(("Upgrade", "h2c"), drop=("Upgrade",)), 400, id="Upgrade h2c"),
        pytest.param(handshake_request(drop=("Connection",)), 400, id="no Connection"),
        pytest.param(
            handshake_request(("Connection", "keep-alive"), drop=("Connection",)),
            400,
            id="Connection keep-alive",
        ),
        pytest.param(handshake_request(drop=("Sec-WebSocket-Key",)), 400, id="no key"),
        pytest.param(handshake_request(("Sec-WebSocket-Key", KEY)), 400, id="two keys"),
        pytest.param(
            handshake_request(("Sec-WebSocket-Key", key_of(15)), drop=("Sec-WebSocket-Key",)),
            400,
            id="15-byte key",
        ),
        pytest.param(
            handshake_request(("Sec-WebSocket-Key", key_of(17)), drop=("Sec-WebSocket-Key",)),
            400,
            id="17-byte key",
        ),
        pytest.param(
            handshake_request(("Sec-WebSocket-Key", "not base64!!"), drop=("Sec-WebSocket-Key",)),
            400,
            id="key not base64",
        ),
        pytest.param(
            handshake_request(("Sec-WebSocket-Key", KEY[:-2]), drop=("Sec-WebSocket-Key",)),
            400,
            id="key without padding",
        ),
        pytest.param(
            handshake_request(("Sec-WebSocket-Key", "\u00e9" * 24), drop=("Sec-WebSocket-Key",)),
            400,
            id="key not ASCII",
        ),
        pytest.param(handshake_request(drop=("Sec-WebSocket-Version",)), 426, id="no version"),
        pytest.param(
            handshake_request(("Sec-WebSocket-Version", "8"), drop=("Sec-WebSocket-Version",)),
            426,
            id="version 8",
        ),
        pytest.param(handshake_request(("Sec-WebSocket-Version", "13")), 426, id="version twice"),
        pytest.param(handshake_request(("Sec-WebSocket-Protocol", "a b")), 400, id="bad subprotocol"),
        pytest.param(handshake_request(("Sec-WebSocket-Extensions", "a b")), 400, id="bad extensions"),
    ],
)
def test_rejections(request_: Request, status: int) -> None:
    assert rejection(ServerHandshake(), request_).status == status


def test_the_first_failed_check_decides_the_status() -> None:
    request = handshake_request(method="POST", version="HTTP/1.0", drop=("Host",))
    assert rejection(ServerHandshake(), request).status == 405


def test_405_says_which_method_is_allowed() -> None:
    error = rejection(ServerHandshake(), handshake_request(method="PUT"))
    assert error.headers == [("Allow", "GET")]


def test_426_for_a_plain_http_request_names_websocket() -> None:
    error = rejection(ServerHandshake(), handshake_request(drop=("Upgrade",)))
    assert error.headers == [("Upgrade", "websocket")]


def test_426_for_an_unsupported_version_names_version_13() -> None:
    request = handshake_request(("Sec-WebSocket-Version", "8"), drop=("Sec-WebSocket-Version",))
    error = rejection(ServerHandshake(), request)
    assert error.headers == [("Sec-WebSocket-Version", "13")]


def test_reject_builds_the_plain_response_for_the_error() -> None:
    request = handshake_request(("Sec-WebSocket-Version", "8"), drop=("Sec-WebSocket-Version",))
    response = ServerHandshake.reject(rejection(ServerHandshake(), request))
    assert response.serialize() == (
        b"HTTP/1.1 426 Upgrade Required\r\n"
        b"Connection: close\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 30\r\n"
        b"\r\n"
        b"unsupported WebSocket version\n"
    )


# --- ServerHandshake: Origin ----------------------------------------------


ALLOWLIST = ["https://app.example.com", "http://localhost:8765"]


@pytest.mark.parametrize("origin", ["https://app.example.com", "HTTP://LOCALHOST:8765"])
def test_an_allowed_origin_is_accepted_ignoring_case(origin: str) -> None:
    ServerHandshake(origins=ALLOWLIST).accept(handshake_request(("Origin", origin)))


@pytest.mark.parametrize(
    "origins",
    [
        pytest.param([("Origin", "https://evil.example.com")], id="other host"),
        pytest.param([("Origin", "http://app.example.com")], id="other scheme"),
        pytest.param([("Origin", "http://localhost")], id="other port"),
        pytest.param([("Origin", "null")], id="null"),
        pytest.param(
            [("Origin", "https://app.example.com"), ("Origin", "https://evil.example.com")],
            id="two origins",
        ),
    ],
)
def test_an_origin_outside_the_allowlist_is_403(origins: list[tuple[str, str]]) -> None:
    request = handshake_request(*origins)
    assert rejection(ServerHandshake(origins=ALLOWLIST), request).status == 403


def test_without_an_allowlist_any_origin_is_accepted() -> None:
    ServerHandshake().accept(handshake_request(("Origin", "https://anything.example")))


def test_a_request_without_origin_is_accepted_unless_origin_is_required() -> None:
    ServerHandshake(origins=ALLOWLIST).accept(handshake_request())
    assert rejection(ServerHandshake(require_origin=True), handshake_request()).status == 403
    ServerHandshake(require_origin=True).accept(handshake_request(("Origin", "http://x")))


# --- ServerHandshake: subprotocols ----------------------------------------


def offering(*values: str) -> Request:
    return handshake_request(*[("Sec-WebSocket-Protocol", value) for value in values])


def test_the_server_picks_its_most_preferred_offered_subprotocol() -> None:
    accepted = ServerHandshake(subprotocols=["v3", "v2", "v1"]).accept(offering("v1, v2"))
    assert accepted.subprotocol == "v2"
    assert accepted.response.headers.get_all("Sec-WebSocket-Protocol") == ["v2"]


def test_the_offer_is_the_union_of_every_protocol_line() -> None:
    accepted = ServerHandshake(subprotocols=["v2"]).accept(offering("v1", "v2"))
    assert accepted.subprotocol == "v2"


def test_subprotocol_names_are_case_sensitive() -> None:
    accepted = ServerHandshake(subprotocols=["Chat"]).accept(offering("chat"))
    assert accepted.subprotocol is None


@pytest.mark.parametrize(
    "subprotocols, request_",
    [
        pytest.param(["chat"], handshake_request(), id="client offers none"),
        pytest.param(["chat"], offering("mqtt"), id="no match"),
        pytest.param([], offering("chat"), id="server supports none"),
    ],
)
def test_no_agreement_still_connects_without_a_protocol_header(subprotocols: list[str], request_: Request) -> None:
    accepted = ServerHandshake(subprotocols=subprotocols).accept(request_)
    assert accepted.subprotocol is None
    assert "Sec-WebSocket-Protocol" not in accepted.response.headers


def test_a_callback_overrides_the_preference_and_sees_the_offer() -> None:
    seen: list[tuple[str, list[str]]] = []

    def last(request: Request, offered: list[str]) -> str | None:
        seen.append((request.path, offered))
        return offered[-1] if offered else None

    server = ServerHandshake(subprotocols=["a"], select_subprotocol=last)
    assert server.accept(offering("a, b", "c")).subprotocol == "c"
    assert server.accept(handshake_request()).subprotocol is None
    assert seen == [("/chat", ["a", "b", "c"]), ("/chat", [])]


def test_a_callback_choosing_what_was_not_offered_is_a_server_bug() -> None:
    server = ServerHandshake(select_subprotocol=lambda request, offered: "never-offered")
    with pytest.raises(ValueError):
        server.accept(offering("chat"))


def test_a_callback_may_refuse_the_connection() -> None:
    def refuse(request: Request, offered: list[str]) -> str | None:
        raise InvalidHandshake(400, "a subprotocol is required")

    assert rejection(ServerHandshake(select_subprotocol=refuse), handshake_request()).status == 400


def test_a_server_subprotocol_must_be_a_token() -> None:
    with pytest.raises(ValueError):
        ServerHandshake(subprotocols=["not a token"])


# --- ServerHandshake: extensions ------------------------------------------


def extension_offer(*values: str) -> Request:
    return handshake_request(*[("Sec-WebSocket-Extensions", value) for value in values])


def test_an_accepted_extension_is_answered_and_its_object_returned() -> None:
    server = ServerHandshake(extensions=[FakeServerExtension()])
    accepted = server.accept(extension_offer("X-Test; level=3; fast"))
    assert accepted.response.headers.get_all("Sec-WebSocket-Extensions") == ["x-test; level=3; fast"]
    assert accepted.extensions == [("server", [("level", "3"), ("fast", None)])]


def test_a_declined_or_unknown_offer_gets_no_answer() -> None:
    server = ServerHandshake(extensions=[FakeServerExtension()])
    accepted = server.accept(extension_offer("x-test; decline, x-unknown"))
    assert "Sec-WebSocket-Extensions" not in accepted.response.headers
    assert accepted.extensions == []


def test_offers_are_tried_in_client_order_and_at_most_one_per_name_wins() -> None:
    server = ServerHandshake(extensions=[FakeServerExtension()])
    accepted = server.accept(extension_offer("x-test; decline", "x-test; a=1, x-test; a=2"))
    assert accepted.extensions == [("server", [("a", "1")])]


def test_each_extension_of_a_name_is_asked_until_one_accepts() -> None:
    class Picky(FakeServerExtension):
        def accept(self, params: ExtensionParams) -> tuple[ExtensionParams, object] | None:
            return None

    server = ServerHandshake(extensions=[Picky(tag="picky"), FakeServerExtension(tag="second")])
    assert server.accept(extension_offer("x-test")).extensions == [("second", [])]


def test_several_extensions_are_answered_in_client_order() -> None:
    server = ServerHandshake(extensions=[FakeServerExtension("x-b", "b"), FakeServerExtension("x-a", "a")])
    accepted = server.accept(extension_offer("x-a, x-b; y"))
    assert accepted.response.headers.get("Sec-WebSocket-Extensions") == "x-a, x-b; y"
    assert accepted.extensions == [("a", []), ("b", [("y", None)])]


def test_a_negotiation_error_from_an_extension_is_400() -> None:
    server = ServerHandshake(extensions=[FakeServerExtension()])
    assert rejection(server, extension_offer("x-test; bad")).status == 400


# --- ClientHandshake: the request -----------------------------------------


def test_the_client_request_has_every_required_header() -> None:
    client = ClientHandshake(
        "ws://server.example.com/chat",
        origin="http://example.com",
        subprotocols=["chat", "superchat"],
        extensions=[FakeClientExtension(params=[("level", "3")])],
        extra_headers=[("Authorization", "Bearer t")],
        key=KEY,
        user_agent="test",
    )
    assert client.request().serialize() == (
        b"GET /chat HTTP/1.1\r\n"
        b"Host: server.example.com\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Origin: http://example.com\r\n"
        b"Sec-WebSocket-Protocol: chat, superchat\r\n"
        b"Sec-WebSocket-Extensions: x-test; level=3\r\n"
        b"Authorization: Bearer t\r\n"
        b"User-Agent: test\r\n"
        b"\r\n"
    )


def test_a_bare_client_request_names_wsfast_and_draws_a_key() -> None:
    client = ClientHandshake("ws://h")
    headers = client.request().headers
    assert len(base64.b64decode(client.key, validate=True)) == 16
    assert headers.get("Sec-WebSocket-Key") == client.key
    assert headers.get("User-Agent") == f"wsfast/{__version__}"
    for absent in ("Origin", "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"):
        assert absent not in headers
    assert "User-Agent" not in ClientHandshake("ws://h", user_agent=None).request().headers


@pytest.mark.parametrize(
    "url, host, port, secure, resource, host_header",
    [
        ("ws://example.com", "example.com", 80, False, "/", "example.com"),
        ("wss://example.com/", "example.com", 443, True, "/", "example.com"),
        ("ws://Example.COM:80/a", "example.com", 80, False, "/a", "example.com"),
        ("ws://example.com:443/", "example.com", 443, False, "/", "example.com:443"),
        ("wss://example.com:8443/feed", "example.com", 8443, True, "/feed", "example.com:8443"),
        ("ws://h/p?q=1&r", "h", 80, False, "/p?q=1&r", "h"),
        ("ws://h?q=1", "h", 80, False, "/?q=1", "h"),
        ("ws://[::1]/", "::1", 80, False, "/", "[::1]"),
        ("wss://[2001:db8::1]:9000/x", "2001:db8::1", 9000, True, "/x", "[2001:db8::1]:9000"),
        ("WS://h/", "h", 80, False, "/", "h"),
    ],
)
def test_url_parsing(url: str, host: str, port: int, secure: bool, resource: str, host_header: str) -> None:
    client = ClientHandshake(url)
    assert (client.host, client.port, client.secure, client.resource) == (
        host,
        port,
        secure,
        resource,
    )
    request = client.request()
    assert (request.target, request.headers.get("Host")) == (resource, host_header)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://example.com/", id="http"),
        pytest.param("example.com", id="no scheme"),
        pytest.param("ws:///path", id="no host"),
        pytest.param("ws://user:pw@h/", id="credentials"),
        pytest.param("ws://h/#top", id="fragment"),
        pytest.param("ws://h/a b", id="space in path"),
        pytest.param("ws://h/caf\u00e9", id="non-ASCII path"),
        pytest.param("ws://h:99999/", id="port out of range"),
        pytest.param("ws://h:port/", id="port not a number"),
    ],
)
def test_urls_that_are_not_websocket_urls(url: str) -> None:
    with pytest.raises(ValueError):
        ClientHandshake(url)


def test_a_client_subprotocol_must_be_a_token() -> None:
    with pytest.raises(ValueError):
        ClientHandshake("ws://h", subprotocols=["a,b"])


# --- ClientHandshake: validating the response -----------------------------


def switching(*extra: tuple[str, str], accept: str = ACCEPT) -> Response:
    """A 101 answering KEY, plus the ``extra`` headers."""
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
    headers.append(("Sec-WebSocket-Accept", accept))
    return Response(101, "Switching Protocols", Headers([*headers, *extra]))


def client(
    *, subprotocols: list[str] | None = None, extensions: list[ClientExtension] | None = None
) -> ClientHandshake:
    """A client with the RFC key, offering what it is given."""
    return ClientHandshake(
        "ws://server.example.com/chat",
        subprotocols=subprotocols or [],
        extensions=extensions or [],
        key=KEY,
    )


def validation_error(handshake: ClientHandshake, response: Response) -> InvalidHandshake:
    with pytest.raises(InvalidHandshake) as info:
        handshake.validate(response)
    return info.value


def test_a_good_101_is_accepted() -> None:
    response = switching()
    assert client().validate(response) == Accepted(None, [], response)


def test_a_refusal_carries_the_status_the_body_text_and_the_headers() -> None:
    response = Response.plain(403, "origin not allowed")
    error = validation_error(client(), response)
    assert (error.status, error.reason) == (403, "origin not allowed")
    assert error.headers == [("Connection", "close")]


def test_a_refusal_without_a_body_carries_the_reason_phrase() -> None:
    response = Response(302, "Found", Headers([("Location", "ws://elsewhere/")]))
    error = validation_error(client(), response)
    assert (error.status, error.reason) == (302, "Found")
    assert error.headers == [("Location", "ws://elsewhere/")]


def test_connection_and_upgrade_may_be_spelled_freely() -> None:
    response = Response(
        101,
        "",
        Headers(
            [
                ("upgrade", "WebSocket"),
                ("CONNECTION", "keep-alive, upgrade"),
                ("sec-websocket-accept", ACCEPT),
            ]
        ),
    )
    assert client().validate(response).response is response


def without(response: Response, name: str) -> Response:
    kept = [(n, v) for n, v in response.headers if n != name]
    return Response(response.status, response.reason, Headers(kept))


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(without(switching(), "Upgrade"), id="no Upgrade"),
        pytest.param(switching(("Upgrade", "h2c")), id="two upgrades"),
        pytest.param(without(switching(), "Connection"), id="no Connection"),
        pytest.param(without(switching(), "Sec-WebSocket-Accept"), id="no accept"),
        pytest.param(switching(accept=accept_key("other")), id="wrong accept"),
        pytest.param(switching(("Sec-WebSocket-Accept", ACCEPT)), id="two accepts"),
        pytest.param(switching(("Sec-WebSocket-Protocol", "chat")), id="protocol not offered"),
        pytest.param(switching(("Sec-WebSocket-Extensions", "x-test")), id="extension not offered"),
    ],
)
def test_a_101_that_breaks_rfc_6455_is_refused_with_status_101(response: Response) -> None:
    assert validation_error(client(), response).status == 101


def test_the_server_may_pick_one_offered_subprotocol_or_none() -> None:
    handshake = client(subprotocols=["chat", "superchat"])
    assert handshake.validate(switching(("Sec-WebSocket-Protocol", "chat"))).subprotocol == "chat"
    assert handshake.validate(switching()).subprotocol is None


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(["mqtt"], id="not offered"),
        pytest.param(["chat, superchat"], id="two in one line"),
        pytest.param(["chat", "chat"], id="two lines"),
    ],
)
def test_the_server_may_not_pick_another_or_several_subprotocols(values: list[str]) -> None:
    handshake = client(subprotocols=["chat", "superchat"])
    response = switching(*[("Sec-WebSocket-Protocol", value) for value in values])
    assert validation_error(handshake, response).status == 101


def test_confirmed_extensions_come_back_in_response_order() -> None:
    handshake = client(extensions=[FakeClientExtension("x-a", tag="a"), FakeClientExtension("x-b", tag="b")])
    accepted = handshake.validate(switching(("Sec-WebSocket-Extensions", "x-b; q=1, X-A")))
    assert accepted.extensions == [("b", [("q", "1")]), ("a", [])]


@pytest.mark.parametrize(
    "answer, reason",
    [
        pytest.param("x-other", "server accepted extension x-other, not offered", id="unoffered"),
        pytest.param("x-test, x-test", "server accepted extension x-test twice", id="twice"),
        pytest.param("x-test; refuse", "extension x-test refused: refused by the client", id="refused"),
        pytest.param("x test", "malformed extension name", id="malformed"),
    ],
)
def test_extension_answers_that_are_refused(answer: str, reason: str) -> None:
    handshake = client(extensions=[FakeClientExtension()])
    error = validation_error(handshake, switching(("Sec-WebSocket-Extensions", answer)))
    assert (error.status, error.reason) == (101, reason)


def test_a_refusal_by_the_extension_is_the_cause() -> None:
    handshake = client(extensions=[FakeClientExtension()])
    error = validation_error(handshake, switching(("Sec-WebSocket-Extensions", "x-test; refuse")))
    assert isinstance(error.__cause__, NegotiationError)


def test_an_answer_goes_to_the_next_offer_of_that_name_when_one_refuses() -> None:
    class Strict(FakeClientExtension):
        def confirm(self, params: ExtensionParams) -> object:
            raise NegotiationError("strict")

    handshake = client(extensions=[Strict(tag="strict"), FakeClientExtension(tag="lenient")])
    accepted = handshake.validate(switching(("Sec-WebSocket-Extensions", "x-test")))
    assert accepted.extensions == [("lenient", [])]


# --- Both sides -----------------------------------------------------------


def test_a_client_and_a_server_agree_over_bytes() -> None:
    client_side = ClientHandshake(
        "ws://localhost:8765/feed?topic=eurusd",
        origin="http://localhost:8765",
        subprotocols=["v2", "v1"],
        extensions=[FakeClientExtension(params=[("level", "3")])],
    )
    server_side = ServerHandshake(
        origins=["http://localhost:8765"],
        subprotocols=["v1", "v2"],
        extensions=[FakeServerExtension()],
    )

    request_parser = RequestParser()
    request = request_parser.feed(client_side.request().serialize() + FRAME)
    assert request is not None and request.query == {"topic": ["eurusd"]}
    assert request_parser.trailing == FRAME

    accepted_by_server = server_side.accept(request)
    response_parser = ResponseParser()
    response = response_parser.feed(accepted_by_server.response.serialize() + b"\x81\x00")
    assert response is not None and response_parser.trailing == b"\x81\x00"

    accepted_by_client = client_side.validate(response)
    assert accepted_by_server.subprotocol == accepted_by_client.subprotocol == "v1"
    assert accepted_by_server.extensions == [("server", [("level", "3")])]
    assert accepted_by_client.extensions == [("client", [("level", "3")])]


def test_a_server_refusal_reaches_the_client_with_its_status() -> None:
    client_side = ClientHandshake("ws://localhost:8765/", origin="https://evil.example")
    server_side = ServerHandshake(origins=["http://localhost:8765"])
    request = RequestParser().feed(client_side.request().serialize())
    assert request is not None
    with pytest.raises(InvalidHandshake) as refused:
        server_side.accept(request)
    response = ResponseParser().feed(ServerHandshake.reject(refused.value).serialize())
    assert response is not None
    assert validation_error(client_side, response).status == 403
