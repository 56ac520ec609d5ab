"""The public names promised in docs/DESIGN.md ("Public contract") exist and are exported."""

from __future__ import annotations

import wsfast

PROMISED = [
    "IMPLEMENTATION",
    "mask",
    "mask_into",
    "validate_utf8",
    "Utf8Validator",
    "parse_header",
    "build_frame",
    "frame_header",
    "FrameParser",
    "ProtocolError",
    "Connection",
]


def test_promised_names_are_exported() -> None:
    for name in PROMISED:
        assert name in wsfast.__all__, name
        assert getattr(wsfast, name) is not None


def test_all_lists_only_real_names() -> None:
    assert sorted(set(wsfast.__all__)) == sorted(wsfast.__all__)
    for name in wsfast.__all__:
        assert hasattr(wsfast, name), name


def test_implementation_is_one_of_two() -> None:
    assert wsfast.IMPLEMENTATION in ("cython", "python")
