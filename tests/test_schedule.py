from __future__ import annotations

import pytest

from sysstream.sansio._schedule import TickSchedule


def test_deadlines_sit_on_the_grid_whatever_the_work_took() -> None:
    schedule = TickSchedule(1.0, start=100.0)
    assert schedule.advance(100.0) == 101.0
    assert schedule.advance(101.3) == 102.0  # 0.3 s of work does not push the grid
    assert schedule.advance(102.9) == 103.0
    assert schedule.tick == 3


def test_missed_ticks_are_skipped_not_replayed() -> None:
    schedule = TickSchedule(1.0, start=0.0)
    schedule.advance(0.0)
    assert schedule.advance(5.5) == 6.0  # suspended for 4.5 s
    assert schedule.tick == 6


def test_a_timer_firing_early_does_not_repeat_a_tick() -> None:
    schedule = TickSchedule(0.5, start=0.0)
    assert schedule.advance(0.0) == 0.5
    assert schedule.advance(0.4999) == 1.0


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="expected a positive interval, got 0"):
        TickSchedule(0, start=0.0)
