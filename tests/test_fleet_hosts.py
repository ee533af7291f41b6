"""Host presence as a hub sees it: online, offline after 3 missed intervals, back again."""

from __future__ import annotations

import pytest

from sysstream._sample import Sample
from sysstream.sansio._hosts import HostRecord, HostStatus


def sample(timestamp: float, **values: float) -> Sample:
    return Sample(tick=1, timestamp=timestamp, values=dict(values))


def test_a_host_never_heard_from_is_offline() -> None:
    record = HostRecord("web1", 1.0)
    assert record.status(1000.0) is HostStatus.OFFLINE
    assert record.silence(1000.0) == "host web1 has not published yet"
    assert record.summary(1000.0) == {
        "id": "web1",
        "status": "offline",
        "last_seen": None,
        "interval": 1.0,
        "cpu": None,
        "memory": None,
        "disk": None,
    }


def test_offline_after_three_missed_intervals_and_online_with_the_next_tick() -> None:
    record = HostRecord("web1", 1.0)
    assert record.observe(sample(100.0, cpu=5.0), 2.0, seen_at=100.1)
    assert record.interval == 2.0
    assert record.status(100.1 + 3 * 2.0) is HostStatus.ONLINE  # third tick due, not late
    assert record.status(100.1 + 3.5 * 2.0 + 0.01) is HostStatus.OFFLINE
    assert record.silence(110.0) == "host web1 offline: no tick for 10 s"
    assert record.observe(sample(110.0, cpu=6.0), 2.0, seen_at=110.1)
    assert record.status(110.2) is HostStatus.ONLINE and record.silence(110.2) is None


def test_transitions_are_reported_once() -> None:
    record = HostRecord("web1", 1.0)
    record.observe(sample(100.0), 1.0, seen_at=100.0)
    assert record.transition(100.5) is HostStatus.ONLINE
    assert record.transition(101.0) is None
    assert record.transition(104.0) is HostStatus.OFFLINE
    assert record.transition(105.0) is None


def test_a_tick_not_newer_than_the_latest_is_a_duplicate() -> None:
    record = HostRecord("web1", 1.0)
    assert record.observe(sample(100.0, cpu=1.0), 1.0, seen_at=100.0)
    assert not record.observe(sample(100.0, cpu=2.0), 1.0, seen_at=101.0)
    assert not record.observe(sample(99.0, cpu=3.0), 1.0, seen_at=101.0)
    assert record.latest is not None and record.latest.values == {"cpu": 1.0}
    assert record.last_seen == 100.0


def test_summary_carries_the_latest_default_fields() -> None:
    record = HostRecord("web1", 1.0)
    record.observe(
        sample(1762777845.0, cpu=25.5, memory=60.2, disk=45.3, load=1.0), 1.0, 1762777845.5
    )
    assert record.summary(1762777846.0) == {
        "id": "web1",
        "status": "online",
        "last_seen": "2025-11-10T12:30:45.500000Z",
        "interval": 1.0,
        "cpu": 25.5,
        "memory": 60.2,
        "disk": 45.3,
    }


def test_a_non_positive_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="expected a positive interval, got 0"):
        HostRecord("web1", 0)


def test_a_listed_host_without_a_tick_is_offline_whatever_its_last_seen() -> None:
    # A name in sysstream:hosts (anyone may add one) scored in the future once read as
    # online: only a tick makes a host online.
    record = HostRecord("fake0", 1.0, last_seen=1200.0)
    assert record.status(1000.0) is HostStatus.OFFLINE
    assert record.silence(1000.0) == "host fake0 has not published yet"
