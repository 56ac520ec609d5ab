"""RFC 6455 nouns: opcodes, close codes and close payloads (wsfast.frames)."""

from __future__ import annotations

import pytest

from wsfast import frames
from wsfast.exceptions import InvalidUTF8, ProtocolError
from wsfast.frames import Close, CloseCode, Frame, FrameParser, Opcode, build_frame, is_valid_close_code

# --- opcodes and close codes ------------------------------------------------


def test_opcodes_are_the_six_of_rfc_6455() -> None:
    # RFC 6455 §5.2: 0x3-0x7 and 0xB-0xF are reserved and have no name.
    assert {op.name: op.value for op in Opcode} == {
        "CONTINUATION": 0x0,
        "TEXT": 0x1,
        "BINARY": 0x2,
        "CLOSE": 0x8,
        "PING": 0x9,
        "PONG": 0xA,
    }


def test_each_opcode_is_also_a_module_name_bound_to_its_int() -> None:
    for op in Opcode:
        value = getattr(frames, f"OP_{op.name}")
        assert type(value) is int and value == op  # exact ints compare faster
        assert f"OP_{op.name}" in frames.__all__


def test_control_opcodes_are_those_with_the_high_bit() -> None:
    assert [op for op in Opcode if op >= 0x8] == [Opcode.CLOSE, Opcode.PING, Opcode.PONG]


def test_close_codes_match_rfc_6455_and_the_iana_registry() -> None:
    assert {code.name: code.value for code in CloseCode} == {
        "NORMAL_CLOSURE": 1000,
        "GOING_AWAY": 1001,
        "PROTOCOL_ERROR": 1002,
        "UNSUPPORTED_DATA": 1003,
        "NO_STATUS_RCVD": 1005,
        "ABNORMAL_CLOSURE": 1006,
        "INVALID_DATA": 1007,
        "POLICY_VIOLATION": 1008,
        "MESSAGE_TOO_BIG": 1009,
        "MANDATORY_EXTENSION": 1010,
        "INTERNAL_ERROR": 1011,
        "SERVICE_RESTART": 1012,
        "TRY_AGAIN_LATER": 1013,
        "BAD_GATEWAY": 1014,
        "TLS_HANDSHAKE": 1015,
    }


def rule(code: int) -> bool:
    """RFC 6455 §7.4: the codes a close frame may carry."""
    return code in range(1000, 1004) or code in range(1007, 1015) or code in range(3000, 5000)


def test_is_valid_close_code_follows_the_rule_for_every_code_up_to_5100() -> None:
    wrong = [code for code in range(5101) if is_valid_close_code(code) != rule(code)]
    assert wrong == []


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 3999, 4000, 4999])
def test_codes_for_the_wire_are_valid(code: int) -> None:
    assert is_valid_close_code(code)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
def test_reserved_and_reporting_only_codes_are_invalid(code: int) -> None:
    assert not is_valid_close_code(code)


# --- Close.parse --------------------------------------------------------------


def test_an_empty_close_payload_means_no_status() -> None:
    assert Close.parse(b"") == Close(CloseCode.NO_STATUS_RCVD, "")
    assert Close.parse(b"").code == 1005


def test_a_one_byte_close_payload_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError) as info:
        Close.parse(b"\x03")
    assert info.value.code == 1002
    assert not isinstance(info.value, InvalidUTF8)


def test_a_code_without_reason() -> None:
    assert Close.parse(b"\x03\xe8") == Close(1000, "")


def test_a_code_with_a_reason() -> None:
    assert Close.parse(b"\x03\xe9going away") == Close(1001, "going away")


def test_a_multibyte_reason() -> None:
    assert Close.parse(b"\x0f\xa0" + "κόσμε".encode()) == Close(4000, "κόσμε")


def test_a_123_byte_reason_is_accepted() -> None:
    reason = "r" * 123
    assert Close.parse(b"\x03\xe8" + reason.encode()) == Close(1000, reason)


@pytest.mark.parametrize("code", [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 5001, 65535])
def test_invalid_codes_are_protocol_errors(code: int) -> None:
    with pytest.raises(ProtocolError) as info:
        Close.parse(code.to_bytes(2, "big") + b"reason")
    assert info.value.code == 1002
    assert not isinstance(info.value, InvalidUTF8)


def test_every_code_up_to_5100_parses_exactly_when_valid() -> None:
    for code in range(5101):
        payload = code.to_bytes(2, "big")
        if rule(code):
            assert Close.parse(payload) == Close(code, ""), code
        else:
            with pytest.raises(ProtocolError) as info:
                Close.parse(payload)
            assert info.value.code == 1002, code


@pytest.mark.parametrize(
    "reason",
    [
        b"\xff",
        b"\xc0\xaf",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"abc\xce",
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce",
    ],
    ids=["ff", "overlong", "surrogate", "above-10ffff", "truncated-ascii", "truncated-kosme"],
)
def test_an_invalid_utf8_reason_is_invalid_data(reason: bytes) -> None:
    with pytest.raises(InvalidUTF8) as info:
        Close.parse(b"\x03\xe8" + reason)
    assert info.value.code == 1007
    assert isinstance(info.value, ProtocolError)


# --- Close.serialize ------------------------------------------------------------


def test_serialize_is_the_code_then_the_reason() -> None:
    assert Close(1000, "").serialize() == b"\x03\xe8"
    assert Close(1001, "bye").serialize() == b"\x03\xe9bye"
    assert Close(4999, "é").serialize() == b"\x13\x87\xc3\xa9"


def test_the_default_close_is_a_normal_closure() -> None:
    assert Close() == Close(1000, "")
    assert Close().serialize() == b"\x03\xe8"


def test_no_status_serializes_to_an_empty_payload() -> None:
    assert Close(CloseCode.NO_STATUS_RCVD).serialize() == b""
    assert Close.parse(Close(1005).serialize()) == Close(1005, "")


def test_no_status_cannot_carry_a_reason() -> None:
    with pytest.raises(ValueError):
        Close(1005, "why").serialize()


def test_the_reason_limit_is_123_bytes() -> None:
    # 2 bytes of code + 123 of reason = 125, the control frame limit (§5.5).
    assert len(Close(1000, "x" * 123).serialize()) == 125
    with pytest.raises(ValueError):
        Close(1000, "x" * 124).serialize()


def test_the_reason_limit_counts_encoded_bytes_not_characters() -> None:
    assert len(Close(1000, "€" * 41).serialize()) == 125  # 41 x 3 bytes = 123
    with pytest.raises(ValueError):
        Close(1000, "€" * 42).serialize()  # 42 characters, 126 bytes


@pytest.mark.parametrize("code", [0, 999, 1004, 1006, 1015, 1016, 2999, 5000, 65535])
def test_unsendable_codes_raise_value_error(code: int) -> None:
    with pytest.raises(ValueError):
        Close(code, "").serialize()


def test_serialize_then_parse_round_trips_every_sendable_code() -> None:
    for code in filter(rule, range(5000)):
        close = Close(code, f"reason {code}")
        assert Close.parse(close.serialize()) == close


def test_parsed_closes_compare_by_value() -> None:
    assert Close.parse(b"\x03\xe8ok") == Close(1000, "ok") != Close(1000, "no")
    with pytest.raises(AttributeError):
        Close().code = 1001  # type: ignore[misc]


# --- RFC 6455 §5.7 examples, both directions -------------------------------------

KEY = b"\x37\xfa\x21\x3d"


@pytest.mark.parametrize(
    ("wire", "frame", "key"),
    [
        (b"\x81\x05Hello", Frame(Opcode.TEXT, b"Hello"), None),
        (b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", Frame(Opcode.TEXT, b"Hello"), KEY),
        (b"\x01\x03Hel", Frame(Opcode.TEXT, b"Hel", fin=False), None),
        (b"\x80\x02lo", Frame(Opcode.CONTINUATION, b"lo"), None),
        (b"\x89\x05Hello", Frame(Opcode.PING, b"Hello"), None),
        (b"\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", Frame(Opcode.PONG, b"Hello"), KEY),
        (b"\x82\x7e\x01\x00" + bytes(256), Frame(Opcode.BINARY, bytes(256)), None),
        (b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00" + bytes(65536), Frame(Opcode.BINARY, bytes(65536)), None),
    ],
    ids=["text", "masked-text", "fragment-1", "fragment-2", "ping", "masked-pong", "256-bytes", "64-KiB"],
)
def test_rfc_6455_section_5_7_examples(wire: bytes, frame: Frame, key: bytes | None) -> None:
    built = build_frame(frame.opcode, frame.payload, fin=frame.fin, rsv=frame.rsv, mask_key=key)
    assert built == wire
    assert FrameParser(masked=key is not None).feed(wire) == [frame]
