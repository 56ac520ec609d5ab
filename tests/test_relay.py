"""The relay's ordering rules, with a backplane whose replies the test hands out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wsfast.backplane import HistoryOptions, Message, Position, Recovery, Relay, Replay


class ScriptedBackplane:
    """Records what the relay asks; replays are answered when the test says."""

    node = "here"

    def __init__(self) -> None:
        self.subscribed: set[str] = set()
        self.replays: list[tuple[Position, Callable[[Replay], None]]] = []
        self.deliver: Callable[[Message], None] = lambda message: None
        self.resumed: Callable[[], None] = lambda: None

    def attach(self, loop: Any, deliver: Callable[[Message], None], resumed: Callable[[], None]) -> None:
        self.deliver, self.resumed = deliver, resumed

    def subscribe(self, topic: str) -> None:
        self.subscribed.add(topic)

    def unsubscribe(self, topic: str) -> None:
        self.subscribed.discard(topic)

    def publish(self, message: Message, history: HistoryOptions | None) -> None:
        pass

    def replay(self, topic: str, since: Position, callback: Callable[[Replay], None]) -> None:
        self.replays.append((since, callback))

    def close(self) -> None:
        pass


class Client:
    """Stands for a ServerConnection: keeps what it is sent."""

    ready_state = 1

    def __init__(self) -> None:
        self.received: list[Any] = []

    def send(self, data: Any) -> None:
        self.received.append(data)


def relay_with_history() -> tuple[Relay, ScriptedBackplane, dict[str, set[Any]]]:
    backplane = ScriptedBackplane()
    subscribers: dict[str, set[Any]] = {}

    def fan_out(receivers: list[Any], data: Any) -> int:
        for receiver in receivers:
            receiver.send(data)
        return len(receivers)

    relay = Relay(None, subscribers, fan_out, backplane)  # type: ignore[arg-type]
    relay.histories["t"] = (HistoryOptions(100), None)
    return relay, backplane, subscribers


def message(offset: int, epoch: str = "e") -> Message:
    return Message("t", True, str(offset).encode(), Position(epoch, offset))


def test_what_is_published_during_a_recovery_is_sent_once_after_the_replay() -> None:
    relay, backplane, subscribers = relay_with_history()
    client = Client()
    recoveries: list[Recovery] = []
    relay.subscribe(client, "t", Position("e", 2), recoveries.append)  # type: ignore[arg-type]
    assert backplane.subscribed == {"t"} and client not in subscribers.get("t", ())
    for offset in (3, 4, 5, 6):
        backplane.deliver(message(offset))  # live, while the replay is on its way
    since, answer = backplane.replays[0]
    answer(Replay([message(3), message(4), message(5)], Position("e", 5)))
    assert client.received == ["3", "4", "5", "6"]
    assert recoveries == [Recovery("t", since, True, 3)]
    backplane.deliver(message(7))
    assert client.received[-1] == "7" and client in subscribers["t"]


def test_what_the_replay_gave_is_not_sent_again_when_the_node_receives_it_live() -> None:
    """A node's subscriber connection can lag behind the history (a busy node, a flood):
    the replay then holds messages that the node receives live only afterwards."""
    relay, backplane, subscribers = relay_with_history()
    watcher = Client()
    relay.subscribe(watcher, "t", None, None)  # type: ignore[arg-type]
    backplane.deliver(message(1))
    client = Client()
    relay.subscribe(client, "t", Position("e", 1), None)  # type: ignore[arg-type]
    _, answer = backplane.replays[0]
    answer(Replay([message(2), message(3)], Position("e", 3)))  # ahead of the node's live stream
    for offset in (2, 3, 4):
        backplane.deliver(message(offset))
    assert client.received == ["2", "3", "4"]
    assert watcher.received == ["1", "2", "3", "4"]
    assert client in subscribers["t"]  # live from now on, framed with the others
    backplane.deliver(message(5))
    assert client.received[-1] == watcher.received[-1] == "5"


def test_what_is_published_before_the_nodes_subscription_takes_effect_comes_from_the_history() -> None:
    """The node subscribes on Redis as the client recovers: what another node publishes
    between the replay and the subscription never comes live, and is fetched."""
    relay, backplane, subscribers = relay_with_history()
    client = Client()
    relay.subscribe(client, "t", Position("e", 1), None)  # type: ignore[arg-type]
    _, answer = backplane.replays[0]
    answer(Replay([message(2)], Position("e", 2)))
    backplane.deliver(message(5))  # 3 and 4 were published before the subscription took effect
    assert client.received == ["2"]  # 5 waits for them
    since, answer = backplane.replays[1]
    assert since == Position("e", 2)
    answer(Replay([message(3), message(4), message(5)], Position("e", 5)))
    backplane.deliver(message(6))
    assert client.received == ["2", "3", "4", "5", "6"] and client in subscribers["t"]


def test_a_node_drops_duplicates_and_fills_a_gap_before_going_on() -> None:
    relay, backplane, subscribers = relay_with_history()
    client = Client()
    relay.subscribe(client, "t", None, None)  # type: ignore[arg-type]
    for offset in (1, 2, 2, 1):
        backplane.deliver(message(offset))
    assert client.received == ["1", "2"]
    backplane.deliver(message(5))  # 3 and 4 were lost on the way
    backplane.deliver(message(6))
    assert client.received == ["1", "2"]  # held until the gap is filled
    since, answer = backplane.replays[0]
    assert since == Position("e", 2)
    answer(Replay([message(3), message(4), message(5), message(6)], Position("e", 6)))
    assert client.received == ["1", "2", "3", "4", "5", "6"]


def test_after_a_reconnection_a_node_asks_for_what_it_missed() -> None:
    relay, backplane, _ = relay_with_history()
    client = Client()
    relay.subscribe(client, "t", None, None)  # type: ignore[arg-type]
    backplane.deliver(message(1))
    backplane.resumed()
    since, answer = backplane.replays[0]
    assert since == Position("e", 1)
    answer(Replay([message(2)], Position("e", 2)))
    backplane.deliver(message(2))  # the live copy, after the replay: a duplicate
    assert client.received == ["1", "2"]


def test_a_new_epoch_starts_over() -> None:
    relay, backplane, _ = relay_with_history()
    client = Client()
    relay.subscribe(client, "t", None, None)  # type: ignore[arg-type]
    backplane.deliver(message(7, "old"))
    backplane.deliver(message(1, "new"))
    assert client.received == ["7", "1"] and not backplane.replays


def test_the_last_local_subscriber_leaving_ends_the_subscription() -> None:
    relay, backplane, subscribers = relay_with_history()
    first, second = Client(), Client()
    relay.subscribe(first, "t", None, None)  # type: ignore[arg-type]
    relay.subscribe(second, "t", Position("e", 0), None)  # type: ignore[arg-type]
    subscribers["t"].discard(first)
    relay.unsubscribed(first, "t")  # type: ignore[arg-type]
    assert backplane.subscribed == {"t"}  # the recovering one still counts
    relay.unsubscribed(second, "t")  # type: ignore[arg-type]
    assert backplane.subscribed == set()


def test_a_message_from_another_node_is_framed_once_for_all_local_subscribers() -> None:
    backplane = ScriptedBackplane()
    clients = [Client() for _ in range(3)]
    calls: list[tuple[int, Any]] = []
    relay = Relay(None, {}, lambda receivers, data: calls.append((len(receivers), data)) or 0, backplane)  # type: ignore[arg-type, func-returns-value]
    for client in clients:
        relay.subscribe(client, "news", None, None)  # type: ignore[arg-type]
    backplane.deliver(Message("news", False, b"x", origin="there"))
    backplane.deliver(Message("news", False, b"mine", origin="here"))  # this node's own: delivered when published
    assert calls == [(3, b"x")]
