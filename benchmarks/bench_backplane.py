"""One message from publish to a subscriber's receipt: same node, and across nodes on Redis.

Both groups run two servers in threads of this process on one redis-server
(started here); the subscriber is a blocking client. ``benchmarks/backplane.py``
measures throughput and latency percentiles with separate processes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from backplane import redis_server  # benchmarks/ is on sys.path (rootdir-relative, no package)

import wsfast
from wsfast.server import Server, ServerConnection

PAYLOAD = b"x" * 64
REQUIRE_PEERS = os.environ.get("WSFAST_REQUIRE_PEERS") == "1"


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    if shutil.which("redis-server") is None:
        if REQUIRE_PEERS:
            pytest.fail("redis-server is required (WSFAST_REQUIRE_PEERS=1)")
        pytest.skip("redis-server is not installed")
    with redis_server() as (url, _):
        yield url


@contextlib.contextmanager
def subscribed_server(backplane: str | None) -> Iterator[tuple[Server, Any]]:
    """A server in a thread with one client subscribed to ``"t"``."""
    server = Server(port=0, backplane=backplane, ping_interval=None)
    opened = threading.Event()

    @server.on_open
    def subscribe(ws: ServerConnection) -> None:
        ws.subscribe("t")
        opened.set()

    thread = server.start()
    client = wsfast.connect(f"ws://127.0.0.1:{server.port}/")
    try:
        assert opened.wait(10)
        yield server, client
    finally:
        client.close()
        server.shutdown(timeout=1)
        thread.join(10)


def _round_trip(publisher: Server, client: Any) -> None:
    publisher.publish("t", PAYLOAD)  # thread-safe
    assert client.recv(timeout=10) == PAYLOAD


@pytest.mark.benchmark(group="backplane: publish -> receipt")
@pytest.mark.parametrize("setup", ["same node, no backplane", "same node, Redis", "other node, Redis"])
def bench_publish_to_receipt(benchmark: Any, redis_url: str, setup: str) -> None:
    """One 64-byte message from ``publish()`` to the subscriber's ``recv()``."""
    with contextlib.ExitStack() as stack:
        backplane = None if setup.endswith("no backplane") else redis_url
        subscriber_node, client = stack.enter_context(subscribed_server(backplane))
        publisher = subscriber_node
        if setup.startswith("other node"):
            publisher = Server(port=0, backplane=redis_url, ping_interval=None)
            thread = publisher.start()
            stack.callback(thread.join, 10)
            stack.callback(publisher.shutdown, 1)
        _round_trip(publisher, client)  # warm: the subscription is in place on Redis
        benchmark.pedantic(_round_trip, args=(publisher, client), rounds=300, warmup_rounds=20)
