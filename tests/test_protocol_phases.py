"""Connection's phases: what every input does in every phase, for both roles.

``wsfast.protocol`` keeps where a connection is in one private ``_Phase``,
changed only through ``Connection._enter``, which checks each change against
``_TRANSITIONS``. The grids below are the specification: a row per input
(from the peer, or a call), a column per phase, and in each cell the phase
the connection is in afterwards, or the exception the call raises (the
phase then stays). ``-`` marks a phase that role never reaches.

Each phase is reached through public calls only (``REACH``), and each phase
reads the same to the outside whatever the role (``VIEW``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from wsfast.exceptions import ConnectionClosed
from wsfast.frames import OP_CLOSE, OP_TEXT
from wsfast.handshake import ClientHandshake, Response, ServerHandshake
from wsfast.protocol import _TRANSITIONS, Connection, Role, State, _Phase

from .helpers import close_payload, peer_frame, sent_bytes, sent_frames

SERVER = """
input              HANDSHAKE     HTTP_REQUEST  OPEN          CLOSE_SENT    FAILING       AWAITING_EOF  CLOSED
handshake          OPEN          HTTP_REQUEST  CLOSED        CLOSED        FAILING       -             CLOSED
http_get           HTTP_REQUEST  HTTP_REQUEST  CLOSED        CLOSED        FAILING       -             CLOSED
garbage            CLOSED        HTTP_REQUEST  CLOSED        CLOSED        FAILING       -             CLOSED
message            CLOSED        HTTP_REQUEST  OPEN          CLOSE_SENT    FAILING       -             CLOSED
close_frame        CLOSED        HTTP_REQUEST  CLOSED        CLOSED        FAILING       -             CLOSED
violation          CLOSED        HTTP_REQUEST  CLOSED        CLOSED        FAILING       -             CLOSED
message+violation  CLOSED        HTTP_REQUEST  FAILING       CLOSED        FAILING       -             CLOSED
close()            Closed!       Closed!       CLOSE_SENT    CLOSE_SENT    FAILING       -             CLOSED
send_text()        Closed!       Closed!       OPEN          Closed!       FAILING       -             Closed!
send_response()    Runtime!      CLOSED        Runtime!      Runtime!      Runtime!      -             Runtime!
data_to_send()     HANDSHAKE     HTTP_REQUEST  OPEN          CLOSE_SENT    CLOSED        -             CLOSED
eof                CLOSED        CLOSED        CLOSED        CLOSED        CLOSED        -             CLOSED
"""

CLIENT = """
input              HANDSHAKE     HTTP_REQUEST  OPEN          CLOSE_SENT    FAILING       AWAITING_EOF  CLOSED
handshake          OPEN          -             CLOSED        CLOSED        FAILING       AWAITING_EOF  CLOSED
http_get           CLOSED        -             CLOSED        CLOSED        FAILING       AWAITING_EOF  CLOSED
garbage            CLOSED        -             CLOSED        CLOSED        FAILING       AWAITING_EOF  CLOSED
message            HANDSHAKE     -             OPEN          CLOSE_SENT    FAILING       AWAITING_EOF  CLOSED
close_frame        HANDSHAKE     -             AWAITING_EOF  AWAITING_EOF  FAILING       AWAITING_EOF  CLOSED
violation          HANDSHAKE     -             CLOSED        CLOSED        FAILING       AWAITING_EOF  CLOSED
message+violation  HANDSHAKE     -             FAILING       CLOSED        FAILING       AWAITING_EOF  CLOSED
close()            Closed!       -             CLOSE_SENT    CLOSE_SENT    FAILING       AWAITING_EOF  CLOSED
send_text()        Closed!       -             OPEN          Closed!       FAILING       Closed!       Closed!
send_response()    Runtime!      -             Runtime!      Runtime!      Runtime!      Runtime!      Runtime!
data_to_send()     HANDSHAKE     -             OPEN          CLOSE_SENT    CLOSED        AWAITING_EOF  CLOSED
eof                CLOSED        -             CLOSED        CLOSED        CLOSED        CLOSED        CLOSED
"""

ERRORS: dict[str, type[Exception]] = {"Closed!": ConnectionClosed, "Runtime!": RuntimeError}

# What the outside sees in each phase: (state, should_close_transport).
VIEW = {
    _Phase.HANDSHAKE: (State.CONNECTING, False),
    _Phase.HTTP_REQUEST: (State.CONNECTING, False),
    _Phase.OPEN: (State.OPEN, False),
    _Phase.CLOSE_SENT: (State.CLOSING, False),
    _Phase.FAILING: (State.OPEN, True),  # until data_to_send() hands over the close frame
    _Phase.AWAITING_EOF: (State.CLOSED, False),  # a client: the server closes TCP first
    _Phase.CLOSED: (State.CLOSED, True),
}

# The inputs that lead from a new connection (HANDSHAKE) to each phase.
REACH = {
    _Phase.HANDSHAKE: [],
    _Phase.HTTP_REQUEST: ["http_get"],
    _Phase.OPEN: ["handshake"],
    _Phase.CLOSE_SENT: ["handshake", "close()"],
    _Phase.FAILING: ["handshake", "message+violation"],
    _Phase.AWAITING_EOF: ["handshake", "close_frame"],
    _Phase.CLOSED: ["handshake", "eof"],
}

Input = Callable[[Connection, bytes], object]

INPUTS: dict[str, Input] = {
    # The peer's side of the opening handshake: an upgrade request, or the 101 answering it.
    "handshake": lambda conn, handshake: conn.receive_data(handshake),
    "http_get": lambda conn, _: conn.receive_data(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    "garbage": lambda conn, _: conn.receive_data(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n"),
    "message": lambda conn, _: conn.receive_data(peer_frame(conn, OP_TEXT, b"hi")),
    "close_frame": lambda conn, _: conn.receive_data(peer_frame(conn, OP_CLOSE, close_payload(1000))),
    "violation": lambda conn, _: conn.receive_data(peer_frame(conn, 0x3)),  # a reserved opcode
    "message+violation": lambda conn, _: conn.receive_data(peer_frame(conn, OP_TEXT, b"hi") + peer_frame(conn, 0x3)),
    "close()": lambda conn, _: conn.close(),
    "send_text()": lambda conn, _: conn.send_text("hi"),
    "send_response()": lambda conn, _: conn.send_response(Response.plain(200, "ok")),
    "data_to_send()": lambda conn, _: conn.data_to_send(),
    "eof": lambda conn, _: conn.receive_eof(),
}


def parse_grid(grid: str) -> dict[tuple[_Phase, str], str]:
    """``{(phase, input): cell}`` from a grid, leaving out the ``-`` cells."""
    header, *rows = grid.strip().splitlines()
    phases = [_Phase[name] for name in header.split()[1:]]
    cells = {}
    for row in rows:
        name, *results = row.split()
        assert name in INPUTS, row
        cells.update({(phase, name): result for phase, result in zip(phases, results, strict=True) if result != "-"})
    return cells


GRIDS = {Role.SERVER: parse_grid(SERVER), Role.CLIENT: parse_grid(CLIENT)}
CASES = [(role, phase, name, cell) for role, cells in GRIDS.items() for (phase, name), cell in cells.items()]


def connection(role: Role) -> tuple[Connection, bytes]:
    """A new connection in ``role``, and its peer's side of the opening handshake."""
    client = Connection(Role.CLIENT, handshake=ClientHandshake("ws://example.com/chat"))
    server = Connection(Role.SERVER, handshake=ServerHandshake())
    request = sent_bytes(client)
    if role is Role.SERVER:
        return server, request
    server.receive_data(request)
    return client, sent_bytes(server)


def reach(role: Role, phase: _Phase) -> tuple[Connection, bytes]:
    """A connection in ``phase``, brought there by the inputs of ``REACH``."""
    conn, handshake = connection(role)
    for name in REACH[phase]:
        INPUTS[name](conn, handshake)
    assert conn._phase is phase
    return conn, handshake


@pytest.mark.parametrize(
    ("role", "phase", "name", "cell"), CASES, ids=[f"{r.value}-{p.name}-{n}" for r, p, n, _ in CASES]
)
def test_every_input_in_every_phase(role: Role, phase: _Phase, name: str, cell: str) -> None:
    conn, handshake = reach(role, phase)
    if cell in ERRORS:
        with pytest.raises(ERRORS[cell]):
            INPUTS[name](conn, handshake)
        assert conn._phase is phase
    else:
        INPUTS[name](conn, handshake)
        assert conn._phase is _Phase[cell]
    assert (conn.state, conn.should_close_transport) == VIEW[conn._phase]


def test_the_grids_walk_every_transition_of_the_table_and_no_other() -> None:
    walked = {
        (phase, _Phase[cell])
        for cells in GRIDS.values()
        for (phase, _), cell in cells.items()
        if cell not in ERRORS and _Phase[cell] is not phase
    }
    assert walked == set(_TRANSITIONS)


def test_each_role_reaches_its_phases_only() -> None:
    assert {phase for phase, _ in GRIDS[Role.SERVER]} == set(_Phase) - {_Phase.AWAITING_EOF}
    assert {phase for phase, _ in GRIDS[Role.CLIENT]} == set(_Phase) - {_Phase.HTTP_REQUEST}


@pytest.mark.parametrize("target", list(_Phase), ids=lambda phase: phase.name)
@pytest.mark.parametrize("source", list(_Phase), ids=lambda phase: phase.name)
def test_enter_refuses_what_the_table_does_not_list(source: _Phase, target: _Phase) -> None:
    conn = Connection(Role.SERVER)
    conn._phase = source
    if (source, target) in _TRANSITIONS:
        conn._enter(target)
        assert conn._phase is target
        assert (conn.state, conn.should_close_transport) == VIEW[target]
    else:
        with pytest.raises(RuntimeError, match=f"no transition from {source.name} to {target.name}$"):
            conn._enter(target)
        assert conn._phase is source


@pytest.mark.parametrize("role", list(Role), ids=lambda role: role.value)
def test_eof_while_failing_still_sends_the_close_frame_last(role: Role) -> None:
    conn = Connection(role)
    INPUTS["message+violation"](conn, b"")
    assert conn._phase is _Phase.FAILING
    conn.send_text("the reply")
    assert conn.receive_eof() == []
    frames = sent_frames(conn)
    assert [frame.opcode for frame in frames] == [OP_TEXT, OP_CLOSE]
