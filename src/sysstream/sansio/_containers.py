"""Per-container figures from cgroup counters: the ``containers`` group's wire value.

:class:`ContainerMeter` is fed one :class:`CgroupReading` per running container each tick,
plus what the container engine said about each (:class:`ContainerInfo`), and returns the
group's value. It keeps the previous counters of each container *incarnation*: the id plus
the cgroup directory's inode, so a restarted container, or an id reused, starts a fresh
baseline and its first rates are ``null``, never a spike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SHORT_ID", "CgroupReading", "ContainerInfo", "ContainerMeter"]

# Keys of the group's value: the first 12 hex digits, as `docker ps` shows ids.
SHORT_ID = 12
# Seconds by which the engine's start time may precede the init process's own.
STALE_START = 1.0


@dataclass(frozen=True, slots=True)
class CgroupReading:
    """One container's cgroup counters at one moment."""

    id: str
    generation: int  # inode of the cgroup directory: new on every (re)start
    cpu_ns: int  # CPU time used since the cgroup was created
    memory_bytes: int  # usage minus inactive page cache (as `docker stats`)
    memory_limit_bytes: int | None
    cpu_limit_cores: float | None  # CFS quota / period
    pids: int | None
    block_read_bytes: int
    block_write_bytes: int
    net_rx_bytes: int | None  # None: the container shares the host's network
    net_tx_bytes: int | None
    started_at: float | None  # the start of a process inside, in seconds since the epoch


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """What the container engine's API says about one container."""

    id: str
    name: str
    image: str
    state: str  # running, paused, restarting, exited…
    health: str | None  # healthy, unhealthy, starting; None without a health check
    restarts: int
    started_at: float | None
    pid: int


@dataclass(slots=True)
class _Previous:
    generation: int
    time: float
    counters: tuple[int | None, ...]


def _counters(reading: CgroupReading) -> tuple[int | None, ...]:
    return (
        reading.cpu_ns,
        reading.net_rx_bytes,
        reading.net_tx_bytes,
        reading.block_read_bytes,
        reading.block_write_bytes,
    )


def _rate(before: int | None, after: int | None, seconds: float | None) -> float | None:
    # cgroup counters are 64-bit and never wrap in practice: a drop means they restarted.
    if before is None or after is None or seconds is None or after < before:
        return None
    return (after - before) / seconds


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


class ContainerMeter:
    """Turns each tick's readings into the ``containers`` value (docs/containers.md).

    ``host_memory_bytes`` stands in for the memory limit of a container without one, as
    in ``docker stats``, so ``memory_percent`` is always a share of what it may use.
    """

    __slots__ = ("_host_memory", "_previous")

    def __init__(self, host_memory_bytes: int) -> None:
        if host_memory_bytes <= 0:
            raise ValueError(f"expected a positive host memory size, got {host_memory_bytes}")
        self._host_memory = host_memory_bytes
        self._previous: dict[str, _Previous] = {}

    def update(
        self,
        readings: Iterable[CgroupReading],
        infos: Mapping[str, ContainerInfo],
        *,
        now: float,
        wall: float,
    ) -> dict[str, dict[str, Any]]:
        """The group's value for readings taken at monotonic ``now`` (``wall``: epoch)."""
        value: dict[str, dict[str, Any]] = {}
        seen: dict[str, _Previous] = {}
        for reading in readings:
            counters = _counters(reading)
            previous = self._previous.get(reading.id)
            before: tuple[int | None, ...] = (None,) * 5
            seconds = None
            same = previous is not None and previous.generation == reading.generation
            if previous is not None and same and now > previous.time:
                seconds, before = now - previous.time, previous.counters
            seen[reading.id] = _Previous(reading.generation, now, counters)
            value[reading.id[:SHORT_ID]] = self._entry(
                reading, infos.get(reading.id), before, seconds, wall
            )
        self._previous = seen  # a container that vanished is forgotten
        return value

    def _entry(
        self,
        reading: CgroupReading,
        info: ContainerInfo | None,
        before: tuple[int | None, ...],
        seconds: float | None,
        wall: float,
    ) -> dict[str, Any]:
        after = _counters(reading)
        cpu_ns_per_s = _rate(before[0], after[0], seconds)
        cpu_percent = None if cpu_ns_per_s is None else cpu_ns_per_s / 1e7
        cores = reading.cpu_limit_cores
        limit = reading.memory_limit_bytes
        memory_of = min(limit, self._host_memory) if limit is not None else self._host_memory
        started_at = reading.started_at
        # The engine's start time is exact, unless it predates this cgroup: then it is of
        # the run before a restart, and the event saying so is still on its way.
        engine_start = info.started_at if info is not None else None
        if engine_start is not None and (
            started_at is None or engine_start > started_at - STALE_START
        ):
            started_at = engine_start
        return {
            "id": reading.id,
            "name": info.name if info is not None else reading.id[:SHORT_ID],
            "image": info.image if info is not None else None,
            "state": info.state if info is not None else None,
            "health": info.health if info is not None else None,
            "restarts": info.restarts if info is not None else None,
            "cpu_percent": _round(cpu_percent),
            "cpu_limit_cores": _round(cores, 3),
            "cpu_limit_percent": _round(cpu_percent / cores)
            if cpu_percent is not None and cores
            else None,
            "cpu_seconds": round(reading.cpu_ns / 1e9, 3),
            "memory_bytes": reading.memory_bytes,
            "memory_limit_bytes": limit,
            "memory_percent": round(reading.memory_bytes / memory_of * 100, 2),
            "net_rx_bytes_per_s": _round(_rate(before[1], after[1], seconds)),
            "net_tx_bytes_per_s": _round(_rate(before[2], after[2], seconds)),
            "net_rx_bytes": reading.net_rx_bytes,
            "net_tx_bytes": reading.net_tx_bytes,
            "block_read_bytes_per_s": _round(_rate(before[3], after[3], seconds)),
            "block_write_bytes_per_s": _round(_rate(before[4], after[4], seconds)),
            "block_read_bytes": reading.block_read_bytes,
            "block_write_bytes": reading.block_write_bytes,
            "pids": reading.pids,
            "uptime_seconds": _round(max(wall - started_at, 0.0)) if started_at else None,
        }
