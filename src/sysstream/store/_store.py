"""The history store: samples kept across restarts in an embedded SQLite file, in tiers.

Raw ticks are kept for an hour, 1-minute min/avg/max for 7 days, 15-minute for 90 days
(:data:`DEFAULT_TIERS`; retention per tier is a setting). :meth:`HistoryStore.record` runs
on the event loop and only appends to an in-memory batch; a writer thread writes the batch
every ``flush_interval`` seconds in one transaction, rolls closed buckets up into the
coarser tiers (:mod:`sysstream.store._writer`) and prunes rows past their tier's retention once a
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
import enum
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from .._registry import GROUPS
from .._sample import Sample
from .._settings import Settings
from ..sansio import RESERVED_HOST_ID
from ._queries import choose_tier, columns, read_raw, read_tier, rebucket, step_of
from ._schema import FILE_NAME, StoreUnavailable, open_database
from ._tiers import DEFAULT_TIERS, Tier, check_tiers, tiers_with_retention
from ._writer import TierWriter, Writes, pending_summaries

__all__ = [
    "DEFAULT_TIERS",
    "FILE_NAME",
    "LOCAL_HOST",
    "HistoryStore",
    "HostRecorder",
    "QueryAborted",
    "StoreState",
    "Tier",
    "store_from_settings",
    "tiers_with_retention",
]

logger = logging.getLogger("sysstream")

LOCAL_HOST = RESERVED_HOST_ID  # agents may not use it, so it never mixes with a remote host
# Points waiting for the writer. Reached only if the writer is stuck (a hung disk): about
# 2.8 h of 1 s ticks for one host; older points are dropped first.
MAX_PENDING = 10_000


class StoreState(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    DISABLED = "disabled"  # could not open the file; records are dropped
    STOPPED = "stopped"


# A query runs under the connection's lock: one that takes longer than this (a week of
# every group, re-bucketed) is cut short rather than holding the writer and other queries.
QUERY_SECONDS = 10.0


class QueryAborted(RuntimeError):
    """A query was cut short: it ran past ``QUERY_SECONDS`` or the store is closing."""


class HostRecorder:
    """A hub recorder that files one host's samples in a :class:`HistoryStore`."""

    def __init__(self, store: HistoryStore, host: str) -> None:
        self.store = store
        self.host = host

    def record(self, sample: Sample) -> None:
        self.store.record(sample, host=self.host)

    def __repr__(self) -> str:
        return f"HostRecorder({self.store.path}, host={self.host!r})"


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
        check_tiers(tiers)
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self.interval = interval
        self.flush_interval = flush_interval
        self.tiers = tuple(tiers)
        self.clock = clock
        self.state = StoreState.CREATED
        self.dropped = 0  # points lost to failed writes or a full batch
        self._kept = frozenset(name for name, group in GROUPS.items() if group.history)
        self._pending: collections.deque[tuple[str, float, dict[str, Any]]] = collections.deque(
            maxlen=MAX_PENDING
        )
        self._pending_lock = threading.Lock()  # held for an append or a swap, never for I/O
        self._lock = threading.Lock()  # the connection and the writer's rollups
        self._db: sqlite3.Connection | None = None
        self._owner: IO[bytes] | None = None  # the lock file held while open
        self._tiers = TierWriter(self.tiers, prune_interval)
        self._failing = False
        self._stopping = threading.Event()
        self._writer: threading.Thread | None = None
        self._closing = False  # read by running queries' progress handler

    def estimate_points(self, start: float, end: float, step: float | None = None) -> int:
        """How many points per field a query of ``[start, end]`` at ``step`` returns at
        most: what a caller bounds before running it."""
        native = step_of(self.choose_tier(start, step), self.interval)
        return math.floor((end - start) / max(native, step or 0.0)) + 1

    def __repr__(self) -> str:
        return f"HistoryStore({str(self.path)!r}, {self.state.value})"

    @property
    def prune_interval(self) -> float:
        return self._tiers.prune_interval

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
            self._db, self._owner = open_database(self.directory, self.tiers)
            with self._lock:
                self._tiers.write(self._db, self._tiers.load(self._db), self.clock())
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
        """Stop the writer and write everything: pending points and open buckets. A query
        still running is cut short (:class:`QueryAborted`), so closing never waits on one."""
        self._closing = True
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

    # Writing (writer thread)

    def _write_periodically(self) -> None:
        while not self._stopping.wait(self.flush_interval):
            self.flush()

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
            writes = Writes()
            for host, timestamp, values in batch:
                self._tiers.add_point(host, timestamp, values, writes)
            if final:
                self._tiers.drain(writes)
            try:
                self._tiers.write(self._db, writes, self.clock())
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

    # Reading (any thread)

    def hosts(self) -> list[str]:
        """Hosts with stored history."""
        with self._lock:
            return sorted(self._tiers.hosts)

    def choose_tier(self, start: float, step: float | None = None) -> Tier:
        """The tier a range starting at ``start`` is read from: among the tiers that still
        hold ``start``, the coarsest no coarser than ``step``, else the finest; the coarsest
        tier when none reaches back that far."""
        return choose_tier(self.tiers, self.clock(), start, step, self.interval)

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
        deadline = time.monotonic() + QUERY_SECONDS

        def cut_short() -> int:  # SQLite aborts the statement when this returns non-zero
            return self._closing or time.monotonic() > deadline

        with self._lock:
            if self._db is not None:
                self._db.set_progress_handler(cut_short, 10_000)
            try:
                if tier.resolution == 0:
                    pending = self._pending_points(host, start, end)
                    series = read_raw(self._db, host, start, end, fields, pending)
                else:
                    level = self.tiers.index(tier)
                    tail = self._tiers.open_tail(host, level)
                    tail += pending_summaries(self._pending_points(host, -math.inf, math.inf))
                    series = read_tier(self._db, tier, host, start, end, fields, tail)
            except sqlite3.OperationalError as exc:
                if not cut_short():
                    raise
                why = "the store is closing" if self._closing else f"over {QUERY_SECONDS:g} s"
                raise QueryAborted(f"history query cut short: {why}") from exc
            finally:
                if self._db is not None:
                    self._db.set_progress_handler(None, 0)
        native = step_of(tier, self.interval)
        aggregated = tier.resolution > 0
        if step is not None and step > native:
            series = {name: rebucket(points.items(), step) for name, points in series.items()}
            native, aggregated = step, True
        return columns(series, fields, self.interval, native, aggregated)

    def _pending_points(
        self, host: str, start: float, end: float
    ) -> list[tuple[float, dict[str, Any]]]:
        with self._pending_lock:
            pending = list(self._pending)
        return [(ts, values) for h, ts, values in pending if h == host and start <= ts <= end]


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
