"""Platform readers: one small collector per field group, each a thin layer over psutil.

A collector is called from a worker thread with the tick's monotonic time and returns the
group's wire value. Collectors hold only the state their maths needs (previous counters);
the maths itself lives in :mod:`sysstream._rates`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import psutil

from ._rates import CpuUsage

__all__ = ["Collector", "build_collectors"]


class Collector(Protocol):
    def collect(self, now: float) -> Any:
        """Read the group's current value; raise on failure."""


def cpu_times() -> dict[str, float]:
    return dict(psutil.cpu_times()._asdict())


class CpuCollector:
    """System-wide busy percent from ``cpu_times()`` deltas.

    psutil's ``cpu_percent(interval=None)`` keeps its baseline per calling thread, which
    gives nonsense when sampling hops between pool threads; computing from the raw
    counters keeps the baseline here, primed at construction.
    """

    def __init__(self) -> None:
        self._usage = CpuUsage(cpu_times())

    def collect(self, now: float) -> float | None:
        return self._usage.update(cpu_times())


class MemoryCollector:
    def collect(self, now: float) -> float:
        return float(psutil.virtual_memory().percent)


class DiskCollector:
    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self, now: float) -> float:
        return float(psutil.disk_usage(self.path).percent)


def build_collectors(*, disk_path: str) -> Mapping[str, Collector]:
    """One collector per registry group, keyed by the group's wire name."""
    factories: dict[str, Callable[[], Collector]] = {
        "cpu": CpuCollector,
        "memory": MemoryCollector,
        "disk": lambda: DiskCollector(disk_path),
    }
    return {name: make() for name, make in factories.items()}
