"""The process table: one walk over every process, shared by the ``processes`` group and the
process list route (``GET …/metrics/processes``), so neither walks more often than it must.

Per-process CPU percent is measured between two walks (psutil keeps each Process's previous
times), so walks that follow each other too closely would report noise: a caller says how
old a table it accepts, and the table walks again only when the last walk is older.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import psutil

__all__ = ["CMDLINE_MAX", "ProcessSnapshot", "ProcessTable"]

# Characters of a command line kept: enough to tell eight "python" processes apart, short
# enough that a full list stays small.
CMDLINE_MAX = 256

_ATTRS = (
    "pid",
    "name",
    "username",
    "cpu_percent",
    "memory_percent",
    "memory_info",
    "status",
    "create_time",
)
# Control characters (and the NULs between arguments) printed as spaces.
_UNPRINTABLE = dict.fromkeys([*range(32), 127], " ")


@dataclass(frozen=True, slots=True)
class ProcessSnapshot:
    """One walk: every process as a row of the wire shape (docs/protocol.md)."""

    walked_at: float  # epoch seconds
    rows: tuple[dict[str, Any], ...]
    running: int
    cpus: int


def _cmdline(process: psutil.Process) -> str:
    try:
        parts = process.cmdline()
    except psutil.Error:
        parts = []
    text = " ".join(parts).translate(_UNPRINTABLE).strip()
    if len(text) > CMDLINE_MAX:
        text = text[: CMDLINE_MAX - 1] + "…"
    return text


class ProcessTable:
    """The latest walk, walked again on demand when older than the caller accepts.

    Thread-safe: the sampler's worker and the route's thread may ask at once; one walks
    and the other gets its result.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: ProcessSnapshot | None = None
        self._walked: float | None = None  # monotonic time of the last walk
        # Command lines by (pid, create time): read once per process, not on every walk.
        self._cmdlines: dict[tuple[int, float], str] = {}

    def snapshot(self, max_age: float) -> ProcessSnapshot:
        """A walk at most ``max_age`` seconds old (a new one if the last is older)."""
        with self._lock:
            now = time.monotonic()
            if self._snapshot is None or self._walked is None or now - self._walked > max_age:
                self._snapshot = self._walk()
                self._walked = now
            return self._snapshot

    def _walk(self) -> ProcessSnapshot:
        rows: list[dict[str, Any]] = []
        running = 0
        cmdlines: dict[tuple[int, float], str] = {}
        for process in psutil.process_iter(_ATTRS):
            info = process.info
            if info["status"] == psutil.STATUS_RUNNING:
                running += 1
            name = info["name"] or ""
            key = (info["pid"], info["create_time"] or 0.0)
            cmdline = self._cmdlines.get(key)
            if cmdline is None:
                cmdline = _cmdline(process)
            cmdlines[key] = cmdline
            memory = info["memory_info"]
            rows.append(
                {
                    "pid": info["pid"],
                    "name": name,
                    "user": info["username"] or "",
                    "cmdline": cmdline,
                    "cpu_percent": round(info["cpu_percent"] or 0.0, 1),
                    "memory_percent": round(info["memory_percent"] or 0.0, 2),
                    "rss_bytes": memory.rss if memory is not None else 0,
                }
            )
        self._cmdlines = cmdlines  # forgets the processes that are gone
        return ProcessSnapshot(time.time(), tuple(rows), running, psutil.cpu_count() or 1)
