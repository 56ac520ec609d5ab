"""The server's receive fast path: whole messages straight from a read, on both twins.

``deliver_whole_messages`` takes only what the protocol would deliver as
whole messages and stops, untouched, at the first frame the protocol must
judge; the last tests check the hand-over end to end (compiled: from the
stream's read buffer into the connection core in C).
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from tests.servers import Recorder, running_server, wait_until
from tests.test_server import RawClient, masked_frame
from wsfast import _connection_py, _receive_py, kernels, server

IMPLEMENTATIONS = [_receive_py.deliver_whole_messages]
if importlib.util.find_spec("wsfast._receive_c") is not None:
    from wsfast import _receive_c

    IMPLEMENTATIONS.append(_receive_c.deliver_whole_messages)

TEXT, BINARY, PING, PONG = 0x1, 0x2, 0x9, 0xA


@pytest.fixture(params=IMPLEMENTATIONS, ids=["py", "c"][: len(IMPLEMENTATIONS)])
def deliver(request: pytest.FixtureRequest) -> object:
    return request.param


def run(deliver: object, data: bytes, max_size: int = 1 << 20, stop_after: int = -1) -> tuple[int, list[str | bytes]]:
    messages: list[str | bytes] = []

    def on_message(message: str | bytes) -> bool:
        messages.append(message)
        return len(messages) != stop_after

    taken = deliver(data, max_size, on_message)  # type: ignore[operator]
    return taken, messages


def test_the_server_uses_the_compiled_twins_when_the_extension_is_used() -> None:
    compiled = kernels.IMPLEMENTATION == "cython" and len(IMPLEMENTATIONS) == 2
    assert (_connection_py.deliver_whole_messages is not _receive_py.deliver_whole_messages) is compiled
    assert (server.ConnectionCore is not _connection_py.ConnectionCore) is compiled


def test_whole_text_and_binary_messages_of_every_length_encoding(deliver: object) -> None:
    payloads = [b"", b"x" * 125, os.urandom(126), os.urandom(65535), os.urandom(65536)]
    data = b"".join(masked_frame(BINARY, p) for p in payloads) + masked_frame(TEXT, "héllo".encode())
    assert run(deliver, data) == (len(data), [*payloads, "héllo"])


@pytest.mark.parametrize(
    "stopper",
    [
        masked_frame(PING, b"p"),  # control frame
        masked_frame(TEXT, b"frag", fin=False),  # fragment
        masked_frame(BINARY, b"unmasked", mask=False),  # unmasked: a protocol error
        bytes([0xC2]) + masked_frame(BINARY, b"rsv")[1:],  # RSV1
        masked_frame(TEXT, b"\xff\xfe"),  # invalid UTF-8: 1007
        masked_frame(BINARY, bytes(101)),  # over max_size: 1009
        masked_frame(BINARY, bytes(200))[:-1],  # cut by the end of the read
        bytes([0x82, 0xFE, 0x00, 0x05]) + bytes(9),  # a length not in the fewest bytes
    ],
    ids=["ping", "fragment", "unmasked", "rsv", "utf8", "too-big", "partial", "long-length"],
)
def test_it_stops_untouched_at_the_first_frame_the_protocol_must_judge(deliver: object, stopper: bytes) -> None:
    first = masked_frame(BINARY, b"first")
    data = first + stopper + masked_frame(BINARY, b"after")
    assert run(deliver, data, max_size=100) == (len(first), [b"first"])


def test_it_stops_after_the_message_whose_callback_says_so(deliver: object) -> None:
    one, two = masked_frame(TEXT, b"one"), masked_frame(TEXT, b"two")
    assert run(deliver, one + two, stop_after=1) == (len(one), ["one"])


def test_any_bytes_like_data(deliver: object) -> None:
    data = masked_frame(BINARY, b"abc")
    assert run(deliver, memoryview(bytearray(data))) == (len(data), [b"abc"])


# --- the hand-over, end to end ---------------------------------------------------------


def test_whole_messages_then_what_the_protocol_must_judge_in_one_read_keep_their_order() -> None:
    """The first two messages take the fast path; the ping, the fragments and the rest
    of the read go to the protocol (the part of the read after the taken bytes)."""
    pipelined = (
        masked_frame(TEXT, b"one")
        + masked_frame(BINARY, b"two")
        + masked_frame(PING, b"ping")
        + masked_frame(TEXT, b"thr", fin=False)
        + masked_frame(0x0, b"ee")
        + masked_frame(BINARY, b"four")
    )
    recorder = Recorder()
    with running_server(recorder) as ws_server, RawClient(ws_server) as raw:
        raw.handshake()
        raw.send(pipelined)
        replies = [raw.recv_frame() for _ in range(5)]
    assert replies == [(TEXT, b"one"), (BINARY, b"two"), (PONG, b"ping"), (TEXT, b"three"), (BINARY, b"four")]
    assert [recorder.next_message() for _ in range(4)] == ["one", b"two", "three", b"four"]


def test_a_stream_whose_on_data_is_replaced_reads_into_the_replacement() -> None:
    """The compiled read into the connection stands for the connection's own
    ``on_data`` only: another one set later gets every read."""
    reads: list[bytes] = []

    class Diverting(Recorder):
        def on_open(self, ws: server.ServerConnection) -> None:
            ws.stream.on_data = lambda view: reads.append(bytes(view))
            super().on_open(ws)

    recorder = Diverting()
    with running_server(recorder) as ws_server, RawClient(ws_server) as raw:
        raw.handshake()
        recorder.next_open()
        frame = masked_frame(TEXT, b"diverted")
        raw.send(frame)
        assert wait_until(lambda: b"".join(reads) == frame)
    assert recorder.messages.empty()
