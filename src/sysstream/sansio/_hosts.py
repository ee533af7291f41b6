"""What a hub knows about each remote host, with no I/O: its interval, when it was last
heard from, its latest sample, and whether it counts as online.

A host is offline once it has missed 3 intervals (plus half an interval of grace for
network jitter) and online again with its next tick; nothing needs resetting by hand.
Only a tick makes a host online: a name listed in Redis with a recent score and no tick
the hub accepted is offline (any agent may list any name, docs/fleet.md, Trust).
Times are epoch seconds: ticks heard live are stamped with the hub's clock on receipt,
hosts found in Redis at start with the agent's timestamp of their last tick.
"""

from __future__ import annotations

import enum
from typing import Any

from .._registry import DEFAULT_FIELDS
from .._sample import Sample
from ._messages import format_timestamp

__all__ = ["MISSED_INTERVALS", "HostRecord", "HostStatus"]

MISSED_INTERVALS = 3


class HostStatus(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class HostRecord:
    """One host as one hub sees it."""

    __slots__ = ("host", "interval", "last_seen", "latest", "reported")

    def __init__(self, host: str, interval: float, last_seen: float | None = None) -> None:
        if interval <= 0:
            raise ValueError(f"expected a positive interval, got {interval!r}")
        self.host = host
        self.interval = interval
        self.last_seen = last_seen
        self.latest: Sample | None = None
        self.reported = HostStatus.OFFLINE  # the status last returned by transition()

    def observe(self, sample: Sample, interval: float, seen_at: float) -> bool:
        """Note a tick of the host; False when it is not newer than the latest one (the
        same tick read again from the backlog), which the caller then drops."""
        if self.latest is not None and sample.timestamp <= self.latest.timestamp:
            return False
        self.latest = sample
        self.interval = interval
        self.last_seen = seen_at if self.last_seen is None else max(self.last_seen, seen_at)
        return True

    def status(self, now: float) -> HostStatus:
        if self.latest is None or self.last_seen is None:
            return HostStatus.OFFLINE
        silent = now - self.last_seen
        return HostStatus.OFFLINE if silent > self.grace else HostStatus.ONLINE

    @property
    def grace(self) -> float:
        """Seconds of silence after which the host is offline."""
        return (MISSED_INTERVALS + 0.5) * self.interval

    def transition(self, now: float) -> HostStatus | None:
        """The new status if it changed since the last call (for logging), else None."""
        status = self.status(now)
        if status is self.reported:
            return None
        self.reported = status
        return status

    def silence(self, now: float) -> str | None:
        """Why the host's stream has no data, while it is offline; None while online."""
        if self.status(now) is HostStatus.ONLINE:
            return None
        if self.latest is None or self.last_seen is None:
            return f"host {self.host} has not published yet"
        return f"host {self.host} offline: no tick for {now - self.last_seen:.0f} s"

    def summary(self, now: float) -> dict[str, Any]:
        """The host's entry in ``GET /api/hosts``."""
        values = self.latest.values if self.latest is not None else {}
        entry: dict[str, Any] = {
            "id": self.host,
            "status": self.status(now).value,
            "last_seen": None if self.last_seen is None else format_timestamp(self.last_seen),
            "interval": self.interval,
        }
        entry.update({name: values.get(name) for name in DEFAULT_FIELDS})
        return entry
