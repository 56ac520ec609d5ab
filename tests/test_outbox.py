"""The outbox twins, and the version a connection gives it.

``Outbox`` holds what a connection queues to send, counted in bytes; its
``version`` changes exactly when ``can_send_prebuilt()`` may change, which
is what lets the server's compiled core keep that answer between messages.
"""

from __future__ import annotations

import array
import importlib.util
from typing import Any

import pytest

from wsfast import _outbox_py, kernels
from wsfast.extensions import PerMessageDeflate
from wsfast.frames import OP_CLOSE, OP_PING, Close
from wsfast.protocol import Connection, Role

from .helpers import open_pair, peer_frame

TWINS: list[Any] = [_outbox_py.Outbox]
if importlib.util.find_spec("wsfast._outbox_c") is not None:
    from wsfast import _outbox_c

    TWINS.append(_outbox_c.Outbox)


@pytest.fixture(params=TWINS, ids=["py", "c"][: len(TWINS)])
def outbox(request: pytest.FixtureRequest) -> Any:
    return request.param()


def test_an_outbox_counts_the_bytes_of_every_kind_of_buffer(outbox: Any) -> None:
    ints = array.array("i", [1, 2, 3])
    for buffer in (b"head", bytearray(b"payload"), memoryview(b"view"), ints, b""):
        outbox.add(buffer)
    assert outbox.buffered == 4 + 7 + 4 + ints.itemsize * 3
    assert len(outbox.buffers) == 5


def test_take_hands_over_the_buffers_in_order_and_empties_the_outbox(outbox: Any) -> None:
    outbox.add(b"one")
    outbox.add(b"two")
    buffers = outbox.buffers
    assert outbox.take() is buffers and buffers == [b"one", b"two"]
    assert outbox.buffers == [] and outbox.buffered == 0
    assert outbox.take() == []


def test_a_new_outbox_is_empty_at_version_zero(outbox: Any) -> None:
    assert (outbox.buffers, outbox.buffered, outbox.version) == ([], 0, 0)


def test_a_non_buffer_is_refused_and_leaves_the_count_alone(outbox: Any) -> None:
    with pytest.raises(TypeError):
        outbox.add("text")
    assert outbox.buffered == 0


def test_the_protocol_uses_the_compiled_outbox_when_the_extension_is_used() -> None:
    from wsfast import protocol

    compiled = kernels.IMPLEMENTATION == "cython" and importlib.util.find_spec("wsfast._outbox_c") is not None
    assert (protocol.Outbox is not _outbox_py.Outbox) is compiled


# --- the version: it moves when can_send_prebuilt() may change, and only then ----------


def version(conn: Connection) -> int:
    return int(conn._outbox.version)


def test_whole_messages_pings_and_their_output_leave_the_version_alone() -> None:
    server = Connection(Role.SERVER)
    before = version(server)
    server.send_text("hello")
    server.send_binary(b"\x00" * 1000)
    server.send_ping(b"p")
    server.receive_data(peer_frame(server, OP_PING, b"ping"))  # answered with a pong
    assert server.buffered_amount > 0
    server.data_to_send()
    assert version(server) == before and server.can_send_prebuilt()


def test_a_fragmented_send_moves_the_version_when_it_starts_and_when_it_ends() -> None:
    server = Connection(Role.SERVER)
    start = version(server)
    server.send_text("first ", fin=False)
    started = version(server)
    assert started != start and not server.can_send_prebuilt()
    server.send_text("middle ", fin=False)
    assert version(server) == started
    server.send_text("last")
    assert version(server) != started and server.can_send_prebuilt()


def test_every_change_of_phase_moves_the_version() -> None:
    server = Connection(Role.SERVER)
    opened = version(server)
    server.close()
    assert version(server) != opened and not server.can_send_prebuilt()
    closing = version(server)
    server.receive_data(peer_frame(server, OP_CLOSE, Close(1000, "").serialize()))
    assert version(server) != closing


def test_an_opening_handshake_and_compression_move_the_version() -> None:
    _, plain = open_pair()
    assert version(plain) > 0 and plain.can_send_prebuilt()
    _, compressing = open_pair(extensions=[PerMessageDeflate()])
    assert version(compressing) > version(plain) and not compressing.can_send_prebuilt()
