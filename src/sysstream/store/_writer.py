"""Writing the store: ticks to rows, closed buckets rolled up tier by tier, pruning.

A :class:`TierWriter` owns the roll-ups that build each coarser tier from the finer one and
what it knows of the file's contents (hosts and series, for pruning). It is used on the
store's writer thread under the store's lock: points are fed in, the rows they produce
collect in a :class:`Writes`, and :meth:`TierWriter.write` commits one batch in one
transaction.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..sansio import Bucket, BucketRollup, Summary
from ._queries import Tail, by_timestamp
from ._tiers import Tier

__all__ = ["TierWriter", "Writes"]


@dataclass(slots=True)
class Writes:
    """One flush's rows, per table."""

    raw: list[tuple[str, float, bytes]] = field(default_factory=list)
    agg: dict[str, list[tuple[str, str, float, int, bytes, bytes, bytes]]] = field(
        default_factory=dict
    )

    def add(self, tier: Tier, bucket: Bucket) -> None:
        rows = self.agg.setdefault(tier.table, [])
        for group, summary in bucket.groups.items():
            rows.append(
                (
                    bucket.host,
                    group,
                    bucket.start,
                    summary.n,
                    orjson.dumps(summary.avg),
                    orjson.dumps(summary.min),
                    orjson.dumps(summary.max),
                )
            )


class TierWriter:
    """Roll-ups from each tier into the next, and the rows they close."""

    def __init__(self, tiers: Sequence[Tier], prune_interval: float) -> None:
        self.tiers = tuple(tiers)
        self.prune_interval = prune_interval
        # rollups[i] builds tier i + 1 from tier i.
        self.rollups = [BucketRollup(tier.resolution) for tier in self.tiers[1:]]
        self.series: set[tuple[str, str]] = set()  # (host, group) pairs, for pruning
        self.hosts: set[str] = set()
        self._next_prune = -math.inf

    def load(self, db: sqlite3.Connection) -> Writes:
        """Learn the file's hosts and series, and rebuild each host's open buckets."""
        self.hosts.update(row[0] for row in db.execute("SELECT DISTINCT host FROM raw"))
        for tier in self.tiers[1:]:
            query = f"SELECT DISTINCT host, grp FROM {tier.table}"
            self.series.update((host, group) for host, group in db.execute(query))
        self.hosts.update(host for host, _group in self.series)
        return self._rebuild_open_buckets(db)

    def _rebuild_open_buckets(self, db: sqlite3.Connection) -> Writes:
        """Refill the rollups with each host's newest bucket per tier, from the finer tier.

        The newest stored bucket of a tier may be a partial one written at shutdown (and
        after a crash the open one is not stored at all), so it is rebuilt from the finer
        tier's rows and left open. Coarser tiers are refilled first, so every rollup sees
        its points in time order.
        """
        writes = Writes()
        for host in sorted(self.hosts):
            # rebuilt[k]: tier k's buckets from here on are rebuilt from tier k - 1.
            rebuilt = [math.inf] + [
                self._rebuilt_from(db, host, k) for k in range(1, len(self.tiers))
            ]
            for level in range(len(self.rollups) - 1, 0, -1):
                rows = db.execute(
                    f"SELECT grp, ts, n, avg, min, max FROM {self.tiers[level].table}"
                    " WHERE host = ? AND ts >= ? AND ts < ? ORDER BY ts",
                    (host, rebuilt[level + 1], rebuilt[level]),
                )
                for start, summaries in by_timestamp(rows):
                    self._roll(level, host, start, summaries, writes)
            raws = db.execute(
                "SELECT ts, body FROM raw WHERE host = ? AND ts >= ? ORDER BY ts",
                (host, rebuilt[1]),
            )
            for timestamp, body in raws:
                self._roll(0, host, timestamp, orjson.loads(body), writes)
        return writes

    def _rebuilt_from(self, db: sqlite3.Connection, host: str, level: int) -> float:
        """Where tier ``level`` resumes: its newest bucket if the finer tier still holds rows
        of it (then rebuilt from them), else the end of that bucket (kept as stored)."""
        tier, finer = self.tiers[level], self.tiers[level - 1]
        (newest,) = db.execute(
            f"SELECT MAX(ts) FROM {tier.table} WHERE host = ?", (host,)
        ).fetchone()
        if newest is None:
            return -math.inf
        end = newest + tier.resolution
        (source_rows,) = db.execute(
            f"SELECT COUNT(*) FROM {finer.table} WHERE host = ? AND ts >= ? AND ts < ?",
            (host, newest, end),
        ).fetchone()
        return float(newest) if source_rows else float(end)

    def add_point(
        self, host: str, timestamp: float, values: Mapping[str, Any], writes: Writes
    ) -> None:
        """One tick: its raw row, and the buckets it closes."""
        writes.raw.append((host, timestamp, orjson.dumps(values)))
        self.hosts.add(host)
        self._roll(0, host, timestamp, values, writes)

    def drain(self, writes: Writes) -> None:
        """Write the open buckets as they stand (they are rebuilt on the next open)."""
        for level, rollup in enumerate(self.rollups):
            for bucket in rollup.drain():
                self._close_bucket(level, bucket, writes)

    def open_tail(self, host: str, level: int) -> Tail:
        """The open buckets of the tiers finer than ``level``, coarsest first: what a read
        of tier ``level`` is missing from the file."""
        tail: Tail = []
        for rollup in reversed(self.rollups[:level]):
            bucket = rollup.open_summary(host)
            if bucket is not None:
                tail.append((bucket.start, bucket.groups))
        return tail

    def _roll(
        self, level: int, host: str, timestamp: float, items: Mapping[str, Any], writes: Writes
    ) -> None:
        """Feed a point (level 0) or a finer tier's bucket into rollup ``level``."""
        if level >= len(self.rollups):
            return
        rollup = self.rollups[level]
        if level == 0:
            closed = rollup.add_values(host, timestamp, items)
        else:
            closed = rollup.add_summaries(host, timestamp, items)
        for bucket in closed:
            self._close_bucket(level, bucket, writes)

    def _close_bucket(self, level: int, bucket: Bucket, writes: Writes) -> None:
        writes.add(self.tiers[level + 1], bucket)
        self.series.update((bucket.host, group) for group in bucket.groups)
        self._roll(level + 1, bucket.host, bucket.start, bucket.groups, writes)

    def write(self, db: sqlite3.Connection, writes: Writes, now: float) -> None:
        """Commit ``writes`` in one transaction, pruning old rows when due."""
        prune = now >= self._next_prune
        if not writes.raw and not writes.agg and not prune:
            return
        db.execute("BEGIN")
        try:
            db.executemany("INSERT OR REPLACE INTO raw VALUES (?, ?, ?)", writes.raw)
            for table, rows in writes.agg.items():
                db.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            if prune:
                self._prune(db, now)
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        if prune:
            self._next_prune = now + self.prune_interval

    def _prune(self, db: sqlite3.Connection, now: float) -> None:
        raw = self.tiers[0]
        db.executemany(
            "DELETE FROM raw WHERE host = ? AND ts < ?",
            [(host, now - raw.retention) for host in self.hosts],
        )
        for tier in self.tiers[1:]:
            db.executemany(
                f"DELETE FROM {tier.table} WHERE host = ? AND grp = ? AND ts < ?",
                [(host, group, now - tier.retention) for host, group in self.series],
            )


def pending_summaries(points: Sequence[tuple[float, Mapping[str, Any]]]) -> Tail:
    """Pending ticks as one-point summaries, to sit in a tier read's tail."""
    return [(ts, {k: Summary(1, v, v, v) for k, v in values.items()}) for ts, values in points]
