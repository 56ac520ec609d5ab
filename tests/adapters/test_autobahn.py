"""wsfast.adapters.autobahn: autobahn's maskers and UTF-8 validator run on the kernels."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Iterator
from itertools import pairwise
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.adapters import (
    EDGE_SIZES,
    TIMEOUT,
    Spy,
    accelerated,
    as_kind,
    keys,
    outcome,
    payloads,
    random_bytes,
    require,
    unpatched,
    utf8_chunks,
)
from wsfast.accelerate import accelerate, deaccelerate
from wsfast.adapters import _utf8
from wsfast.adapters import autobahn as adapter
from wsfast.adapters._patch import original_of

require("autobahn")
import autobahn.websocket as autobahn_websocket  # noqa: E402
import autobahn.websocket.protocol as protocol  # noqa: E402
from autobahn.asyncio.websocket import (  # noqa: E402
    WebSocketClientFactory,
    WebSocketClientProtocol,
    WebSocketServerFactory,
    WebSocketServerProtocol,
)

NAMES = ("create_xor_masker", "XorMaskerNull", "Utf8Validator")
ORIGINALS = {name: unpatched(getattr(protocol, name)) for name in NAMES}


def _pure(name: str) -> ModuleType:
    """autobahn's pure-Python module ``name``: loaded with NVX off and wsaccel hidden
    (autobahn >= 25 uses NVX when built, older versions wsaccel when installed)."""
    path = importlib.util.find_spec(f"autobahn.websocket.{name}").origin  # type: ignore[union-attr]
    hidden = ("wsaccel", "wsaccel.xormask", "wsaccel.utf8validator")
    saved_modules = {module: sys.modules.get(module) for module in hidden}
    saved_nvx = getattr(autobahn_websocket, "USES_NVX", None)
    sys.modules.update(dict.fromkeys(hidden))  # None: "import wsaccel" raises ImportError
    if saved_nvx is not None:
        autobahn_websocket.USES_NVX = False
    try:
        spec = importlib.util.spec_from_file_location(f"_pure_autobahn_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for hidden_name, hidden_module in saved_modules.items():
            if hidden_module is None:
                del sys.modules[hidden_name]
            else:
                sys.modules[hidden_name] = hidden_module
        if saved_nvx is not None:
            autobahn_websocket.USES_NVX = saved_nvx
    return module


PURE_MASKER = _pure("xormasker").create_xor_masker
PURE_VALIDATOR = _pure("utf8validator").Utf8Validator


@pytest.fixture(autouse=True)
def restore() -> Iterator[None]:
    yield
    deaccelerate("autobahn")


def test_the_patch_took() -> None:
    assert accelerate("autobahn") == ["autobahn"]
    assert protocol.create_xor_masker is adapter.create_xor_masker
    assert protocol.XorMaskerNull is adapter.XorMaskerNull
    assert protocol.Utf8Validator is adapter.Utf8Validator
    for name in NAMES:
        assert original_of(getattr(protocol, name)) is ORIGINALS[name]


def test_the_hot_path_reaches_the_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    mask, validator = Spy(adapter._mask), Spy(_utf8._Utf8Validator)
    monkeypatch.setattr(adapter, "_mask", mask)
    monkeypatch.setattr(_utf8, "_Utf8Validator", validator)
    accelerate("autobahn")
    assert asyncio.run(asyncio.wait_for(_echo_round_trip(["h\u00e9llo"]), 6 * TIMEOUT)) == ["h\u00e9llo"]
    assert mask.calls >= 2
    assert validator.calls >= 2  # one validator per connection, at both ends


@settings(deadline=None)
@given(
    data=payloads(),
    key=keys(),
    kind=st.sampled_from(["bytes", "bytearray", "memoryview", "readonly"]),
    length=st.sampled_from([None, 0, 127, 128, 100000]),
    cuts=st.lists(st.integers(0, 400), max_size=4),
)
def test_maskers_answer_as_autobahn(data: bytes, key: bytes, kind: str, length: int | None, cuts: list[int]) -> None:
    with accelerated("autobahn"):
        ours = protocol.create_xor_masker(key, length)
    maskers = [ORIGINALS["create_xor_masker"](key, length), PURE_MASKER(key, length)]
    bounds = [0, *sorted(min(cut, len(data)) for cut in cuts), len(data)]
    for start, end in pairwise(bounds):
        chunk = as_kind(data[start:end], kind)
        expected = ours.process(chunk)
        assert type(expected) is bytes
        for masker in maskers:
            assert masker.process(chunk) == expected
            assert masker.pointer() == ours.pointer()
    for masker in maskers:
        ours.reset()
        masker.reset()
        assert masker.process(data[:7]) == ours.process(data[:7])


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_edge_lengths(size: int) -> None:
    data = random_bytes(size, size)
    with accelerated("autobahn"):
        ours = protocol.create_xor_masker(b"\x01\x02\x03\x04", size).process(data)
    assert ours == ORIGINALS["create_xor_masker"](b"\x01\x02\x03\x04", size).process(data)


def test_masker_errors_as_autobahn() -> None:
    with accelerated("autobahn"):
        for mask in (b"abc", b"abcde"):
            with pytest.raises(AssertionError):
                protocol.create_xor_masker(mask)
        masker = protocol.create_xor_masker(b"abcd")
        assert masker.process([1, 2, 3]) == PURE_MASKER(b"abcd").process([1, 2, 3])
        for bad in (None, "text", 5):
            assert outcome(masker.process, bad)[:2] == outcome(PURE_MASKER(b"abcd").process, bad)[:2]
        null = protocol.XorMaskerNull(b"abcd")
        theirs = ORIGINALS["XorMaskerNull"](b"abcd")
        data = bytearray(b"unchanged")
        assert null.process(data) is data
        assert theirs.process(data) is data
        assert null.pointer() == theirs.pointer() == 9
        null.reset()
        assert null.pointer() == 0


@settings(deadline=None, max_examples=300)
@given(chunks=utf8_chunks(), kind=st.sampled_from(["bytes", "bytearray", "memoryview"]))
def test_validator_answers_as_autobahn(chunks: list[bytes], kind: str) -> None:
    with accelerated("autobahn"):
        ours = protocol.Utf8Validator()
    pure, nvx = PURE_VALIDATOR(), ORIGINALS["Utf8Validator"]()
    failed = False
    for chunk in chunks:
        expected = pure.validate(as_kind(chunk, kind))
        assert ours.validate(as_kind(chunk, kind)) == expected
        assert ours.state == pure._state
        assert ours.i == pure._index
        if not failed:
            # autobahn's NVX validator agrees until the first failure, after
            # which it stops checking (see the adapter's docstring).
            assert nvx.validate(chunk) == expected
            failed = not expected[0]
    ours.reset()
    pure.reset()
    assert ours.validate(b"\xe2\x82") == pure.validate(b"\xe2\x82")


@given(octets=st.lists(st.integers(0, 255), max_size=12))
def test_validator_decode_as_autobahn(octets: list[int]) -> None:
    ours, pure = adapter.Utf8Validator(), PURE_VALIDATOR()
    for octet in octets:
        assert ours.decode(octet) == pure.decode(octet)
        assert ours.codepoint == pure._codepoint
        assert ours.state == pure._state
    assert ours.validate(b"\x80a") == pure.validate(b"\x80a")


def test_validator_odd_inputs_as_autobahn() -> None:
    for chunk in ([0x61, 0xC3, 0xA9], [0xFF], "text", None):
        ours, pure = adapter.Utf8Validator(), PURE_VALIDATOR()
        assert outcome(ours.validate, chunk)[:2] == outcome(pure.validate, chunk)[:2]


async def _echo_round_trip(messages: list[str | bytes]) -> list[str | bytes]:
    loop = asyncio.get_running_loop()

    class Echo(WebSocketServerProtocol):  # type: ignore[misc]
        def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N802, N803
            self.sendMessage(payload, isBinary)

    server_factory = WebSocketServerFactory()
    server_factory.protocol = Echo
    server = await loop.create_server(server_factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    opened: asyncio.Future[Any] = loop.create_future()
    replies: asyncio.Queue[str | bytes] = asyncio.Queue()

    class Client(WebSocketClientProtocol):  # type: ignore[misc]
        def onOpen(self) -> None:  # noqa: N802
            opened.set_result(self)

        def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N802, N803
            replies.put_nowait(payload if isBinary else payload.decode("utf-8"))

    client_factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}")
    client_factory.protocol = Client
    transport, _ = await loop.create_connection(client_factory, "127.0.0.1", port)
    received: list[str | bytes] = []
    try:
        client = await asyncio.wait_for(opened, TIMEOUT)
        for message in messages:
            if isinstance(message, str):
                client.sendMessage(message.encode("utf-8"), isBinary=False)
            else:
                client.sendMessage(message, isBinary=True)
            received.append(await asyncio.wait_for(replies.get(), TIMEOUT))
        client.sendClose(1000)
    finally:
        transport.close()
        server.close()
        await server.wait_closed()
    return received


def test_round_trip_through_autobahn(monkeypatch: pytest.MonkeyPatch) -> None:
    mask = Spy(adapter._mask)
    monkeypatch.setattr(adapter, "_mask", mask)
    accelerate("autobahn")
    messages: list[str | bytes] = [b"x", random_bytes(125, 1), random_bytes(126, 2), random_bytes(65536, 3)]
    messages += ["h\u00e9llo \u20ac \U0001f600", "x" * 70000]
    assert asyncio.run(asyncio.wait_for(_echo_round_trip(messages), 6 * TIMEOUT)) == messages
    assert mask.calls >= 2 * len(messages)


def test_deaccelerate_restores_the_originals() -> None:
    accelerate("autobahn")
    assert deaccelerate("autobahn") == ["autobahn"]
    for name in NAMES:
        assert getattr(protocol, name) is ORIGINALS[name]


def test_idempotent() -> None:
    accelerate("autobahn")
    accelerate("autobahn")
    assert protocol.Utf8Validator is adapter.Utf8Validator
    assert original_of(protocol.Utf8Validator) is ORIGINALS["Utf8Validator"]
    deaccelerate("autobahn")
    for name in NAMES:
        assert getattr(protocol, name) is ORIGINALS[name]
