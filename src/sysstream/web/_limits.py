"""Bounds on what clients can cost: connection count, control-message rate, open files.

:class:`ConnectionLimit` is a sans-I/O counter the router consults (asked yes or no; the
control-message rate limit is :mod:`sysstream.sansio._ratelimit`); the open-files helpers
size the default ``--max-clients`` so that a full server refuses connections cleanly (HTTP
503) instead of running out of file descriptors, where the OS would refuse them without a
word.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource

__all__ = [
    "FD_RESERVE",
    "ConnectionLimit",
    "connection_backstop",
    "default_max_clients",
    "open_files_limit",
    "raise_open_files_limit",
    "release_large_blocks",
    "resolve_max_clients",
]

# glibc's mallopt parameter, and the threshold it starts from before adapting.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024

# Descriptors kept for everything that is not a WebSocket client: the listening socket,
# the event loop, the sampler's /proc and /sys reads, logs, and HTTP requests.
FD_RESERVE = 256


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


def release_large_blocks() -> bool:
    """Keep glibc's mmap threshold at its initial 128 KiB, so that every block above it
    (history bodies, query results) is its own mapping, returned to the OS when freed.

    glibc raises the threshold to the size of the largest mapped block freed (up to
    32 MiB): after one 8 MB history response, the next ones come from the heap, where
    what slow readers made the server hold stays resident long after they are gone
    (docs/security.md). False where there is no glibc ``mallopt`` or the operator set
    ``MALLOC_MMAP_THRESHOLD_`` themselves.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
