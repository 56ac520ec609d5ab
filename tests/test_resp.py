"""RESP2 encoding and the two reply parsers (hiredis and pure Python), which must agree."""

from __future__ import annotations

import pytest

from wsfast.backplane import resp

READERS = [pytest.param(resp.PythonReader, id="python")]
try:
    import hiredis
except ImportError:  # pragma: no cover - hiredis is in the dev extra
    pass
else:
    READERS.append(
        pytest.param(lambda: hiredis.Reader(replyError=resp.ReplyError, protocolError=resp.ProtocolError), id="hiredis")
    )

REPLIES = [
    (b"+OK\r\n", b"OK"),
    (b":42\r\n", 42),
    (b":-7\r\n", -7),
    (b"$5\r\nhe\r\no\r\n", b"he\r\no"),
    (b"$0\r\n\r\n", b""),
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),
    (b"*0\r\n", []),
    (b"*3\r\n$7\r\nmessage\r\n$4\r\nfeed\r\n$3\r\n\x00\xff\x01\r\n", [b"message", b"feed", b"\x00\xff\x01"]),
    (b"*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nd\r\n$1\r\nx\r\n:1\r\n", [[b"1-0", [b"d", b"x"]], 1]),
]


def test_encode_writes_an_array_of_bulk_strings() -> None:
    wire = b"".join(resp.encode("SET", "clé", b"\r\n", 10))
    assert wire == b"*4\r\n$3\r\nSET\r\n$4\r\ncl\xc3\xa9\r\n$2\r\n\r\n\r\n$2\r\n10\r\n"


def test_encode_does_not_copy_bytes_arguments() -> None:
    payload = b"x" * 1000
    assert any(buffer is payload for buffer in resp.encode("PUBLISH", "t", payload))


def test_encode_rejects_other_types_naming_them() -> None:
    with pytest.raises(TypeError, match="not float"):
        resp.encode("SET", "k", 1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("make", READERS)
@pytest.mark.parametrize(("wire", "reply"), REPLIES)
def test_a_reply_parses_whole_or_byte_by_byte(make: resp.Reader, wire: bytes, reply: object) -> None:
    whole = make()  # type: ignore[operator]
    whole.feed(wire)
    assert whole.gets() == reply
    assert whole.gets() is resp.NEED_DATA
    split = make()  # type: ignore[operator]
    for index in range(len(wire) - 1):
        split.feed(wire[index : index + 1])
        assert split.gets() is resp.NEED_DATA
    split.feed(wire[-1:])
    assert split.gets() == reply


@pytest.mark.parametrize("make", READERS)
def test_replies_come_out_in_order_and_errors_are_returned(make: resp.Reader) -> None:
    reader = make()  # type: ignore[operator]
    reader.feed(b"".join(wire for wire, _ in REPLIES) + b"-NOSCRIPT No matching script\r\n:1\r\n")
    assert [reader.gets() for _ in REPLIES] == [reply for _, reply in REPLIES]
    error = reader.gets()
    assert isinstance(error, resp.ReplyError) and str(error) == "NOSCRIPT No matching script"
    assert reader.gets() == 1


@pytest.mark.parametrize("make", READERS)
@pytest.mark.parametrize("wire", [b"?what\r\n", b":12x\r\n"])
def test_what_is_not_resp_raises_protocol_error(make: resp.Reader, wire: bytes) -> None:
    reader = make()  # type: ignore[operator]
    reader.feed(wire)
    with pytest.raises(resp.ProtocolError):
        reader.gets()


def test_reader_is_hiredis_when_installed_and_python_under_wsfast_pure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSFAST_PURE", "1")
    assert isinstance(resp.reader(), resp.PythonReader)
    monkeypatch.delenv("WSFAST_PURE")
    expected = "PythonReader" if len(READERS) == 1 else "Reader"
    assert type(resp.reader()).__name__ == expected
