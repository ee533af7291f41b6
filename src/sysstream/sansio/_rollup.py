"""Roll-ups for the history store: leaf-wise min/avg/max of group values, and buckets.

No I/O: :func:`summarize` turns a bucket of live group values into one :class:`Summary`,
:func:`combine` merges summaries (1-minute buckets into 15-minute ones), and
:class:`BucketRollup` cuts a time-ordered stream of points into closed buckets. The SQLite
layer in ``_store.py`` feeds these and writes what comes out.

A summary has the shape of a live value: a number becomes its average, minimum and maximum;
a dict or list is summarised key by key (index by index); text and other non-numeric leaves
(a mount's ``device``) are taken from the latest point. So a chart reads an aggregated point
exactly as it reads a live one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "AVG_DECIMALS",
    "Bucket",
    "BucketRollup",
    "Summary",
    "bucket_start",
    "combine",
    "summarize",
]

# Averages are rounded to this many decimals: 25.533 says as much as 25.533333333333335 in a
# quarter of the bytes, and the sampled values themselves carry one or two decimals.
AVG_DECIMALS = 3


class Summary(NamedTuple):
    """``n`` points of one group, summarised leaf-wise into three values of its shape."""

    n: int
    avg: Any
    min: Any
    max: Any


def _is_number(value: object) -> bool:
    return type(value) is float or type(value) is int  # bool is not a number here


def _kind_of(values: Iterable[Any]) -> type | None:
    """The container type (dict, list) or number-ness of the first non-null value."""
    for value in values:
        if value is None:
            continue
        if isinstance(value, dict):
            return dict
        if isinstance(value, list):
            return list
        return float if _is_number(value) else str
    return None


def _keys(dicts: Sequence[Mapping[str, Any]]) -> list[str]:
    # The latest point's keys in its order, then keys only older points had (an interface
    # that went away mid-bucket is still summarised for the part of the bucket it existed).
    return list(dict.fromkeys(key for d in reversed(dicts) for key in d))


def summarize(values: Sequence[Any]) -> Summary:
    """Leaf-wise average, minimum and maximum of ``values`` (oldest first, non-empty)."""
    if not values:
        raise ValueError("expected at least one value, got none")
    n = len(values)
    kind = _kind_of(values)
    if kind is float:
        numbers = [v for v in values if _is_number(v)]
        if not numbers:
            return Summary(n, None, None, None)
        return Summary(n, _average(sum(numbers), len(numbers)), min(numbers), max(numbers))
    if kind is dict:
        dicts = [v for v in values if isinstance(v, dict)]
        avg, low, high = {}, {}, {}
        for key in _keys(dicts):
            part = summarize([d[key] for d in dicts if key in d])
            avg[key], low[key], high[key] = part.avg, part.min, part.max
        return Summary(n, avg, low, high)
    if kind is list:
        lists = [v for v in values if isinstance(v, list)]
        avg_l, low_l, high_l = [], [], []
        for index in range(max(len(v) for v in lists)):
            part = summarize([v[index] for v in lists if index < len(v)])
            avg_l.append(part.avg)
            low_l.append(part.min)
            high_l.append(part.max)
        return Summary(n, avg_l, low_l, high_l)
    latest = values[-1]
    return Summary(n, latest, latest, latest)


def _combine_at(parts: Sequence[Summary], key: Any) -> Summary:
    """Merge the children at ``key`` (a dict key or list index) of the parts that have one."""
    return combine(
        [
            Summary(
                part.n,
                part.avg[key],
                _child(part.min, key, part.avg[key]),
                _child(part.max, key, part.avg[key]),
            )
            for part in parts
            if (key in part.avg if isinstance(part.avg, dict) else key < len(part.avg))
        ]
    )


def combine(parts: Sequence[Summary]) -> Summary:
    """Merge summaries (oldest first, non-empty) into one, averages weighted by point count."""
    if not parts:
        raise ValueError("expected at least one summary, got none")
    n = sum(part.n for part in parts)
    kind = _kind_of(part.avg for part in parts)
    if kind is float:
        numbers = [part for part in parts if _is_number(part.avg)]
        if not numbers:
            return Summary(n, None, None, None)
        weight = sum(part.n for part in numbers)
        total = math.fsum(part.n * part.avg for part in numbers)
        lows = [part.min for part in numbers if _is_number(part.min)]
        highs = [part.max for part in numbers if _is_number(part.max)]
        return Summary(
            n,
            _average(total, weight),
            min(lows) if lows else None,
            max(highs) if highs else None,
        )
    if kind is dict:
        dicts = [part for part in parts if isinstance(part.avg, dict)]
        by_key = {key: _combine_at(dicts, key) for key in _keys([part.avg for part in dicts])}
        return Summary(
            n,
            {key: merged.avg for key, merged in by_key.items()},
            {key: merged.min for key, merged in by_key.items()},
            {key: merged.max for key, merged in by_key.items()},
        )
    if kind is list:
        lists = [part for part in parts if isinstance(part.avg, list)]
        by_index = [_combine_at(lists, index) for index in range(max(len(p.avg) for p in lists))]
        return Summary(
            n,
            [merged.avg for merged in by_index],
            [merged.min for merged in by_index],
            [merged.max for merged in by_index],
        )
    latest = parts[-1].avg
    return Summary(n, latest, latest, latest)


def _child(container: Any, key: Any, default: Any) -> Any:
    """``container[key]``, or ``default`` where the min/max tree lacks it (never by
    construction; a hand-edited row must not break a query)."""
    try:
        return container[key]
    except (KeyError, IndexError, TypeError):
        return default


def _average(total: float, count: int) -> float:
    return round(total / count, AVG_DECIMALS)


def bucket_start(timestamp: float, resolution: float) -> float:
    """The start of the ``resolution``-second bucket holding ``timestamp`` (epoch-aligned,
    so a 15-minute bucket is exactly fifteen 1-minute buckets)."""
    return float(math.floor(timestamp / resolution) * resolution)


@dataclass(frozen=True, slots=True)
class Bucket:
    """A closed (or, at shutdown, partial) bucket of one host: one summary per group."""

    host: str
    start: float
    groups: dict[str, Summary]


@dataclass(slots=True)
class _Open:
    start: float
    # Per group: raw values (when fed by points) or summaries (when fed by a finer tier).
    items: dict[str, list[Any]] = field(default_factory=dict)


class BucketRollup:
    """Cuts each host's time-ordered points into ``resolution``-second buckets.

    Feed it with :meth:`add_values` (raw points) or :meth:`add_summaries` (a finer tier's
    closed buckets); each returns the buckets that the new point closed. A point older than
    the host's open bucket (a clock stepped back) is not rolled up, since its bucket is
    already written; ``late`` counts them.
    """

    def __init__(self, resolution: float) -> None:
        if resolution <= 0:
            raise ValueError(f"expected a resolution > 0 seconds, got {resolution}")
        self.resolution = resolution
        self.late = 0
        self._open: dict[str, _Open] = {}
        self._summaries: bool | None = None  # what this rollup is fed: fixed by first use

    def add_values(self, host: str, timestamp: float, values: Mapping[str, Any]) -> list[Bucket]:
        self._expect(summaries=False)
        return self._add(host, timestamp, values)

    def add_summaries(
        self, host: str, timestamp: float, summaries: Mapping[str, Summary]
    ) -> list[Bucket]:
        self._expect(summaries=True)
        return self._add(host, timestamp, summaries)

    def open_summary(self, host: str) -> Bucket | None:
        """The host's open bucket summarised as it stands (a partial bucket)."""
        bucket = self._open.get(host)
        return None if bucket is None else self._close(host, bucket)

    def drain(self) -> list[Bucket]:
        """Close every open bucket as it stands (at shutdown); the rollup is left empty."""
        closed = [self._close(host, bucket) for host, bucket in self._open.items()]
        self._open.clear()
        return closed

    def _expect(self, *, summaries: bool) -> None:
        if self._summaries is None:
            self._summaries = summaries
        elif self._summaries is not summaries:
            fed = "summaries" if self._summaries else "raw values"
            given = "summaries" if summaries else "raw values"
            raise TypeError(f"expected {fed} (as before), got {given}")

    def _add(self, host: str, timestamp: float, items: Mapping[str, Any]) -> list[Bucket]:
        start = bucket_start(timestamp, self.resolution)
        bucket = self._open.get(host)
        closed: list[Bucket] = []
        if bucket is not None and start != bucket.start:
            if start < bucket.start:
                self.late += 1
                return closed
            closed.append(self._close(host, bucket))
            bucket = None
        if bucket is None:
            bucket = self._open[host] = _Open(start)
        for group, item in items.items():
            bucket.items.setdefault(group, []).append(item)
        return closed

    def _close(self, host: str, bucket: _Open) -> Bucket:
        merge = combine if self._summaries else summarize
        return Bucket(
            host, bucket.start, {group: merge(items) for group, items in bucket.items.items()}
        )
