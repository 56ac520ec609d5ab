"""The heartbeat policy shared by the server and both clients (``wsfast.keepalive``)."""

from __future__ import annotations

import math

import pytest

from wsfast.keepalive import Keepalive


def test_no_ping_while_the_peer_spoke_within_the_interval() -> None:
    keepalive = Keepalive(10.0, 5.0, now=100.0)
    assert not keepalive.ping_due(109.9)
    keepalive.last_seen = 109.0
    assert not keepalive.ping_due(118.9)


def test_a_ping_is_due_once_after_the_interval_of_silence() -> None:
    keepalive = Keepalive(10.0, 5.0, now=100.0)
    assert keepalive.ping_due(110.0)
    assert keepalive.ping_sent_at == 110.0
    assert not keepalive.ping_due(111.0)  # one ping waits for its answer at a time


def test_an_unanswered_ping_expires_after_the_timeout() -> None:
    keepalive = Keepalive(10.0, 5.0, now=100.0)
    assert keepalive.ping_due(110.0)
    assert not keepalive.expired(115.0)
    assert keepalive.expired(115.1)


def test_any_data_after_the_ping_answers_it() -> None:
    keepalive = Keepalive(10.0, 5.0, now=100.0)
    assert keepalive.ping_due(110.0)
    keepalive.last_seen = 112.0
    assert not keepalive.expired(200.0)
    assert not keepalive.ping_due(121.9)
    assert keepalive.ping_due(122.0)


def test_data_that_came_before_the_ping_does_not_answer_it() -> None:
    keepalive = Keepalive(10.0, 5.0, now=100.0)
    keepalive.last_seen = 100.0
    assert keepalive.ping_due(110.0)
    keepalive.last_seen = 110.0  # the same loop iteration as the ping
    assert keepalive.expired(115.1)


def test_next_check_is_the_end_of_the_silence_then_of_the_wait_for_the_answer() -> None:
    keepalive = Keepalive(10.0, 5.0, now=100.0)
    assert keepalive.next_check() == 110.0
    assert keepalive.ping_due(110.0)
    assert keepalive.next_check() == 115.0
    keepalive.last_seen = 113.0
    assert keepalive.next_check() == 123.0


def test_without_an_interval_it_never_pings_nor_expires() -> None:
    keepalive = Keepalive(None, 5.0, now=0.0)
    assert not keepalive.ping_due(1e9)
    assert not keepalive.expired(1e9)
    assert keepalive.next_check() is None


@pytest.mark.parametrize("interval", [0, -1.0, math.inf, math.nan])
def test_a_bad_interval_is_refused_naming_it(interval: float) -> None:
    with pytest.raises(ValueError, match=rf"ping_interval .* not {interval!r}"):
        Keepalive(interval, 5.0, now=0.0)


@pytest.mark.parametrize("timeout", [0, -1.0, math.inf])
def test_a_bad_timeout_is_refused_naming_it(timeout: float) -> None:
    with pytest.raises(ValueError, match=rf"ping_timeout .* not {timeout!r}"):
        Keepalive(1.0, timeout, now=0.0)
