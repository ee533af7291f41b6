"""The history store: samples kept across restarts in an embedded SQLite file, in tiers.

Raw ticks are kept for an hour, 1-minute min/avg/max for 7 days, 15-minute for 90 days
(:data:`DEFAULT_TIERS`; retention per tier is a setting). :meth:`HistoryStore.record` runs
on the event loop and only appends to an in-memory batch; a writer thread writes the batch
every ``flush_interval`` seconds in one transaction, rolls closed buckets up into the
coarser tiers (``_store_rollup.py``) and prunes rows past their tier's retention once a
minute. The file is in WAL mode with ``synchronous=NORMAL``: a killed process loses at most
the batch not yet flushed, and a clean :meth:`~HistoryStore.close` flushes everything,
including the buckets still open.

Rows are keyed by host, so one store holds a fleet: ``store.recorder("web-1")`` is the hub
recorder for that host's samples, and ``store.query(…, host="web-1")`` reads them back.

A store that cannot be used never stops the stream: a corrupt file is moved aside as
``<name>.corrupt-<UTC time>`` and a new one started; an unwritable directory leaves the
store disabled (records are dropped). Either way one warning names the file.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import itertools
import logging
import math
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one server per data dir is on the user
    fcntl = None  # type: ignore[assignment]

from .._registry import GROUPS
from .._sample import Sample
from .._settings import Settings
from ..sansio import RESERVED_HOST_ID, Bucket, BucketRollup, Summary, bucket_start, combine

__all__ = [
    "DEFAULT_TIERS",
    "FILE_NAME",
    "LOCAL_HOST",
    "HistoryStore",
    "HostRecorder",
    "StoreState",
    "Tier",
    "store_from_settings",
    "tiers_with_retention",
]

logger = logging.getLogger("sysstream")

FILE_NAME = "history.sqlite3"
LOCAL_HOST = RESERVED_HOST_ID  # agents may not use it, so it never mixes with a remote host
SCHEMA_VERSION = 1
DAY = 86400.0

# A range that starts this little before a tier's retention is still served from that tier
# (its first seconds may already be pruned), so "the last 7 days" reads the 1-minute tier
# although the request was computed a few milliseconds before the store looked at the clock.
RETENTION_SLACK = 60.0
# Points waiting for the writer. Reached only if the writer is stuck (a hung disk): about
# 2.8 h of 1 s ticks for one host; older points are dropped first.
MAX_PENDING = 10_000
_CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_TIER_NAME = re.compile(r"[a-z0-9_]+")


@dataclass(frozen=True, slots=True)
class Tier:
    """One resolution of history. ``resolution`` 0 means raw ticks (one row per sample)."""

    name: str
    resolution: float
    retention: float

    @property
    def table(self) -> str:
        return "raw" if self.resolution == 0 else f"agg_{self.name}"


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier("raw", 0, 3600),
    Tier("1m", 60, 7 * DAY),
    Tier("15m", 900, 90 * DAY),
)


def tiers_with_retention(raw: float, minute: float, quarter: float) -> tuple[Tier, ...]:
    """:data:`DEFAULT_TIERS` with the given retentions (seconds), as the settings give them."""
    retentions = (raw, minute, quarter)
    return tuple(
        Tier(tier.name, tier.resolution, retention)
        for tier, retention in zip(DEFAULT_TIERS, retentions, strict=True)
    )


def _check_tiers(tiers: Sequence[Tier]) -> None:
    if not tiers or tiers[0].resolution != 0:
        raise ValueError("expected the first tier to be raw ticks (resolution 0)")
    for tier in tiers:
        if not _TIER_NAME.fullmatch(tier.name):
            raise ValueError(f"expected a tier name of [a-z0-9_], got {tier.name!r}")
        if tier.retention <= 0:
            raise ValueError(f"expected a retention > 0 for tier {tier.name}, got {tier.retention}")
    for finer, coarser in itertools.pairwise(tiers):
        if finer.resolution and (
            coarser.resolution <= finer.resolution or coarser.resolution % finer.resolution
        ):
            raise ValueError(
                f"expected tier {coarser.name}'s resolution to be a multiple of "
                f"{finer.resolution:g} s, got {coarser.resolution:g} s"
            )
        # A restart rebuilds each tier's open bucket from the finer tier's rows.
        if finer.retention < coarser.resolution:
            raise ValueError(
                f"expected tier {finer.name} to be kept at least {coarser.resolution:g} s "
                f"(one {coarser.name} bucket), got {finer.retention:g} s"
            )


class StoreState(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    DISABLED = "disabled"  # could not open the file; records are dropped
    STOPPED = "stopped"


class StoreUnavailable(Exception):
    """The database cannot be opened or written; ``str()`` is one line."""


class _Corrupt(Exception):
    pass


class HostRecorder:
    """A hub recorder that files one host's samples in a :class:`HistoryStore`."""

    def __init__(self, store: HistoryStore, host: str) -> None:
        self.store = store
        self.host = host

    def record(self, sample: Sample) -> None:
        self.store.record(sample, host=self.host)

    def __repr__(self) -> str:
        return f"HostRecorder({self.store.path}, host={self.host!r})"


@dataclass(slots=True)
class _Writes:
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


class HistoryStore:
    """Samples of one or more hosts in ``<directory>/history.sqlite3``, in :class:`Tier` s.

    ``interval`` is the sampling interval (the raw tier's step). ``clock`` gives the time
    retention and tier choice are measured from (``time.time``; a benchmark simulating a
    year passes its own). Blocking methods (:meth:`open`, :meth:`close`, :meth:`flush`,
    :meth:`query`) are meant for a worker thread; :meth:`record` never blocks.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        interval: float,
        flush_interval: float = 5.0,
        tiers: Sequence[Tier] = DEFAULT_TIERS,
        prune_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval <= 0 or flush_interval <= 0 or prune_interval <= 0:
            raise ValueError(
                "expected interval, flush_interval and prune_interval > 0, got "
                f"{interval}, {flush_interval}, {prune_interval}"
            )
        _check_tiers(tiers)
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self.interval = interval
        self.flush_interval = flush_interval
        self.prune_interval = prune_interval
        self.tiers = tuple(tiers)
        self.clock = clock
        self.state = StoreState.CREATED
        self.dropped = 0  # points lost to failed writes or a full batch
        self._kept = frozenset(name for name, group in GROUPS.items() if group.history)
        self._pending: collections.deque[tuple[str, float, dict[str, Any]]] = collections.deque(
            maxlen=MAX_PENDING
        )
        self._pending_lock = threading.Lock()  # held for an append or a swap, never for I/O
        self._lock = threading.Lock()  # the connection and the rollups
        self._db: sqlite3.Connection | None = None
        self._owner: IO[bytes] | None = None  # the lock file held while open
        # _rollups[i] builds tier i + 1 from tier i.
        self._rollups = [BucketRollup(tier.resolution) for tier in self.tiers[1:]]
        self._series: set[tuple[str, str]] = set()  # (host, group) pairs, for pruning
        self._hosts: set[str] = set()
        self._next_prune = -math.inf
        self._failing = False
        self._stopping = threading.Event()
        self._writer: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"HistoryStore({str(self.path)!r}, {self.state.value})"

    # Recording (event loop)

    def recorder(self, host: str = LOCAL_HOST) -> HostRecorder:
        """The hub recorder for ``host``'s samples."""
        if not host:
            raise ValueError("expected a non-empty host id, got ''")
        return HostRecorder(self, host)

    def record(self, sample: Sample, host: str = LOCAL_HOST) -> None:
        """Queue ``sample`` for the next flush; O(groups), no I/O."""
        if self.state is StoreState.DISABLED or self.state is StoreState.STOPPED:
            return
        values = {name: value for name, value in sample.values.items() if name in self._kept}
        if not values:
            return
        with self._pending_lock:
            if len(self._pending) == MAX_PENDING:
                self.dropped += 1
            self._pending.append((host, sample.timestamp, values))

    # Lifecycle (blocking)

    def open(self) -> None:
        """Open (or create) the file, rebuild open buckets from it, start the writer.

        A store that cannot be opened logs one warning and ends up :attr:`StoreState.DISABLED`.
        """
        if self.state is not StoreState.CREATED:
            raise RuntimeError(f"expected a created store, got one {self.state.value}")
        try:
            self._db = self._connect()
            with self._lock:
                self._load_series()
                self._write(self._rebuild_open_buckets())
        except (StoreUnavailable, sqlite3.Error, OSError) as exc:
            self._close_db()
            self.state = StoreState.DISABLED
            with self._pending_lock:
                self._pending.clear()
            logger.warning("history store disabled, the stream goes on without it: %s", exc)
            return
        self.state = StoreState.RUNNING
        self._writer = threading.Thread(
            target=self._write_periodically, name="sysstream-store", daemon=True
        )
        self._writer.start()

    def close(self) -> None:
        """Stop the writer and write everything: pending points and open buckets."""
        if self.state is StoreState.RUNNING:
            self._stopping.set()
            if self._writer is not None:
                self._writer.join()
            self.flush(final=True)
        self._close_db()
        self.state = StoreState.STOPPED

    def _close_db(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            if self._owner is not None:
                self._owner.close()  # releases the lock
                self._owner = None

    def _write_periodically(self) -> None:
        while not self._stopping.wait(self.flush_interval):
            self.flush()

    # Opening

    def _connect(self) -> sqlite3.Connection:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot create {self.directory}: {exc.strerror or exc}"
            ) from None
        self._owner = self._take_ownership()
        try:
            return self._open_checked()
        except _Corrupt as exc:
            moved = self._move_aside()
            logger.warning(
                "history store %s is corrupt (%s); moved it to %s and started a new one",
                self.path,
                exc,
                moved.name,
            )
            try:
                return self._open_checked()
            except _Corrupt as again:
                raise StoreUnavailable(
                    f"{self.path}: corrupt again after a fresh start: {again}"
                ) from None

    def _take_ownership(self) -> IO[bytes] | None:
        """One writer per file: two servers sharing a data directory would interleave two
        machines' (or two intervals') samples under one host id."""
        if fcntl is None:
            return None
        try:
            owner = open(self.path.with_name(FILE_NAME + ".lock"), "ab")  # noqa: SIM115
        except OSError as exc:
            raise StoreUnavailable(f"cannot write {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner.close()
            raise StoreUnavailable(
                f"{self.path} is in use by another sysstream server"
                " (give each its own --data-dir, or --no-store)"
            ) from None
        return owner

    def _open_checked(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=5.0
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA journal_size_limit=8388608")
            problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
            if problems != ["ok"]:
                raise _Corrupt("; ".join(problems))
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version not in (0, SCHEMA_VERSION):
                raise _Corrupt(f"expected schema version {SCHEMA_VERSION}, got {version}")
            db.execute("BEGIN IMMEDIATE")  # also proves the file and directory are writable
            db.execute(
                "CREATE TABLE IF NOT EXISTS raw (host TEXT NOT NULL, ts REAL NOT NULL,"
                " body BLOB NOT NULL, PRIMARY KEY (host, ts))"
            )
            for tier in self.tiers[1:]:
                db.execute(
                    f"CREATE TABLE IF NOT EXISTS {tier.table} (host TEXT NOT NULL,"
                    " grp TEXT NOT NULL, ts REAL NOT NULL, n INTEGER NOT NULL,"
                    " avg BLOB, min BLOB, max BLOB, PRIMARY KEY (host, grp, ts))"
                )
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            db.close()
            if (exc.sqlite_errorcode & 0xFF) in _CORRUPT_CODES:
                raise _Corrupt(str(exc)) from None
            raise StoreUnavailable(f"cannot write {self.path}: {exc}") from None
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            self.path.rename(target)
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists():
                wal.rename(target.with_name(target.name + "-wal"))
            self.path.with_name(self.path.name + "-shm").unlink(missing_ok=True)
        except OSError as exc:
            raise StoreUnavailable(
                f"{self.path} is corrupt and cannot be moved aside: {exc.strerror or exc}"
            ) from None
        return target

    def _load_series(self) -> None:
        assert self._db is not None
        self._hosts.update(row[0] for row in self._db.execute("SELECT DISTINCT host FROM raw"))
        for tier in self.tiers[1:]:
            query = f"SELECT DISTINCT host, grp FROM {tier.table}"
            self._series.update((host, group) for host, group in self._db.execute(query))
        self._hosts.update(host for host, _group in self._series)

    def _rebuild_open_buckets(self) -> _Writes:
        """Refill the rollups with each host's newest bucket per tier, from the finer tier.

        The newest stored bucket of a tier may be a partial one written at shutdown (and
        after a crash the open one is not stored at all), so it is rebuilt from the finer
        tier's rows and left open. Coarser tiers are refilled first, so every rollup sees
        its points in time order.
        """
        assert self._db is not None
        writes = _Writes()
        for host in sorted(self._hosts):
            # rebuilt[k]: tier k's buckets from here on are rebuilt from tier k - 1.
            rebuilt = [math.inf] + [self._rebuilt_from(host, k) for k in range(1, len(self.tiers))]
            for level in range(len(self._rollups) - 1, 0, -1):
                rows = self._db.execute(
                    f"SELECT grp, ts, n, avg, min, max FROM {self.tiers[level].table}"
                    " WHERE host = ? AND ts >= ? AND ts < ? ORDER BY ts",
                    (host, rebuilt[level + 1], rebuilt[level]),
                )
                for start, summaries in _by_timestamp(rows):
                    self._roll(level, host, start, summaries, writes)
            raws = self._db.execute(
                "SELECT ts, body FROM raw WHERE host = ? AND ts >= ? ORDER BY ts",
                (host, rebuilt[1]),
            )
            for timestamp, body in raws:
                self._roll(0, host, timestamp, orjson.loads(body), writes)
        return writes

    def _rebuilt_from(self, host: str, level: int) -> float:
        """Where tier ``level`` resumes: its newest bucket if the finer tier still holds rows
        of it (then rebuilt from them), else the end of that bucket (kept as stored)."""
        assert self._db is not None
        tier, finer = self.tiers[level], self.tiers[level - 1]
        (newest,) = self._db.execute(
            f"SELECT MAX(ts) FROM {tier.table} WHERE host = ?", (host,)
        ).fetchone()
        if newest is None:
            return -math.inf
        end = newest + tier.resolution
        (source_rows,) = self._db.execute(
            f"SELECT COUNT(*) FROM {finer.table} WHERE host = ? AND ts >= ? AND ts < ?",
            (host, newest, end),
        ).fetchone()
        return float(newest) if source_rows else float(end)

    # Writing (writer thread)

    def flush(self, *, final: bool = False) -> None:
        """Write the pending points and the buckets they closed; prune when due.

        ``final`` also writes the open buckets as they stand (they are rebuilt, and then
        completed, on the next :meth:`open`).
        """
        with self._lock:
            if self._db is None:
                return
            with self._pending_lock:
                batch = list(self._pending)
                self._pending.clear()
            writes = _Writes()
            for host, timestamp, values in batch:
                writes.raw.append((host, timestamp, orjson.dumps(values)))
                self._hosts.add(host)
                self._roll(0, host, timestamp, values, writes)
            if final:
                for level, rollup in enumerate(self._rollups):
                    for bucket in rollup.drain():
                        self._close_bucket(level, bucket, writes)
            try:
                self._write(writes)
            except sqlite3.Error as exc:
                self.dropped += len(batch)
                if not self._failing:
                    logger.warning(
                        "history store %s: write failed, %d points dropped (warned once until"
                        " writes succeed again; the stream goes on): %s",
                        self.path,
                        len(batch),
                        exc,
                    )
                self._failing = True
                return
            if self._failing:
                logger.warning("history store %s: writing again", self.path)
                self._failing = False

    def _roll(
        self,
        level: int,
        host: str,
        timestamp: float,
        items: Mapping[str, Any],
        writes: _Writes,
    ) -> None:
        """Feed a point (level 0) or a finer tier's bucket into rollup ``level``."""
        if level >= len(self._rollups):
            return
        rollup = self._rollups[level]
        if level == 0:
            closed = rollup.add_values(host, timestamp, items)
        else:
            closed = rollup.add_summaries(host, timestamp, items)
        for bucket in closed:
            self._close_bucket(level, bucket, writes)

    def _close_bucket(self, level: int, bucket: Bucket, writes: _Writes) -> None:
        writes.add(self.tiers[level + 1], bucket)
        self._series.update((bucket.host, group) for group in bucket.groups)
        self._roll(level + 1, bucket.host, bucket.start, bucket.groups, writes)

    def _write(self, writes: _Writes) -> None:
        assert self._db is not None
        now = self.clock()
        prune = now >= self._next_prune
        if not writes.raw and not writes.agg and not prune:
            return
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany("INSERT OR REPLACE INTO raw VALUES (?, ?, ?)", writes.raw)
            for table, rows in writes.agg.items():
                db.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            if prune:
                self._prune(now)
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        if prune:
            self._next_prune = now + self.prune_interval

    def _prune(self, now: float) -> None:
        assert self._db is not None
        raw = self.tiers[0]
        self._db.executemany(
            "DELETE FROM raw WHERE host = ? AND ts < ?",
            [(host, now - raw.retention) for host in self._hosts],
        )
        for tier in self.tiers[1:]:
            self._db.executemany(
                f"DELETE FROM {tier.table} WHERE host = ? AND grp = ? AND ts < ?",
                [(host, group, now - tier.retention) for host, group in self._series],
            )

    # Reading (any thread)

    def hosts(self) -> list[str]:
        """Hosts with stored history."""
        with self._lock:
            return sorted(self._hosts)

    def choose_tier(self, start: float, step: float | None = None) -> Tier:
        """The tier a range starting at ``start`` is read from: among the tiers that still
        hold ``start``, the coarsest no coarser than ``step``, else the finest; the coarsest
        tier when none reaches back that far."""
        now = self.clock()
        covering = [t for t in self.tiers if start >= now - t.retention - RETENTION_SLACK]
        if not covering:
            return self.tiers[-1]
        if step is not None:
            fine_enough = [t for t in covering if self._step_of(t) <= step]
            if fine_enough:
                return fine_enough[-1]
        return covering[0]

    def _step_of(self, tier: Tier) -> float:
        return tier.resolution or self.interval

    def query(
        self,
        start: float,
        end: float,
        fields: Sequence[str],
        step: float | None = None,
        *,
        host: str = LOCAL_HOST,
    ) -> dict[str, Any]:
        """Points of ``host`` with ``start <= timestamp <= end``, in the columnar shape of
        ``GET /metrics/history`` plus ``step``; aggregated points (a coarser tier, or
        ``step`` above the tier's) also carry ``min`` and ``max`` shaped like ``values``.

        An aggregated point's timestamp is the start of its bucket.
        """
        unknown = [name for name in fields if name not in self._kept]
        if unknown:
            known = ", ".join(sorted(self._kept))
            raise ValueError(f"expected fields kept in history ({known}), got {unknown[0]!r}")
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise ValueError(f"expected finite start <= end, got {start}, {end}")
        if step is not None and not step > 0:
            raise ValueError(f"expected a step > 0 seconds, got {step}")
        tier = self.choose_tier(start, step)
        with self._lock:
            if tier.resolution == 0:
                series = self._read_raw(host, start, end, fields)
            else:
                series = self._read_tier(tier, host, start, end, fields)
        native = self._step_of(tier)
        aggregated = tier.resolution > 0
        if step is not None and step > native:
            series = {name: _rebucket(points.items(), step) for name, points in series.items()}
            native, aggregated = step, True
        return _columns(series, fields, self.interval, native, aggregated)

    def _read_raw(
        self, host: str, start: float, end: float, fields: Sequence[str]
    ) -> dict[str, dict[float, Summary]]:
        series: dict[str, dict[float, Summary]] = {name: {} for name in fields}
        rows: Iterable[tuple[float, dict[str, Any]]] = ()
        if self._db is not None:
            cursor = self._db.execute(
                "SELECT ts, body FROM raw WHERE host = ? AND ts >= ? AND ts <= ? ORDER BY ts",
                (host, start, end),
            )
            rows = ((ts, orjson.loads(body)) for ts, body in cursor)
        for timestamp, values in [*rows, *self._pending_points(host, start, end)]:
            for name in fields:
                if name in values:
                    value = values[name]
                    series[name][timestamp] = Summary(1, value, value, value)
        return series

    def _read_tier(
        self, tier: Tier, host: str, start: float, end: float, fields: Sequence[str]
    ) -> dict[str, dict[float, Summary]]:
        series: dict[str, dict[float, Summary]] = {name: {} for name in fields}
        if self._db is not None:
            for name in fields:
                cursor = self._db.execute(
                    f"SELECT ts, n, avg, min, max FROM {tier.table}"
                    " WHERE host = ? AND grp = ? AND ts >= ? AND ts <= ? ORDER BY ts",
                    (host, name, bucket_start(start, tier.resolution), end),
                )
                points = series[name]
                for ts, n, avg, low, high in cursor:
                    points[ts] = Summary(
                        n, orjson.loads(avg), orjson.loads(low), orjson.loads(high)
                    )
        # The buckets not written yet: each finer tier's open bucket and the pending points.
        level = self.tiers.index(tier)
        tail: list[tuple[float, Mapping[str, Summary]]] = []
        for rollup in reversed(self._rollups[:level]):
            bucket = rollup.open_summary(host)
            if bucket is not None:
                tail.append((bucket.start, bucket.groups))
        for timestamp, values in self._pending_points(host, -math.inf, math.inf):
            tail.append((timestamp, {k: Summary(1, v, v, v) for k, v in values.items()}))
        for name in fields:
            parts = [(ts, groups[name]) for ts, groups in tail if name in groups]
            for ts, summary in _rebucket(parts, tier.resolution).items():
                if ts <= end:
                    series[name][ts] = summary  # newer than a partial row from a shutdown
        return series

    def _pending_points(
        self, host: str, start: float, end: float
    ) -> list[tuple[float, dict[str, Any]]]:
        with self._pending_lock:
            pending = list(self._pending)
        return [(ts, values) for h, ts, values in pending if h == host and start <= ts <= end]


def _by_timestamp(
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
        groups[group] = _summary(n, avg, low, high)
    if current is not None:
        yield current, groups


def _summary(n: int, avg: bytes, low: bytes, high: bytes) -> Summary:
    return Summary(n, orjson.loads(avg), orjson.loads(low), orjson.loads(high))


def _rebucket(points: Iterable[tuple[float, Summary]], step: float) -> dict[float, Summary]:
    """Summaries (any order) merged into ``step``-second buckets, keyed by bucket start."""
    buckets: dict[float, list[Summary]] = {}
    for ts, summary in sorted(points, key=lambda point: point[0]):
        buckets.setdefault(bucket_start(ts, step), []).append(summary)
    return {start: combine(parts) for start, parts in buckets.items()}


def _columns(
    series: Mapping[str, Mapping[float, Summary]],
    fields: Sequence[str],
    interval: float,
    step: float,
    aggregated: bool,
) -> dict[str, Any]:
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


def store_from_settings(settings: Settings, interval: float) -> HistoryStore | None:
    """The server's store as the settings describe it; ``None`` with ``--no-store``."""
    if settings.no_store:
        return None
    return HistoryStore(
        settings.data_dir,
        interval=interval,
        flush_interval=settings.flush_interval,
        tiers=tiers_with_retention(
            settings.retention_raw, settings.retention_1m, settings.retention_15m
        ),
    )
