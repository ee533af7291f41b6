from __future__ import annotations

import pytest

from sysstream.sansio._rates import CounterRate, CpuUsage, RateTable, cpu_busy_percent, round_rate


def times(user: float, idle: float, iowait: float = 0.0, guest: float = 0.0) -> dict[str, float]:
    return {"user": user, "system": 0.0, "idle": idle, "iowait": iowait, "guest": guest}


def test_busy_percent_excludes_idle_and_iowait() -> None:
    assert cpu_busy_percent(times(0, 0), times(30, 50, iowait=20)) == 30.0


def test_guest_time_is_not_counted_twice() -> None:
    # Linux counts guest time inside user time too.
    assert cpu_busy_percent(times(0, 0), times(50, 50, guest=50)) == 50.0


def test_busy_percent_stays_within_0_and_100_when_idle_counters_misbehave() -> None:
    # iowait can go backwards on Linux (proc(5)): idle fell by 10 while 10 s passed, so
    # unclamped "busy" would be 20 of 10 s (200 %); idle rising more than the time that
    # passed would be below 0 %.
    before = {"user": 0.0, "idle": 0.0, "iowait": 50.0}
    assert cpu_busy_percent(before, {"user": 20.0, "idle": 0.0, "iowait": 40.0}) == 100.0
    assert cpu_busy_percent({"user": 10.0, "idle": 0.0}, {"user": 5.0, "idle": 20.0}) == 0.0


def test_no_elapsed_time_gives_no_figure() -> None:
    assert cpu_busy_percent(times(10, 10), times(10, 10)) is None


def test_primed_usage_reports_from_the_first_update() -> None:
    usage = CpuUsage(times(0, 0))
    assert usage.update(times(25, 75)) == 25.0
    assert CpuUsage().update(times(25, 75)) is None


def test_counter_rate_first_reading_has_no_rate() -> None:
    rate = CounterRate()
    assert rate.update(1000, now=10.0) is None
    assert rate.update(3000, now=12.0) == 1000.0


def test_counter_rate_handles_32_bit_wrap() -> None:
    rate = CounterRate()
    rate.update(2**32 - 100, now=0.0)
    assert rate.update(100, now=1.0) == 200.0


def test_counter_rate_handles_64_bit_wrap() -> None:
    rate = CounterRate()
    rate.update(2**64 - 10, now=0.0)
    assert rate.update(30, now=2.0) == 20.0


def test_counter_reset_restarts_the_baseline() -> None:
    rate = CounterRate()
    rate.update(2_000_000_000, now=0.0)
    assert rate.update(5, now=1.0) is None  # far below: a reset, not a wrap
    assert rate.update(105, now=2.0) == 100.0


def test_time_not_moving_forward_gives_no_rate() -> None:
    rate = CounterRate()
    rate.update(1, now=5.0)
    assert rate.update(2, now=5.0) is None


def test_rate_table_forgets_vanished_devices() -> None:
    table = RateTable()
    table.update("eth0", {"rx": 100}, now=0.0)
    table.update("eth1", {"rx": 100}, now=0.0)
    assert table.update("eth0", {"rx": 300}, now=1.0) == {"rx": 200.0}
    table.forget_except({"eth0"})
    # eth1 came back (re-created, counters from zero): a fresh baseline, not a bogus delta,
    # even when its new counter is above the old one (no drop for wrap detection to see).
    assert table.update("eth1", {"rx": 500}, now=2.0) == {"rx": None}
    assert table.update("eth1", {"rx": 600}, now=3.0) == {"rx": 100.0}
    # eth0 was kept: its baseline (300 at 1.0) still gives a rate.
    assert table.update("eth0", {"rx": 400}, now=2.0) == {"rx": 100.0}


@pytest.mark.parametrize(("value", "expected"), [(1.26, 1.3), (None, None), (float("nan"), None)])
def test_round_rate(value: float | None, expected: float | None) -> None:
    assert round_rate(value) == expected
