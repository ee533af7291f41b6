"""Alert events, the active set and silences on disk, beside the history store.

A small SQLite file of its own (``alerts.sqlite3`` in the data directory): transitions are
rare (a few a day), so it needs no batching, and keeping it apart from the sample tiers
means a corrupt history file never loses the alert log, nor the reverse. Every method
blocks on the file: callers run them in a worker thread. A file that cannot be used
leaves the log disabled (one warning); alerts are then kept in memory only.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

__all__ = ["ALERTS_FILE", "AlertLog"]

logger = logging.getLogger("sysstream")

ALERTS_FILE = "alerts.sqlite3"
MAX_ROWS = 10_000  # the most events one history query returns

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_events (
    at REAL NOT NULL, fingerprint TEXT NOT NULL, kind TEXT NOT NULL, body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_events_at ON alert_events (at);
CREATE TABLE IF NOT EXISTS alert_active (fingerprint TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS alert_silences (id TEXT PRIMARY KEY, body BLOB NOT NULL);
"""


class AlertLog:
    """Alert events by time, the firing set and the silences, in ``directory``."""

    def __init__(self, directory: str | Path, *, retention: float = 90 * 86400) -> None:
        self.path = Path(directory) / ALERTS_FILE
        self.retention = retention
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one statement at a time across worker threads

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def open(self) -> None:
        """Open (or create) the file; a file that is not a database is moved aside."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            moved = self.path.with_name(f"{ALERTS_FILE}.corrupt-{int(time.time())}")
            try:
                self.path.replace(moved)
                self._db = self._connect()
                logger.warning(
                    "alert log %s was unreadable (%s); moved to %s", self.path, exc, moved
                )
            except (OSError, sqlite3.Error) as again:
                logger.warning("alert log %s disabled: %s", self.path, again)
        except OSError as exc:
            logger.warning("alert log %s disabled: %s", self.path, exc.strerror or exc)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # Writes

    def record(
        self, events: Iterable[Mapping[str, Any]], active: Iterable[Mapping[str, Any]]
    ) -> None:
        """Append ``events`` (``at`` in epoch seconds under ``at_epoch``) and replace the
        saved active set, in one transaction."""
        rows = [(e["at_epoch"], e["fingerprint"], e["event"], orjson.dumps(e)) for e in events]
        current = [(a["fingerprint"], orjson.dumps(a)) for a in active]
        self._write(
            lambda db: (
                db.executemany("INSERT INTO alert_events VALUES (?, ?, ?, ?)", rows),
                db.execute("DELETE FROM alert_active"),
                db.executemany("INSERT INTO alert_active VALUES (?, ?)", current),
                db.execute(
                    "DELETE FROM alert_events WHERE at < ?", (time.time() - self.retention,)
                ),
            )
        )

    def save_silences(self, silences: Iterable[Mapping[str, Any]]) -> None:
        rows = [(s["id"], orjson.dumps(s)) for s in silences]
        self._write(
            lambda db: (
                db.execute("DELETE FROM alert_silences"),
                db.executemany("INSERT INTO alert_silences VALUES (?, ?)", rows),
            )
        )

    def _write(self, statements: Any) -> None:
        with self._lock:
            db = self._db
            if db is None:
                return
            try:
                db.execute("BEGIN IMMEDIATE")
                statements(db)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                logger.warning("alert log %s: write failed: %s", self.path, exc)

    # Reads

    def events(self, start: float, end: float, limit: int = MAX_ROWS) -> list[dict[str, Any]]:
        return self._read(
            "SELECT body FROM alert_events WHERE at >= ? AND at <= ? ORDER BY at, rowid LIMIT ?",
            (start, end, limit),
        )

    def active(self) -> list[dict[str, Any]]:
        return self._read("SELECT body FROM alert_active", ())

    def silences(self) -> list[dict[str, Any]]:
        return self._read("SELECT body FROM alert_silences", ())

    def _read(self, query: str, parameters: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._lock:
            if self._db is None:
                return []
            try:
                rows = self._db.execute(query, parameters).fetchall()
            except sqlite3.Error as exc:
                logger.warning("alert log %s: read failed: %s", self.path, exc)
                return []
        found: list[dict[str, Any]] = []
        for (body,) in rows:
            try:
                found.append(orjson.loads(body))
            except orjson.JSONDecodeError:
                continue
        return found
