"""Reading the store: which tier a range is read from, and rows back to the history shape.

The functions here take an open connection and the points not written yet (the writer's
open buckets and pending ticks, as :class:`~sysstream.sansio.Summary` mappings) and return
the columnar shape of ``GET /metrics/history``. :meth:`HistoryStore.query` validates the
request and holds the store's lock around them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from ..sansio import Summary, bucket_start, combine
from ._tiers import Tier

__all__ = ["RETENTION_SLACK", "by_timestamp", "choose_tier", "columns", "read_raw", "read_tier"]

# A range that starts this little before a tier's retention is still served from that tier
# (its first seconds may already be pruned), so "the last 7 days" reads the 1-minute tier
# although the request was computed a few milliseconds before the store looked at the clock.
RETENTION_SLACK = 60.0

Series = dict[str, dict[float, Summary]]  # group -> timestamp -> summary
Tail = list[tuple[float, Mapping[str, Summary]]]  # points not in the file yet


def step_of(tier: Tier, interval: float) -> float:
    """The seconds between a tier's points: its resolution, or the tick for raw."""
    return tier.resolution or interval


def choose_tier(
    tiers: Sequence[Tier], now: float, start: float, step: float | None, interval: float
) -> Tier:
    """Among the tiers that still hold ``start``, the coarsest no coarser than ``step``,
    else the finest; the coarsest tier when none reaches back that far."""
    covering = [t for t in tiers if start >= now - t.retention - RETENTION_SLACK]
    if not covering:
        return tiers[-1]
    if step is not None:
        fine_enough = [t for t in covering if step_of(t, interval) <= step]
        if fine_enough:
            return fine_enough[-1]
    return covering[0]


def read_raw(
    db: sqlite3.Connection | None,
    host: str,
    start: float,
    end: float,
    fields: Sequence[str],
    pending: Iterable[tuple[float, Mapping[str, Any]]],
) -> Series:
    """Raw ticks of ``host`` in ``[start, end]``: the stored rows, then ``pending``."""
    series: Series = {name: {} for name in fields}
    rows: Iterable[tuple[float, Mapping[str, Any]]] = ()
    if db is not None:
        cursor = db.execute(
            "SELECT ts, body FROM raw WHERE host = ? AND ts >= ? AND ts <= ? ORDER BY ts",
            (host, start, end),
        )
        rows = ((ts, orjson.loads(body)) for ts, body in cursor)
    for timestamp, values in [*rows, *pending]:
        for name in fields:
            if name in values:
                value = values[name]
                series[name][timestamp] = Summary(1, value, value, value)
    return series


def read_tier(
    db: sqlite3.Connection | None,
    tier: Tier,
    host: str,
    start: float,
    end: float,
    fields: Sequence[str],
    tail: Tail,
) -> Series:
    """Buckets of ``tier`` for ``host`` in ``[start, end]``: the stored rows, then ``tail``
    (finer points not rolled up yet) re-bucketed to the tier, newer than any stored row."""
    series: Series = {name: {} for name in fields}
    first = bucket_start(start, tier.resolution)  # the bucket that holds ``start``
    if db is not None:
        for name in fields:
            cursor = db.execute(
                f"SELECT ts, n, avg, min, max FROM {tier.table}"
                " WHERE host = ? AND grp = ? AND ts >= ? AND ts <= ? ORDER BY ts",
                (host, name, first, end),
            )
            points = series[name]
            for ts, n, avg, low, high in cursor:
                points[ts] = summary_of(n, avg, low, high)
    for name in fields:
        parts = [(ts, groups[name]) for ts, groups in tail if name in groups]
        for ts, summary in rebucket(parts, tier.resolution).items():
            if first <= ts <= end:
                series[name][ts] = summary  # newer than a partial row from a shutdown
    return series


def by_timestamp(
    rows: Iterable[tuple[str, float, int, bytes, bytes, bytes]],
) -> Iterable[tuple[float, dict[str, Summary]]]:
    """Per-group rows ordered by time, as one mapping of group to summary per timestamp."""
    current: float | None = None
    groups: dict[str, Summary] = {}
    for group, ts, n, avg, low, high in rows:
        if ts != current:
            if current is not None:
                yield current, groups
            current, groups = ts, {}
        groups[group] = summary_of(n, avg, low, high)
    if current is not None:
        yield current, groups


def summary_of(n: int, avg: bytes, low: bytes, high: bytes) -> Summary:
    return Summary(n, orjson.loads(avg), orjson.loads(low), orjson.loads(high))


def rebucket(points: Iterable[tuple[float, Summary]], step: float) -> dict[float, Summary]:
    """Summaries (any order) merged into ``step``-second buckets, keyed by bucket start."""
    buckets: dict[float, list[Summary]] = {}
    for ts, summary in sorted(points, key=lambda point: point[0]):
        buckets.setdefault(bucket_start(ts, step), []).append(summary)
    return {start: combine(parts) for start, parts in buckets.items()}


def columns(
    series: Mapping[str, Mapping[float, Summary]],
    fields: Sequence[str],
    interval: float,
    step: float,
    aggregated: bool,
) -> dict[str, Any]:
    """``series`` in the columnar shape of ``GET /metrics/history``: one timestamp list and
    one value list per group (plus ``min`` and ``max`` when ``aggregated``)."""
    timestamps = sorted({ts for points in series.values() for ts in points})
    result: dict[str, Any] = {
        "interval": interval,
        "step": step,
        "fields": list(fields),
        "timestamps": [round(ts, 3) for ts in timestamps],
        "values": {},
    }
    kinds = ("values", "min", "max") if aggregated else ("values",)
    for kind in kinds:
        result[kind] = {}
    missing = Summary(0, None, None, None)
    for name in fields:
        points = series[name]
        column = [points.get(ts, missing) for ts in timestamps]
        result["values"][name] = [summary.avg for summary in column]
        if aggregated:
            result["min"][name] = [summary.min for summary in column]
            result["max"][name] = [summary.max for summary in column]
    return result
