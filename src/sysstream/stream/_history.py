"""The in-memory history ring: the last ``--history-seconds`` of ticks, per field group.

Each group's value is kept as its encoded JSON fragment, so a query is a concatenation of
bytes, with no decode and no re-encode, and memory per tick is the size of the wire
values (about 60 bytes for the default view, 1–3 KB with the full catalogue on a machine
with a few interfaces and mounts; docs/protocol.md has the arithmetic).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from collections.abc import Iterable, Sequence

import orjson

from .._registry import GROUPS
from .._sample import Sample

__all__ = ["History"]

_NULL = b"null"


class History:
    """A bounded ring of recent samples; a hub :class:`~sysstream.stream._hub.Recorder`."""

    def __init__(self, seconds: float, interval: float, *, max_bytes: int | None = None) -> None:
        if seconds < 0 or interval <= 0:
            raise ValueError(f"expected seconds >= 0 and interval > 0, got {seconds}, {interval}")
        self.interval = interval
        self.capacity = int(seconds / interval)
        # Besides the tick count, the encoded bytes kept may be bounded: a fleet host's
        # ticks are whatever its agent sends (the oldest go first past the bound).
        self.max_bytes = max_bytes
        self.bytes = 0
        self._times: deque[float] = deque()
        self._values: deque[dict[str, bytes]] = deque()
        self._sizes: deque[int] = deque()
        self._kept = frozenset(name for name, group in GROUPS.items() if group.history)

    def __len__(self) -> int:
        return len(self._times)

    def record(self, sample: Sample) -> None:
        if not self.capacity:
            return
        entry = {
            name: orjson.dumps(value) for name, value in sample.values.items() if name in self._kept
        }
        size = sum(map(len, entry.values()))
        limit = self.max_bytes if self.max_bytes is not None else math.inf
        while self._times and (len(self._times) >= self.capacity or self.bytes + size > limit):
            self._times.popleft()
            self._values.popleft()
            self.bytes -= self._sizes.popleft()
        self._times.append(sample.timestamp)
        self._values.append(entry)
        self._sizes.append(size)
        self.bytes += size

    @property
    def oldest(self) -> float | None:
        return self._times[0] if self._times else None

    def query(
        self,
        fields: Sequence[str],
        since: float,
        until: float | None = None,
        *,
        points: int | None = None,
    ) -> bytes:
        """Ticks with ``since <= timestamp <= until`` as the columnar JSON body of
        ``GET /metrics/history`` (docs/protocol.md); with ``points``, at most that many of
        them, every k-th tick counted back from the newest (sparklines need no more)."""
        # Bisect and index the deques in place: copying whole rings would cost more than
        # the answer when a fleet overview asks every host for a few points.
        times = self._times
        start = bisect.bisect_left(times, since)
        stop = len(times) if until is None else bisect.bisect_right(times, until)
        stride = 1 if points is None else max(1, math.ceil((stop - start) / max(1, points)))
        indices = range(stop - 1, start - 1, -stride)[::-1]
        if stride == 1:  # every tick: one slice of each ring
            values = list(itertools.islice(self._values, start, stop))
            stamps_of = list(itertools.islice(times, start, stop))
        else:
            values = [self._values[i] for i in indices]
            stamps_of = [times[i] for i in indices]
        step = self.interval * stride
        header = {"interval": self.interval, "step": step, "fields": list(fields)}
        columns = b",".join(
            orjson.dumps(name) + b":[" + b",".join(_column(values, name)) + b"]" for name in fields
        )
        stamps = orjson.dumps([round(t, 3) for t in stamps_of])
        return (
            orjson.dumps(header)[:-1]
            + b',"timestamps":'
            + stamps
            + b',"values":{'
            + columns
            + b"}}"
        )


def _column(values: Iterable[dict[str, bytes]], name: str) -> Iterable[bytes]:
    return (entry.get(name, _NULL) for entry in values)
