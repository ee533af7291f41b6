"""The unit that flows through sysstream: one tick's values and per-group errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Partial", "Sample"]


@dataclass(frozen=True, slots=True)
class Sample:
    """What one tick collected.

    ``values`` maps group names to wire values for the groups that succeeded; ``errors``
    maps the groups that failed to a one-line reason. A group in both worked in part
    (see :class:`Partial`). ``tick`` counts intervals since the
    source started, so views with a slower cadence know which ticks are theirs.
    """

    tick: int
    timestamp: float  # seconds since the epoch, UTC
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Partial:
    """What a collector returns when it read something but not everything: ``value`` goes
    out as the group's value and ``reason`` under ``errors`` (containers without the
    Docker daemon: figures from the cgroups, but no names)."""

    value: Any
    reason: str
