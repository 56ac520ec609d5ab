"""wsfast.adapters.gunicorn: the ASGI worker's ``WebSocketProtocol._unmask`` runs on the kernel."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.adapters import EDGE_SIZES, Spy, accelerated, keys, outcome, payloads, random_bytes, require
from wsfast.accelerate import accelerate, deaccelerate
from wsfast.adapters import gunicorn as adapter
from wsfast.adapters._patch import original_of

require("gunicorn.asgi.websocket", "gunicorn")
from gunicorn.asgi.websocket import WebSocketProtocol  # noqa: E402

ORIGINAL = vars(WebSocketProtocol)["_unmask"]


@pytest.fixture(autouse=True)
def restore() -> Iterator[None]:
    yield
    deaccelerate("gunicorn")


def _protocol() -> Any:
    return WebSocketProtocol.__new__(WebSocketProtocol)  # _unmask uses nothing of the connection


def test_the_patch_took_and_is_undone() -> None:
    assert accelerate("gunicorn") == ["gunicorn"]
    patched = vars(WebSocketProtocol)["_unmask"]
    assert patched.__module__ == "wsfast.adapters.gunicorn"
    assert original_of(patched) is ORIGINAL
    assert deaccelerate("gunicorn") == ["gunicorn"]
    assert vars(WebSocketProtocol)["_unmask"] is ORIGINAL


def test_every_payload_reaches_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(adapter._mask)
    monkeypatch.setattr(adapter, "_mask", spy)
    accelerate("gunicorn")
    assert _protocol()._unmask(b"\x00\x00\x00\x00\x01", b"abcd") == b"abcd`"
    assert spy.calls == 1


@settings(deadline=None)
@given(data=payloads(), key=keys(), types=st.sampled_from([(bytes, bytes), (bytearray, bytes), (bytes, bytearray)]))
def test_same_results_as_gunicorn(data: bytes, key: bytes, types: tuple[type, type]) -> None:
    payload, mask = types[0](data), types[1](key)
    expected = outcome(ORIGINAL, _protocol(), payload, mask)
    with accelerated("gunicorn"):
        assert outcome(_protocol()._unmask, payload, mask) == expected


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_edge_lengths(size: int) -> None:
    data = random_bytes(size, size)
    with accelerated("gunicorn"):
        assert _protocol()._unmask(data, b"\x01\x02\x03\x04") == ORIGINAL(_protocol(), data, b"\x01\x02\x03\x04")


def test_an_empty_payload_comes_back_as_the_same_object() -> None:
    empty = bytearray()
    with accelerated("gunicorn"):
        assert _protocol()._unmask(empty, b"abcd") is empty


@pytest.mark.parametrize(
    ("payload", "mask"),
    [(b"data", b"abc"), (b"data", b"abcde"), (b"data", None), (None, b"abcd"), ("text", b"abcd"), (b"da", "abcd")],
    ids=repr,
)
def test_other_arguments_behave_as_gunicorn(payload: Any, mask: Any) -> None:
    expected = outcome(ORIGINAL, _protocol(), payload, mask)
    with accelerated("gunicorn"):
        assert outcome(_protocol()._unmask, payload, mask) == expected
