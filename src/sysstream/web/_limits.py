"""Bounds on what clients can cost: connection count, control-message rate, open files.

:class:`ConnectionLimit` and :class:`ControlRateLimit` are sans-I/O counters the router
consults (fed timestamps, asked yes or no); the open-files helpers size the default
``--max-clients`` so that a full server refuses connections cleanly (HTTP 503) instead of
running out of file descriptors, where the OS would refuse them without a word.
"""

from __future__ import annotations

import contextlib
import resource

__all__ = [
    "CONTROL_BURST",
    "CONTROL_RATE",
    "FD_RESERVE",
    "ConnectionLimit",
    "ControlRateLimit",
    "connection_backstop",
    "default_max_clients",
    "open_files_limit",
    "raise_open_files_limit",
    "resolve_max_clients",
]

# A client changes its subscription a few times a minute; a dashboard toggling fields
# sends a short burst. Anything faster than this is a flood.
CONTROL_RATE = 10.0  # messages per second, sustained
CONTROL_BURST = 20  # messages at once

# Descriptors kept for everything that is not a WebSocket client: the listening socket,
# the event loop, the sampler's /proc and /sys reads, logs, and HTTP requests.
FD_RESERVE = 256


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


class ConnectionLimit:
    """At most ``maximum`` streams at once; a slot is held from handshake to disconnect."""

    __slots__ = ("active", "maximum", "refused")

    def __init__(self, maximum: int) -> None:
        if maximum < 1:
            raise ValueError(f"expected a maximum of at least 1 client, got {maximum}")
        self.maximum = maximum
        self.active = 0
        self.refused = 0  # connections turned away since start

    def acquire(self) -> bool:
        if self.active >= self.maximum:
            self.refused += 1
            return False
        self.active += 1
        return True

    def release(self) -> None:
        if self.active <= 0:
            raise RuntimeError("expected a held connection slot, got none held")
        self.active -= 1


def open_files_limit() -> int:
    """The soft RLIMIT_NOFILE: how many descriptors this process may open."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_open_files_limit() -> int:
    """Raise the soft open-files limit to the hard limit (allowed without privileges).

    Distributions start processes with a soft limit of 1024 for the sake of ``select()``;
    an asyncio server uses epoll and can use all the hard limit allows.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20  # the usual nr_open ceiling
    if soft != resource.RLIM_INFINITY and soft < wanted:
        # A limit we cannot raise is still a limit we can size against.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return open_files_limit()


def default_max_clients(open_files: int) -> int:
    """Clients a process with ``open_files`` descriptors can hold with room for the rest."""
    return max(1, open_files - min(FD_RESERVE, open_files // 4))


def connection_backstop(open_files: int | None = None) -> int:
    """Connections of any kind past which the server answers 503 on its own: above the
    default ``--max-clients``, below the point where accept() would fail."""
    files = open_files if open_files is not None else open_files_limit()
    return max(1, files - min(FD_RESERVE, files // 4) // 2)


def resolve_max_clients(setting: int | None) -> int:
    """``--max-clients`` if given, else sized from the current open-files limit."""
    return setting if setting is not None else default_max_clients(open_files_limit())
