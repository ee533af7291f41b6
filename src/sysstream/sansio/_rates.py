"""Sampling maths with no I/O: CPU busy percent from time deltas, counter rates with wrap.

Everything here is fed plain numbers and asked for results, so the arithmetic is tested
without psutil or a clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["CounterRate", "CpuUsage", "RateTable", "cpu_busy_percent"]

# Counters in /proc are 32- or 64-bit; a drop is a wrap when the old value fits in the width.
_WIDTHS = (2**32, 2**64)


def cpu_busy_percent(before: Mapping[str, float], after: Mapping[str, float]) -> float | None:
    """Percent of CPU time that was busy between two ``cpu_times()`` readings.

    Follows psutil's own definition: busy is total minus idle and iowait; guest time is
    already counted in user time on Linux, so it is left out of the total. Returns
    ``None`` when no time passed (two readings within one clock tick).
    """
    total = _total(after) - _total(before)
    idle = _idle(after) - _idle(before)
    if total <= 0:
        return None
    busy = min(max(total - idle, 0.0), total)
    return round(busy / total * 100.0, 1)


def _total(times: Mapping[str, float]) -> float:
    return sum(times.values()) - times.get("guest", 0.0) - times.get("guest_nice", 0.0)


def _idle(times: Mapping[str, float]) -> float:
    return times.get("idle", 0.0) + times.get("iowait", 0.0)


class CpuUsage:
    """Busy percent since the previous reading; primed with a first reading so that the
    first real figure covers one full interval instead of being psutil's meaningless 0.0."""

    __slots__ = ("_previous",)

    def __init__(self, baseline: Mapping[str, float] | None = None) -> None:
        self._previous = dict(baseline) if baseline is not None else None

    def update(self, times: Mapping[str, float]) -> float | None:
        previous, self._previous = self._previous, dict(times)
        if previous is None:
            return None
        return cpu_busy_percent(previous, times)


class CounterRate:
    """Per-second rate of a monotonically increasing counter read at monotonic times.

    The first reading has no rate (``None``) rather than a wrong one. A counter that goes
    down is treated as a 32- or 64-bit wrap when the previous value fits in that width and
    the wrapped delta is plausible; otherwise it was reset (device re-created) and the
    reading starts a new baseline.
    """

    __slots__ = ("_time", "_value")

    def __init__(self) -> None:
        self._value: int | None = None
        self._time = 0.0

    def update(self, value: int, now: float) -> float | None:
        previous, since = self._value, self._time
        self._value, self._time = value, now
        if previous is None or now <= since:
            return None
        delta = value - previous if value >= previous else _unwrap(previous, value)
        return None if delta is None else delta / (now - since)


def _unwrap(previous: int, value: int) -> int | None:
    for width in _WIDTHS:
        if previous < width:
            delta = width - previous + value
            # A wrap moves the counter a little past the top; a reset drops it far below.
            return delta if delta < width // 2 else None
    return None


class RateTable:
    """Rates for a family of keyed counters (per interface, per device) that may appear
    and vanish between readings. Keys that vanished are forgotten, so a device that comes
    back starts from a fresh baseline instead of producing a bogus delta."""

    __slots__ = ("_rates",)

    def __init__(self) -> None:
        self._rates: dict[tuple[str, str], CounterRate] = {}

    def update(self, key: str, counters: Mapping[str, int], now: float) -> dict[str, float | None]:
        result: dict[str, float | None] = {}
        for name, value in counters.items():
            rate = self._rates.get((key, name))
            if rate is None:
                rate = self._rates[(key, name)] = CounterRate()
            result[name] = rate.update(value, now)
        return result

    def forget_except(self, keys: set[str]) -> None:
        for entry in [entry for entry in self._rates if entry[0] not in keys]:
            del self._rates[entry]


def round_rate(value: float | None, digits: int = 1) -> float | None:
    """Round for the wire; NaN and infinities never leave the process."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)
