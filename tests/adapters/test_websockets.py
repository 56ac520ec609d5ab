"""wsfast.adapters.websockets: a pure-Python ``apply_mask`` runs on the kernel; the C speedup is left alone.

Most tests put websockets' pure-Python ``apply_mask`` in ``websockets.frames``
first, as websockets without its C speedups has it: that is where wsfast
patches it.
"""

from __future__ import annotations

import array
import json
import threading
from collections.abc import Callable, Generator, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.adapters import (
    BUFFER_KINDS,
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
    run_python,
    unpatched,
)
from wsfast.accelerate import accelerate, deaccelerate
from wsfast.adapters import _websockets_protocol
from wsfast.adapters import websockets as adapter
from wsfast.adapters._patch import original_of

require("websockets")
import websockets.frames  # noqa: E402
import websockets.sync.client  # noqa: E402
import websockets.sync.server  # noqa: E402
import websockets.utils  # noqa: E402

ORIGINAL = websockets.utils.apply_mask
SPEEDUP = unpatched(websockets.frames.apply_mask)  # the C speedup in websockets' default build


@pytest.fixture(autouse=True)
def python_apply_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(websockets.frames, "apply_mask", ORIGINAL)


@pytest.fixture(autouse=True)
def restore(python_apply_mask: None) -> Iterator[None]:
    yield
    deaccelerate("websockets")


def test_the_c_speedup_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    if SPEEDUP is ORIGINAL:
        pytest.skip("websockets runs without its C speedups here")
    monkeypatch.setattr(websockets.frames, "apply_mask", SPEEDUP)
    assert accelerate("websockets") == ["websockets"]  # Frame.parse and Frame.serialize are patched
    assert websockets.frames.apply_mask is SPEEDUP
    assert adapter.PATCHER.native == {"websockets.frames.apply_mask": "websockets.speedups.apply_mask (compiled)"}


def test_the_patch_took() -> None:
    assert accelerate("websockets") == ["websockets"]
    patched = websockets.frames.apply_mask
    assert patched is not ORIGINAL
    assert patched.__module__ == "wsfast.adapters.websockets"
    assert original_of(patched) is ORIGINAL
    assert adapter.is_active()


def test_the_hot_path_reaches_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(adapter._mask)
    monkeypatch.setattr(adapter, "_mask", spy)
    accelerate("websockets")
    frame = websockets.frames.Frame(websockets.frames.Opcode.BINARY, b"hello, world")
    wire = frame.serialize(mask=True)
    assert spy.calls == 1

    parser = websockets.frames.Frame.parse(_read_exact(wire), mask=True)
    with pytest.raises(StopIteration) as stop:
        next(parser)
    assert stop.value.value == frame
    assert spy.calls == 2


def _read_exact(data: bytes) -> Callable[[int], Generator[None, None, bytes]]:
    """A ``read_exact`` generator over ``data``, as websockets' StreamReader gives."""
    position = 0

    def read_exact(n: int) -> Generator[None, None, bytes]:
        nonlocal position
        chunk = data[position : position + n]
        position += n
        return chunk
        yield  # a generator function

    return read_exact


@settings(deadline=None)
@given(data=payloads(), key=keys(), kind=st.sampled_from(BUFFER_KINDS))
def test_same_results_as_websockets(data: bytes, key: bytes, kind: str) -> None:
    with accelerated("websockets"):
        patched = websockets.frames.apply_mask
        buffer = as_kind(data, kind)
        assert outcome(patched, buffer, key) == outcome(ORIGINAL, buffer, key)
        assert outcome(patched, data=buffer, mask=bytearray(key)) == outcome(ORIGINAL, data=buffer, mask=bytearray(key))
        if kind in ("bytes", "bytearray", "memoryview"):
            assert patched(buffer, key) == websockets.utils.apply_mask(bytes(data), key)


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_edge_lengths(size: int) -> None:
    data = random_bytes(size, size)
    with accelerated("websockets"):
        assert websockets.frames.apply_mask(data, b"\x01\x02\x03\x04") == ORIGINAL(data, b"\x01\x02\x03\x04")


@pytest.mark.parametrize(
    "args",
    [
        (None, b"abcd"),
        (b"data", None),
        ("text", b"abcd"),
        (b"data", "abcd"),
        (12, b"abcd"),
        (b"data", b""),
        (b"data", b"abc"),
        (b"data", b"abcde"),
        (bytearray(b"data"), bytearray(b"ab")),
        (memoryview(b"abcdabcd")[::2], b"abcd"),
        (memoryview(b"data"), memoryview(b"abcd")),
        (b"data", memoryview(b"abcd")[::2]),
    ],
    ids=repr,
)
def test_same_errors_as_websockets(args: tuple[object, object]) -> None:
    with accelerated("websockets"):
        assert outcome(websockets.frames.apply_mask, *args) == outcome(ORIGINAL, *args)
        assert outcome(websockets.frames.apply_mask, data=args[0], mask=args[1]) == outcome(
            ORIGINAL, data=args[0], mask=args[1]
        )


def _odd_views() -> list[memoryview]:
    import ctypes

    views = [
        memoryview(b"abcdefgh").cast("i"),
        memoryview(b"abcdefgh").cast("B", (2, 4)),
        memoryview(ctypes.c_int(7)),
        memoryview(b""),
        memoryview(array.array("d", [1.5, 2.5]))[::-1],
    ]
    numpy = pytest.importorskip("numpy")
    views.append(memoryview(numpy.arange(12, dtype=numpy.uint8).reshape(3, 4)[::2, ::3]))
    views.append(memoryview(numpy.arange(12, dtype=numpy.int32).reshape(3, 4)[::2, ::3]))
    return views


def test_odd_memoryviews_as_websockets() -> None:
    with accelerated("websockets"):
        for view in _odd_views():
            assert outcome(websockets.frames.apply_mask, view, b"abcd") == outcome(ORIGINAL, view, b"abcd")


def test_none_and_bad_mask_length_raise_as_websockets() -> None:
    with accelerated("websockets"):
        with pytest.raises(TypeError):
            websockets.frames.apply_mask(None, b"abcd")
        with pytest.raises(ValueError, match="mask must contain 4 bytes"):
            websockets.frames.apply_mask(b"data", b"abc")


def test_round_trip_through_websockets(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(adapter._mask)
    monkeypatch.setattr(adapter, "_mask", spy)
    monkeypatch.setattr(_websockets_protocol, "_mask", spy)
    accelerate("websockets")
    messages: list[str | bytes] = [b"", b"x", random_bytes(125, 1), random_bytes(126, 2), random_bytes(65536, 3)]
    messages += ["", "h\u00e9llo \u20ac \U0001f600", "x" * 70000]

    def echo(connection: websockets.sync.server.ServerConnection) -> None:
        for message in connection:
            connection.send(message)

    with websockets.sync.server.serve(echo, "127.0.0.1", 0, compression=None, max_size=None) as server:
        port = server.socket.getsockname()[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with websockets.sync.client.connect(
                f"ws://127.0.0.1:{port}", compression=None, max_size=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT
            ) as client:
                for message in messages:
                    client.send(message)
                    assert client.recv(timeout=TIMEOUT) == message
        finally:
            server.shutdown()
            thread.join(TIMEOUT)
    # The client masked every message and the server unmasked it, on the kernel.
    assert spy.calls >= 2 * len(messages)


def test_deaccelerate_restores_the_original() -> None:
    accelerate("websockets")
    assert deaccelerate("websockets") == ["websockets"]
    assert websockets.frames.apply_mask is ORIGINAL
    assert not adapter.is_active()
    assert deaccelerate("websockets") == []


def test_idempotent() -> None:
    assert accelerate("websockets") == ["websockets"]
    first = websockets.frames.apply_mask
    assert accelerate("websockets") == ["websockets"]
    adapter.install()
    assert websockets.frames.apply_mask is first
    assert original_of(first) is ORIGINAL
    deaccelerate("websockets")
    assert websockets.frames.apply_mask is ORIGINAL


LEGACY = """
import json, sys, warnings
sys.modules["websockets.speedups"] = None  # websockets without its C speedups
warnings.simplefilter("ignore", DeprecationWarning)
from wsfast.accelerate import accelerate
accelerate("websockets")
before = "websockets.legacy.framing" in sys.modules
import websockets.legacy.framing as legacy
print(json.dumps([before, legacy.apply_mask.__module__, legacy.apply_mask(b"abcd", b"\\x01\\x01\\x01\\x01").hex()]))
"""


def test_legacy_framing_is_never_imported_but_patched_on_import() -> None:
    run = run_python(LEGACY)
    assert run.returncode == 0, run.stderr
    before, module, masked = json.loads(run.stdout)
    assert before is False
    assert module == "wsfast.adapters.websockets"
    assert masked == "60636265"


LEGACY_FIRST = """
import json, sys, warnings
sys.modules["websockets.speedups"] = None  # websockets without its C speedups
warnings.simplefilter("ignore", DeprecationWarning)
import websockets.legacy.framing as legacy
from wsfast.accelerate import accelerate, deaccelerate
original = legacy.apply_mask
accelerate("websockets")
patched = legacy.apply_mask.__module__
deaccelerate("websockets")
print(json.dumps([patched, legacy.apply_mask is original]))
"""


def test_legacy_framing_already_imported_is_patched_and_restored() -> None:
    run = run_python(LEGACY_FIRST)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == ["wsfast.adapters.websockets", True]
