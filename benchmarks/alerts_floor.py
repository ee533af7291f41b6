"""Reference for the alert benchmark, the floor: the arithmetic of its ten rules, by hand.

Owns: ``FloorHost`` and ``observe``, what the ten rules of ``benchmarks/alerts.py``
cost in CPython with nothing in between, as ``floor.py`` is for the fan-out. Per sample it
reads each rule's value out of the sample's dicts, adds it to its windows' open buckets
and compares it with the bounds a ``last`` or ``max`` rule needs; when a value opens a new
bucket (5 s for the 5-minute windows, 15 s for 15 minutes) the closed bucket's total joins
a 60-bucket deque with a running sum, and the window's average is compared with its
warning threshold. A ``max`` window is a comparison, as in the engine while it is calm;
so are temperatures (the benchmark's machine has none: only the lookup is paid).

Left out on purpose: the state machine (``for``, hysteresis, repeats, severities),
events, selectors, labels, reloads and stale series. The floor gives no verdicts anyone
could use: it is the least any Python evaluator of these rules must spend.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["RULES", "FloorHost", "observe"]

# What the floor implements, in the engine's terms: (name, metric, aggregate, window s,
# op, warning). The benchmark checks its rule set against this, so the two cannot drift.
RULES = {
    ("cpu", "cpu", "avg", 300.0, ">", 90.0),
    ("memory", "memory", "avg", 300.0, ">", 90.0),
    ("swap", "swap.percent", "avg", 300.0, ">", 80.0),
    ("filesystem", "mounts.*.percent", "last", 0.0, ">", 85.0),
    ("load", "load.load5_per_core", "last", 0.0, ">", 2.0),
    ("temperature", "temps.*.*.celsius", "avg", 60.0, ">", None),  # the sensor's `high`
    ("cpu_peak", "cpu", "max", 60.0, ">", 99.0),
    ("memory_now", "memory", "last", 0.0, ">", 97.0),
    ("rx_quiet", "net.rx_bytes_per_s", "avg", 900.0, "<", 1.0),
    ("writes_heavy", "disk_io.write_bytes_per_s", "avg", 300.0, ">", 5e8),
}

BUCKETS = 60
_NUMBERS = frozenset({float, int})  # `type(x) in _NUMBERS`: bool and None are left out


class _Average:
    """A window's closed bucket totals (at most 60) and their running sum."""

    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets: deque[tuple[float, int]] = deque(maxlen=BUCKETS)
        self.total = 0.0
        self.count = 0

    def close(self, total: float, count: int) -> float:
        """Add a closed bucket, drop the oldest; the window's average."""
        if len(self.buckets) == BUCKETS:
            gone, gone_count = self.buckets[0]
            self.total -= gone
            self.count -= gone_count
        self.buckets.append((total, count))
        self.total += total
        self.count += count
        return self.total / self.count if self.count else 0.0


class FloorHost:
    """One host's windows: the open buckets' sums, and when they close."""

    __slots__ = (
        "breaches",
        "cpu",
        "cpu_open",
        "end_5s",
        "end_15s",
        "memory",
        "memory_open",
        "open_5s",
        "open_15s",
        "rx",
        "rx_open",
        "swap",
        "swap_open",
        "writes",
        "writes_open",
    )

    def __init__(self) -> None:
        self.cpu, self.memory, self.swap, self.writes, self.rx = (_Average() for _ in range(5))
        self.cpu_open = self.memory_open = self.swap_open = self.writes_open = 0.0
        self.rx_open = 0.0
        self.open_5s = self.open_15s = 0  # values in the open buckets
        self.end_5s = self.end_15s = 0.0
        self.breaches = 0  # comparisons that found a value past its bound


def observe(host: FloorHost, at: float, values: dict[str, Any]) -> None:
    """One sample of ``host`` taken at ``at``."""
    if at >= host.end_5s:
        if host.open_5s:
            count = host.open_5s
            if host.cpu.close(host.cpu_open, count) > 90.0:
                host.breaches += 1
            if host.memory.close(host.memory_open, count) > 90.0:
                host.breaches += 1
            if host.swap.close(host.swap_open, count) > 80.0:
                host.breaches += 1
            if host.writes.close(host.writes_open, count) > 5e8:
                host.breaches += 1
        host.cpu_open = host.memory_open = host.swap_open = host.writes_open = 0.0
        host.open_5s = 0
        host.end_5s = at - at % 5.0 + 5.0
    if at >= host.end_15s:
        if host.open_15s and host.rx.close(host.rx_open, host.open_15s) < 1.0:
            host.breaches += 1
        host.rx_open = 0.0
        host.open_15s = 0
        host.end_15s = at - at % 15.0 + 15.0
    host.open_5s += 1
    host.open_15s += 1
    cpu = values.get("cpu")
    if type(cpu) in _NUMBERS:
        host.cpu_open += cpu
        if cpu > 99.0:
            host.breaches += 1
    memory = values.get("memory")
    if type(memory) in _NUMBERS:
        host.memory_open += memory
        if memory > 97.0:
            host.breaches += 1
    swap = values.get("swap")
    if type(swap) is dict and type(value := swap.get("percent")) in _NUMBERS:
        host.swap_open += value
    load = values.get("load")
    if type(load) is dict and type(value := load.get("load5_per_core")) in _NUMBERS and value > 2.0:
        host.breaches += 1
    net = values.get("net")
    if type(net) is dict and type(value := net.get("rx_bytes_per_s")) in _NUMBERS:
        host.rx_open += value
    disk_io = values.get("disk_io")
    if type(disk_io) is dict and type(value := disk_io.get("write_bytes_per_s")) in _NUMBERS:
        host.writes_open += value
    mounts = values.get("mounts")
    if type(mounts) is dict:
        for mount in mounts.values():
            value = mount.get("percent") if type(mount) is dict else None
            if type(value) in _NUMBERS and value > 85.0:
                host.breaches += 1
    temps = values.get("temps")
    if type(temps) is dict:  # none on the benchmark's machine; read as the engine reads it
        for sensors in temps.values():
            for sensor in sensors.values() if type(sensors) is dict else ():
                if type(sensor) is dict and type(value := sensor.get("celsius")) in _NUMBERS:
                    high = sensor.get("high")
                    if type(high) in _NUMBERS and value > high:
                        host.breaches += 1
