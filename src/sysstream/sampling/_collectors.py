"""Platform readers: one small collector per field group, each a thin layer over psutil.

A collector is called from a worker thread with the tick's monotonic time and returns the
group's wire value (docs/protocol.md describes each shape). Collectors hold only the state
their maths needs (previous counters); the maths itself lives in :mod:`sysstream.sansio._rates`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import psutil

from ..sansio import CounterRate, CpuUsage, RateTable, round_rate
from ._containers import ContainersCollector
from ._processes import ProcessTable

__all__ = ["Collector", "build_collectors"]

TOP_PROCESSES = 10


class Collector(Protocol):
    def collect(self, now: float) -> Any:
        """Read the group's current value; raise on failure."""


def _cpu_times(percpu: bool = False) -> Any:
    if percpu:
        return [dict(t._asdict()) for t in psutil.cpu_times(percpu=True)]
    return dict(psutil.cpu_times()._asdict())


class CpuCollector:
    """System-wide busy percent from ``cpu_times()`` deltas.

    psutil's ``cpu_percent(interval=None)`` keeps its baseline per calling thread, which
    gives nonsense when sampling hops between pool threads; computing from the raw
    counters keeps the baseline here, primed at construction.
    """

    def __init__(self) -> None:
        self._usage = CpuUsage(_cpu_times())

    def collect(self, now: float) -> float | None:
        return self._usage.update(_cpu_times())


class CpuPerCoreCollector:
    def __init__(self) -> None:
        self._usage = [CpuUsage(times) for times in _cpu_times(percpu=True)]

    def collect(self, now: float) -> list[float | None]:
        readings = _cpu_times(percpu=True)
        if len(readings) != len(self._usage):  # a CPU went on- or offline
            self._usage = [CpuUsage() for _ in readings]
        return [usage.update(times) for usage, times in zip(self._usage, readings, strict=True)]


class CpuTimesCollector:
    """Percent of all CPU time spent in each mode over the interval."""

    def __init__(self) -> None:
        self._previous: dict[str, float] = _cpu_times()

    def collect(self, now: float) -> dict[str, float] | None:
        current = _cpu_times()
        previous, self._previous = self._previous, current
        deltas = {mode: max(current[mode] - previous.get(mode, 0.0), 0.0) for mode in current}
        # guest time is already inside user time on Linux; counting it twice skews the split.
        total = sum(v for mode, v in deltas.items() if mode not in ("guest", "guest_nice"))
        if total <= 0:
            return None
        return {mode: round(value / total * 100, 1) for mode, value in deltas.items()}


class MemoryCollector:
    def collect(self, now: float) -> float:
        return float(psutil.virtual_memory().percent)


class MemoryDetailCollector:
    def collect(self, now: float) -> dict[str, int | None]:
        memory = psutil.virtual_memory()
        # Linux reports cache and buffers apart; other platforms have neither field.
        cached = getattr(memory, "cached", None)
        buffers = getattr(memory, "buffers", None)
        return {
            "total_bytes": memory.total,
            "used_bytes": memory.used,
            "cached_bytes": None if cached is None else cached + (buffers or 0),
            "available_bytes": memory.available,
        }


class DiskCollector:
    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self, now: float) -> float:
        return float(psutil.disk_usage(self.path).percent)


class LoadCollector:
    def collect(self, now: float) -> dict[str, float]:
        cores = psutil.cpu_count() or 1
        averages = dict(zip((1, 5, 15), os.getloadavg(), strict=True))
        value: dict[str, float] = {}
        for minutes, load in averages.items():
            value[f"load{minutes}"] = round(load, 2)
            value[f"load{minutes}_per_core"] = round(load / cores, 2)
        return value


class SwapCollector:
    def __init__(self) -> None:
        self._sin = CounterRate()
        self._sout = CounterRate()

    def collect(self, now: float) -> dict[str, Any]:
        swap = psutil.swap_memory()
        return {
            "total_bytes": swap.total,
            "used_bytes": swap.used,
            "percent": float(swap.percent),
            "sin_bytes_per_s": round_rate(self._sin.update(swap.sin, now)),
            "sout_bytes_per_s": round_rate(self._sout.update(swap.sout, now)),
        }


def _with_rates(counters: Mapping[str, int], rates: Mapping[str, float | None]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for name, count in counters.items():
        value[f"{name}_per_s"] = round_rate(rates[name])
        value[name] = count
    return value


def _total_and_items(
    rates: RateTable,
    items: Mapping[str, Mapping[str, int]],
    counted: set[str],
    names: tuple[str, ...],
    key: str,
    now: float,
) -> dict[str, Any]:
    """Counters and rates summed over the ``counted`` items, with every item under ``key``.
    Items that vanished are forgotten, so one that comes back starts a fresh baseline."""
    rates.forget_except(set(items) | {""})
    total = {name: sum(items[item][name] for item in counted) for name in names}
    value = _with_rates(total, rates.update("", total, now))
    value[key] = {
        item: _with_rates(counters, rates.update(item, counters, now))
        for item, counters in items.items()
    }
    return value


class NetCollector:
    """Per-interface counters and rates; the total leaves out loopback traffic."""

    NAMES = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_errors", "tx_errors")

    def __init__(self) -> None:
        self._rates = RateTable()

    def collect(self, now: float) -> dict[str, Any]:
        interfaces = {
            name: dict(
                zip(
                    self.NAMES,
                    (c.bytes_recv, c.bytes_sent, c.packets_recv, c.packets_sent, c.errin, c.errout),
                    strict=True,
                )
            )
            for name, c in psutil.net_io_counters(pernic=True).items()
        }
        external = {name for name in interfaces if name != "lo"}
        return _total_and_items(self._rates, interfaces, external, self.NAMES, "interfaces", now)


def _is_partition(device: str) -> bool:
    return Path("/sys/class/block", device, "partition").exists()


class DiskIoCollector:
    """Per-device counters and rates; the total counts whole disks only, since a
    partition's I/O is also counted on its disk."""

    NAMES = ("read_bytes", "write_bytes", "read_ops", "write_ops")

    def __init__(self) -> None:
        self._rates = RateTable()
        self._partitions: dict[str, bool] = {}

    def collect(self, now: float) -> dict[str, Any]:
        devices = {
            name: dict(
                zip(
                    self.NAMES,
                    (c.read_bytes, c.write_bytes, c.read_count, c.write_count),
                    strict=True,
                )
            )
            for name, c in (psutil.disk_io_counters(perdisk=True, nowrap=False) or {}).items()
            if not name.startswith(("loop", "ram"))
        }
        for name in devices.keys() - self._partitions.keys():
            self._partitions[name] = _is_partition(name)
        disks = {name for name in devices if not self._partitions[name]}
        return _total_and_items(self._rates, devices, disks, self.NAMES, "devices", now)


class MountsCollector:
    """Real filesystems (psutil's ``all=False``), each mountpoint once."""

    def collect(self, now: float) -> dict[str, dict[str, Any]]:
        mounts: dict[str, dict[str, Any]] = {}
        for partition in psutil.disk_partitions(all=False):
            if partition.mountpoint in mounts:
                continue
            try:
                usage = psutil.disk_usage(partition.mountpoint)
            except OSError:
                continue  # unmounted between listing and reading, or no permission
            mounts[partition.mountpoint] = {
                "device": partition.device,
                "fstype": partition.fstype,
                "total_bytes": usage.total,
                "used_bytes": usage.used,
                "free_bytes": usage.free,
                "percent": float(usage.percent),
            }
        return mounts


class TempsCollector:
    def collect(self, now: float) -> dict[str, list[dict[str, Any]]]:
        read = getattr(psutil, "sensors_temperatures", None)
        chips = read() if read is not None else {}
        return {
            chip: [
                {
                    "label": entry.label or f"temp{index + 1}",
                    "celsius": entry.current,
                    "high": entry.high,
                    "critical": entry.critical,
                }
                for index, entry in enumerate(entries)
            ]
            for chip, entries in chips.items()
        }


class FansCollector:
    def collect(self, now: float) -> dict[str, list[dict[str, Any]]]:
        read = getattr(psutil, "sensors_fans", None)
        chips = read() if read is not None else {}
        return {
            chip: [
                {"label": entry.label or f"fan{index + 1}", "rpm": entry.current}
                for index, entry in enumerate(entries)
            ]
            for chip, entries in chips.items()
        }


class ProcessesCollector:
    """Process count and top processes, from the shared :class:`ProcessTable`. Per-process
    CPU percent is measured between two walks, so the first walk reports 0."""

    # A walk younger than this (the process list route's) is reused rather than repeated:
    # CPU percents over a fraction of a second would be noise.
    REUSE_SECONDS = 0.5

    def __init__(self, table: ProcessTable | None = None) -> None:
        self.table = table if table is not None else ProcessTable()

    def collect(self, now: float) -> dict[str, Any]:
        snapshot = self.table.snapshot(max_age=self.REUSE_SECONDS)
        rows = list(snapshot.rows)
        return {
            "count": len(rows),
            "running": snapshot.running,
            "cpus": snapshot.cpus,
            "top_cpu": _top(rows, "cpu_percent"),
            "top_memory": _top(rows, "rss_bytes"),
        }


def _top(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: row[key], reverse=True)[:TOP_PROCESSES]


class UptimeCollector:
    def __init__(self) -> None:
        self._boot = float(psutil.boot_time())

    def collect(self, now: float) -> float:
        return round(time.time() - self._boot, 1)


def build_collectors(
    *, disk_path: str, docker_host: str | None = None, processes: ProcessTable | None = None
) -> Mapping[str, Collector]:
    """One collector per registry group, keyed by the group's wire name. ``docker_host``:
    the container engine's socket (``unix://…``); ``None`` reads ``DOCKER_HOST``.
    ``processes``: the process table to share with the process list route, if there is one."""
    factories: dict[str, Callable[[], Collector]] = {
        "cpu": CpuCollector,
        "memory": MemoryCollector,
        "memory_detail": MemoryDetailCollector,
        "disk": lambda: DiskCollector(disk_path),
        "cpu_per_core": CpuPerCoreCollector,
        "cpu_times": CpuTimesCollector,
        "load": LoadCollector,
        "swap": SwapCollector,
        "net": NetCollector,
        "disk_io": DiskIoCollector,
        "mounts": MountsCollector,
        "temps": TempsCollector,
        "fans": FansCollector,
        "processes": lambda: ProcessesCollector(processes),
        "uptime": UptimeCollector,
        "containers": lambda: ContainersCollector(docker_host=docker_host),
    }
    return {name: make() for name, make in factories.items()}
