"""Scaling out with real parts: ``wsfast serve --backplane`` nodes (separate
processes, started as the scaling guide's systemd unit starts them), one
redis-server, nginx in front (the guide's config); nodes killed, Redis restarted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wsfast
from tests.components import EXAMPLES, Node, Redis, nginx, redis_server, wsfast_node
from tests.servers import wait_until
from tests.test_page_chromium import chromium  # noqa: F401 - the fixture
from tests.timeouts import TIMEOUT
from wsfast.exceptions import ConnectionClosed

_FEED = struct.Struct(">Q16xQ")  # offset at 0, epoch at 24 (wsfast.backplane.feed.stamp_feed)


class FeedClient:
    """A feed subscriber that records the node it landed on and each position."""

    def __init__(self, url: str, since: tuple[int, int] | None = None) -> None:
        query = f"?since={since[0]}:{since[1]}" if since else ""
        self.connection = wsfast.connect(url + query, open_timeout=TIMEOUT)
        hello = json.loads(self.connection.recv(timeout=TIMEOUT))
        self.node: str = hello["node"]
        self.positions: list[tuple[int, int]] = []
        self.notices: list[dict[str, Any]] = []

    def receive(self, count: int) -> list[tuple[int, int]]:
        """The next ``count`` feed positions, as ``(epoch, offset)``; notices aside."""
        got: list[tuple[int, int]] = []
        while len(got) < count:
            message = self.connection.recv(timeout=TIMEOUT)
            if isinstance(message, str):
                self.notices.append(json.loads(message))
                continue
            offset, epoch = _FEED.unpack_from(message)
            got.append((epoch, offset))
        self.positions += got
        return got

    def receive_until_closed(self) -> None:
        with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
            while True:
                self.receive(1)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()


def receive_through(*clients: FeedClient) -> tuple[int, int]:
    """Have every client receive up to a position all of them get; return it."""
    for client in clients:
        client.receive(10)
    target = max(client.positions[-1] for client in clients)
    target = (target[0], target[1] + 10)
    for client in clients:
        while client.positions[-1] < target:
            client.receive(1)
    return target


def consecutive(positions: list[tuple[int, int]]) -> bool:
    return all(b == (a[0], a[1] + 1) for a, b in zip(positions, positions[1:], strict=False))


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    with redis_server(tmp_path / "redis") as server:
        yield server


@contextlib.contextmanager
def cluster(tmp_path: Path, redis_url: str, count: int) -> Iterator[tuple[list[Node], int]]:
    with contextlib.ExitStack() as stack:
        nodes = [stack.enter_context(wsfast_node(tmp_path, redis_url, "--rate", "50")) for _ in range(count)]
        proxy = stack.enter_context(nginx(tmp_path / "nginx", [node.port for node in nodes]))
        yield nodes, proxy


def log_of(node: Node) -> str:
    return node.log.read_text(errors="replace")


def test_two_nodes_in_separate_processes_serve_one_feed(tmp_path: Path, redis: Redis) -> None:
    with contextlib.ExitStack() as stack:
        a, b = (stack.enter_context(wsfast_node(tmp_path, redis.url, "--rate", "50")) for _ in range(2))
        on_a, on_b = FeedClient(a.url()), FeedClient(b.url())
        assert on_a.node != on_b.node
        assert receive_through(on_a, on_b) in set(on_a.positions) & set(on_b.positions)  # one feed
        assert consecutive(on_a.positions) and consecutive(on_b.positions)
        producer = redis.client().get("wsfast:feed:producer").decode()  # type: ignore[attr-defined]
        assert producer in (on_a.node, on_b.node)  # one node produces, the other relays
        on_a.close()
        on_b.close()


def test_through_nginx_clients_land_on_three_nodes_and_all_receive_the_feed(tmp_path: Path, redis: Redis) -> None:
    with cluster(tmp_path, redis.url, 3) as (nodes, proxy):
        clients = [FeedClient(f"ws://127.0.0.1:{proxy}/feed") for _ in range(6)]
        assert len({client.node for client in clients}) == 3  # nginx spread them over the nodes
        common = receive_through(*clients)
        assert all(common in client.positions and consecutive(client.positions) for client in clients)
        assert sum("produces the feed" in log_of(node) for node in nodes) == 1  # the others relay it
        for client in clients:
            client.close()


def test_killed_node_clients_come_back_through_nginx_and_miss_nothing(tmp_path: Path, redis: Redis) -> None:
    with cluster(tmp_path, redis.url, 3) as (nodes, proxy):
        by_node: dict[str, FeedClient] = {}
        while len(by_node) < 3:
            client = FeedClient(f"ws://127.0.0.1:{proxy}/feed")
            by_node.setdefault(client.node, client)
        producer = redis.client().get("wsfast:feed:producer").decode()  # type: ignore[attr-defined]
        victim_name = next(name for name in by_node if name != producer)  # node B: a relay
        victim = by_node[victim_name]
        victim.receive(10)
        pid = int(victim_name.split("-")[-2])  # a node's name: host-PID-suffix
        process = next(node.process for node in nodes if node.process.pid == pid)
        os.kill(pid, signal.SIGKILL)
        process.wait(TIMEOUT)
        victim.receive_until_closed()
        last = victim.positions[-1]
        time.sleep(1.0)  # 50 messages are published meanwhile
        back = FeedClient(f"ws://127.0.0.1:{proxy}/feed", since=last)
        assert back.node != victim_name
        positions = back.receive(100)
        assert positions[0] == (last[0], last[1] + 1) and consecutive(positions), "no gap, no duplicate"
        recovery = back.notices[0] if back.notices else json.loads("{}")
        assert recovery.get("recovered") is True and recovery["count"] >= 20, recovery
        for client in [*by_node.values(), back]:
            client.close()


def test_when_the_producer_dies_another_node_takes_over_without_a_gap(tmp_path: Path, redis: Redis) -> None:
    with contextlib.ExitStack() as stack:
        nodes = [stack.enter_context(wsfast_node(tmp_path, redis.url, "--rate", "50")) for _ in range(2)]
        clients = {client.node: client for client in (FeedClient(node.url()) for node in nodes)}
        next(iter(clients.values())).receive(10)
        producer = redis.client().get("wsfast:feed:producer").decode()  # type: ignore[attr-defined]
        relay = next(client for name, client in clients.items() if name != producer)
        relay.receive(10)
        pid = int(producer.split("-")[-2])
        os.kill(pid, signal.SIGKILL)
        next(node.process for node in nodes if node.process.pid == pid).wait(TIMEOUT)
        relay.receive(100)  # the lease passes on within 3 s: the feed goes on
        assert consecutive(relay.positions)
        assert redis.client().get("wsfast:feed:producer").decode() == relay.node  # type: ignore[attr-defined]
        for client in clients.values():
            client.close()


def test_redis_restart_nodes_reconnect_resubscribe_and_count_what_was_lost(tmp_path: Path, redis: Redis) -> None:
    with cluster(tmp_path, f"{redis.url}?outbox_limit=1000", 2) as (nodes, proxy):
        clients = [FeedClient(node.url()) for node in nodes]
        for client in clients:
            client.receive(10)
        redis.stop()
        time.sleep(1.5)  # the producer's outbox overflows meanwhile: 50 msg/s x 64 B > 1000 B
        redis.start()
        for client in clients:
            positions = client.receive(60)
            epochs = {epoch for epoch, _ in positions}
            assert len(epochs) <= 2  # the old epoch, then the new one of the empty Redis
            assert consecutive([p for p in positions if p[0] == positions[-1][0]])
        assert wait_until(lambda: all("resubscribed to 1 topics" in log_of(node) for node in nodes))
        logs = "".join(log_of(node) for node in nodes)
        assert "lost (" in logs and "back after" in logs
        assert "outbox full" in logs and "publishes dropped" in logs
        for client in clients:
            client.close()


def test_the_page_shows_its_node_and_recovers_without_a_gap_when_its_node_dies(
    tmp_path: Path,
    redis: Redis,
    chromium: Any,  # noqa: F811 - the fixture
) -> None:
    from playwright.sync_api import expect

    with cluster(tmp_path, redis.url, 2) as (nodes, proxy):
        page = chromium.new_page()
        page.goto(f"http://127.0.0.1:{proxy}/", timeout=TIMEOUT * 1000)
        expect(page.locator("#feed-node")).to_contain_text("node ", timeout=TIMEOUT * 1000)
        first = page.inner_text("#feed-node").rpartition(" ")[2]
        page.wait_for_function("() => Number(document.getElementById('feed-count').textContent) >= 20")
        pid = int(first.split("-")[-2])
        os.kill(pid, signal.SIGKILL)
        next(node.process for node in nodes if node.process.pid == pid).wait(TIMEOUT)
        expect(page.locator("#feed-node")).not_to_contain_text(first, timeout=TIMEOUT * 1000)
        expect(page.locator("#log")).to_contain_text("feed recovered: ", timeout=TIMEOUT * 1000)
        count = int(page.inner_text("#feed-count").replace(",", ""))
        page.wait_for_function(
            "(n) => Number(document.getElementById('feed-count').textContent.replace(/,/g, '')) >= n + 50", arg=count
        )
        assert page.inner_text("#feed-missed") == "0"  # no gap in the sequence numbers
        page.close()


def test_the_scaling_guide_shows_the_deployment_files_these_tests_use() -> None:
    guide = (EXAMPLES.parent.parent / "docs" / "guides" / "scaling.md").read_text()
    for name in ("redis.sh", "nginx.conf", "wsfast@.service"):
        assert (EXAMPLES / name).read_text() in guide, f"the guide's copy of examples/scaling-out/{name} is stale"
