"""Topic history and recovery without a backplane (in memory): the same API as on Redis."""

from __future__ import annotations

import time

import pytest

import wsfast
from tests.servers import Recorder, in_loop, running_server, url, wait_until
from tests.timeouts import TIMEOUT
from wsfast.backplane import HistoryOptions, Message, Position, Recovery
from wsfast.backplane.memory import MemoryBackplane, replay_after
from wsfast.server import Server, ServerConnection


def test_position_round_trips_through_its_text() -> None:
    assert Position.parse("1764771234123456:42") == Position("1764771234123456", 42)
    assert str(Position("e", 7)) == "e:7"


@pytest.mark.parametrize("text", ["", "42", "e:", ":1", "e:-1", "e:x"])
def test_a_bad_position_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text).replace("\\", "\\\\")):
        Position.parse(text)


@pytest.mark.parametrize(("size", "ttl"), [(0, None), (1.5, None), (10, 0), (10, -1.0), (10, float("inf"))])
def test_history_options_are_checked(size: int, ttl: float | None) -> None:
    with pytest.raises(ValueError, match="history"):
        HistoryOptions(size, ttl)


def kept(epoch: str, offsets: range) -> list[Message]:
    return [Message("t", False, b"%d" % o, Position(epoch, o)) for o in offsets]


def test_replay_after_gives_exactly_what_follows() -> None:
    replay = replay_after(Position("e", 3), "e", 6, kept("e", range(4, 7)))
    assert [m.payload for m in replay.messages] == [b"4", b"5", b"6"]
    assert replay.error == "" and replay.position == Position("e", 6)
    assert replay_after(Position("e", 6), "e", 6, []).messages == []


@pytest.mark.parametrize(
    ("since", "epoch", "reason"),
    [
        (Position("old", 3), "e", "the epoch changed"),
        (Position("e", 9), "e", "ahead of the history"),
        (Position("e", 1), "e", "fell out of the history window"),
        (Position("e", 3), None, "no history"),
    ],
)
def test_replay_after_says_why_recovery_is_impossible(since: Position, epoch: str | None, reason: str) -> None:
    replay = replay_after(since, epoch, 6, kept("e", range(4, 7)) if epoch else [])
    assert reason in replay.error and replay.messages == []


def test_memory_history_keeps_the_last_n_and_forgets_after_ttl() -> None:
    delivered: list[Message] = []
    backplane = MemoryBackplane()
    backplane.attach(None, delivered.append, lambda: None)  # type: ignore[arg-type]
    options = HistoryOptions(3, ttl=0.2)
    for index in range(5):
        backplane.publish(Message("t", False, b"%d" % index), options)
    assert [m.position.offset for m in delivered if m.position] == [1, 2, 3, 4, 5]
    epoch = delivered[0].position.epoch  # type: ignore[union-attr]
    replays = []
    backplane.replay("t", Position(epoch, 2), replays.append)
    backplane.replay("t", Position(epoch, 1), replays.append)
    time.sleep(0.3)
    backplane.replay("t", Position(epoch, 4), replays.append)
    assert [m.payload for m in replays[0].messages] == [b"2", b"3", b"4"]
    assert "fell out of the history window (3..5 kept)" in replays[1].error
    assert "no history" in replays[2].error


def subscribed(recorder: Recorder, server: Server, topic: str, **kwargs: object) -> tuple[object, ServerConnection]:
    client = wsfast.connect(url(server))
    ws = recorder.next_open()
    in_loop(server, lambda: ws.subscribe(topic, **kwargs))
    return client, ws


def test_a_client_that_comes_back_gets_what_it_missed_then_live() -> None:
    recorder = Recorder(echo=False)
    with running_server(recorder) as server:
        in_loop(server, server.enable_history, "t", 100)
        first, _ = subscribed(recorder, server, "t")
        for index in range(5):
            in_loop(server, server.publish, "t", f"m{index}")
        assert [first.recv(timeout=TIMEOUT) for _ in range(5)] == [f"m{index}" for index in range(5)]  # type: ignore[attr-defined]
        position = in_loop(server, lambda: server._relay._orders["t"].last)
        recoveries: list[Recovery] = []
        since = Position(position.epoch, 2)
        second, _ = subscribed(recorder, server, "t", since=since, on_recovery=recoveries.append)
        in_loop(server, server.publish, "t", "live")
        assert [second.recv(timeout=TIMEOUT) for _ in range(4)] == ["m2", "m3", "m4", "live"]  # type: ignore[attr-defined]
        assert recoveries == [Recovery("t", since, True, 3)]
        for client in (first, second):
            client.close()  # type: ignore[attr-defined]


def test_recovery_says_plainly_when_it_is_impossible() -> None:
    recorder = Recorder(echo=False)
    with running_server(recorder) as server:
        in_loop(server, server.enable_history, "t", 2)
        for index in range(5):
            in_loop(server, server.publish, "t", f"m{index}")
        epoch = in_loop(server, lambda: server._relay.backplane._histories["t"].epoch)
        recoveries: list[Recovery] = []
        client, _ = subscribed(recorder, server, "t", since=Position(epoch, 1), on_recovery=recoveries.append)
        assert wait_until(lambda: bool(recoveries))
        assert not recoveries[0].recovered and "fell out of the history window (4..5 kept)" in recoveries[0].reason
        in_loop(server, server.publish, "t", "live")
        assert client.recv(timeout=TIMEOUT) == "live"  # type: ignore[attr-defined]  # subscribed all the same
        client.close()  # type: ignore[attr-defined]


def test_a_stamp_tells_clients_each_position() -> None:
    recorder = Recorder(echo=False)
    with running_server(recorder) as server:
        in_loop(server, lambda: server.enable_history("t", 10, stamp=lambda at, data: f"{at.offset} {data}"))
        client, _ = subscribed(recorder, server, "t")
        in_loop(server, server.publish, "t", "a")
        in_loop(server, server.publish, "t", "b")
        assert [client.recv(timeout=TIMEOUT), client.recv(timeout=TIMEOUT)] == ["1 a", "2 b"]  # type: ignore[attr-defined]
        client.close()  # type: ignore[attr-defined]


def test_topics_without_history_keep_the_direct_path() -> None:
    with running_server(Recorder()) as server:
        assert server.backplane is None
        assert not server._relay.wants("t")
        in_loop(server, server.enable_history, "h", 1)
        assert server._relay.wants("h")
