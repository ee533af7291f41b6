"""Drift-free tick schedule with no I/O: tick k is due at ``start + k * interval``."""

from __future__ import annotations

import math

__all__ = ["TickSchedule"]


class TickSchedule:
    """Deadlines on a fixed grid. Work done at a tick never pushes later ticks back, and a
    tick missed entirely (the process was suspended) is skipped rather than replayed in a
    burst; tick numbers keep counting grid slots so slower views stay aligned."""

    __slots__ = ("interval", "start", "tick")

    def __init__(self, interval: float, start: float) -> None:
        if interval <= 0:
            raise ValueError(f"expected a positive interval, got {interval!r}")
        self.interval = interval
        self.start = start
        self.tick = 0

    def advance(self, now: float) -> float:
        """Move to the next tick due after the current one and return its deadline."""
        next_slot = math.floor((now - self.start) / self.interval) + 1
        self.tick = max(self.tick + 1, next_slot)
        return self.start + self.tick * self.interval
