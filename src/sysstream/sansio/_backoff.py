"""Reconnect delays with no I/O: exponential backoff with jitter."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff"]

# A generator of its own: reconnect jitter must not advance the global one, which an
# embedding app (or a test framework) may have seeded for its own reproducible sequence.
_jitter = random.Random()


@dataclass(slots=True)
class Backoff:
    """Exponential reconnect delays with jitter: 0.5 s doubling up to ``maximum``."""

    initial: float = 0.5
    maximum: float = 10.0
    attempt: int = 0

    def next_delay(self, jitter: Callable[[], float] = _jitter.random) -> float:
        delay: float = min(self.maximum, self.initial * 2.0**self.attempt)
        self.attempt += 1
        return delay * (0.5 + float(jitter()) / 2)

    def reset(self) -> None:
        self.attempt = 0
