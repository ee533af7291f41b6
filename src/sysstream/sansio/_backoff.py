"""Reconnect delays with no I/O: exponential backoff with jitter."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff"]

# A generator of its own: reconnect jitter must not advance the global one, which an
# embedding app (or a test framework) may have seeded for its own reproducible sequence.
_jitter = random.Random()


@dataclass(slots=True)
class Backoff:
    """Exponential reconnect delays with jitter: 0.5 s doubling up to ``maximum``.

    Awaited (:meth:`next_delay`) by a loop that reconnects, or, for a caller that must not
    wait (a tick to publish, an event to claim), kept as a time to skip until:
    :meth:`failed` at a failure, :meth:`ready` before the next try, :meth:`reset` at a
    success. ``attempt`` is 0 outside an outage.
    """

    initial: float = 0.5
    maximum: float = 10.0
    attempt: int = 0
    retry_at: float = -math.inf  # set by failed(): nothing is tried before then

    def next_delay(self, jitter: Callable[[], float] = _jitter.random) -> float:
        delay: float = min(self.maximum, self.initial * 2.0**self.attempt)
        self.attempt += 1
        return delay * (0.5 + float(jitter()) / 2)

    def failed(self, now: float) -> None:
        """A try failed at ``now``: the next waits out the next delay."""
        self.retry_at = now + self.next_delay()

    def ready(self, now: float) -> bool:
        """Whether a try may be made at ``now``."""
        return now >= self.retry_at

    def reset(self) -> None:
        self.attempt = 0
        self.retry_at = -math.inf
