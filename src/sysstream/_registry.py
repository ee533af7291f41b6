"""The metric registry: every field the stream can carry, described once.

Each :class:`Metric` names a wire path, its unit, what it means and its kind. The JSON
schema endpoint, the Prometheus HELP/TYPE lines, the docs and the dashboard's labels all
read this table; nothing else restates these facts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["DEFAULT_FIELDS", "GROUPS", "FieldGroup", "Kind", "Metric", "group"]


class Kind(enum.StrEnum):
    GAUGE = "gauge"  # a level that goes up and down (percent used)
    COUNTER = "counter"  # a running total since boot (bytes received)
    RATE = "rate"  # a counter's change per second over the last interval


@dataclass(frozen=True, slots=True)
class Metric:
    """One value in a message, addressed by its wire path (``net.rx_bytes_per_s``)."""

    path: str
    unit: str
    description: str
    kind: Kind = Kind.GAUGE
    # Prometheus series name (base units); None when the value is not exported.
    prometheus: str | None = None
    # Label names of a per-item metric (per core, per interface, per mount).
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FieldGroup:
    """A top-level key of the message: what a client subscribes to."""

    name: str
    title: str
    description: str
    metrics: tuple[Metric, ...] = field(default_factory=tuple)
    # Sampled every N ticks: walking every process each second would cost more than it tells.
    every: int = 1


GROUPS: dict[str, FieldGroup] = {
    g.name: g
    for g in (
        FieldGroup(
            "cpu",
            "CPU",
            "System-wide CPU busy percent over the last interval.",
            (
                Metric(
                    "cpu",
                    "percent",
                    "CPU time spent busy (not idle or iowait) over the last interval.",
                    prometheus="sysstream_cpu_usage_percent",
                ),
            ),
        ),
        FieldGroup(
            "memory",
            "Memory",
            "Virtual memory in use, as percent of total.",
            (
                Metric(
                    "memory",
                    "percent",
                    "Memory in use (total minus available) as percent of total.",
                    prometheus="sysstream_memory_usage_percent",
                ),
            ),
        ),
        FieldGroup(
            "disk",
            "Disk",
            "Usage of the configured filesystem (--disk-path), as percent.",
            (
                Metric(
                    "disk",
                    "percent",
                    "Space used on the configured filesystem as percent of its size.",
                    prometheus="sysstream_disk_usage_percent",
                ),
            ),
        ),
    )
}

# The seed contract's message: exactly these keys plus the timestamp.
DEFAULT_FIELDS: tuple[str, ...] = ("cpu", "memory", "disk")


def group(name: str) -> FieldGroup:
    """The group called ``name``; raises ``KeyError`` naming the known groups otherwise."""
    try:
        return GROUPS[name]
    except KeyError:
        known = ", ".join(GROUPS)
        raise KeyError(f"expected one of {known}, got {name!r}") from None
