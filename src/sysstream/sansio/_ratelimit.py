"""Rate limits with no I/O: a token bucket fed timestamps and asked yes or no."""

from __future__ import annotations

__all__ = ["CONTROL_BURST", "CONTROL_RATE", "ControlRateLimit"]

# A client changes its subscription a few times a minute; a dashboard toggling fields
# sends a short burst. Anything faster than this is a flood.
CONTROL_RATE = 10.0  # messages per second, sustained
CONTROL_BURST = 20  # messages at once


class ControlRateLimit:
    """A token bucket per client: ``burst`` messages at once, ``rate`` per second after."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float = CONTROL_RATE, burst: int = CONTROL_BURST) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"expected rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        """Whether a message arriving at ``now`` (monotonic seconds) is within the limit."""
        if self._last is not None:
            elapsed = max(0.0, now - self._last)
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
