"""Opening the store's file: one owner per file, schema and migrations, corrupt-file recovery.

:func:`open_database` returns a connection to a checked file in WAL mode, creating the
tables of the given tiers. A corrupt file is moved aside as ``<name>.corrupt-<UTC time>``
and a new one started; anything that makes the file unusable raises
:class:`StoreUnavailable` with a one-line reason.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one server per data dir is on the user
    fcntl = None  # type: ignore[assignment]

from ._tiers import Tier

__all__ = ["FILE_NAME", "SCHEMA_VERSION", "StoreUnavailable", "open_database"]

logger = logging.getLogger("sysstream")

FILE_NAME = "history.sqlite3"
SCHEMA_VERSION = 1
_CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


class StoreUnavailable(Exception):
    """The database cannot be opened or written; ``str()`` is one line."""


class _Corrupt(Exception):
    pass


def open_database(
    directory: Path, tiers: Sequence[Tier]
) -> tuple[sqlite3.Connection, IO[bytes] | None]:
    """The checked connection to ``directory``'s store, and the lock file held while open
    (``None`` where the platform has no advisory locks); close both when done."""
    path = directory / FILE_NAME
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailable(f"cannot create {directory}: {exc.strerror or exc}") from None
    owner = _take_ownership(path)
    try:
        try:
            return _open_checked(path, tiers), owner
        except _Corrupt as exc:
            moved = _move_aside(path)
            logger.warning(
                "history store %s is corrupt (%s); moved it to %s and started a new one",
                path,
                exc,
                moved.name,
            )
            try:
                return _open_checked(path, tiers), owner
            except _Corrupt as again:
                raise StoreUnavailable(
                    f"{path}: corrupt again after a fresh start: {again}"
                ) from None
    except BaseException:
        if owner is not None:
            owner.close()
        raise


def _take_ownership(path: Path) -> IO[bytes] | None:
    """One writer per file: two servers sharing a data directory would interleave two
    machines' (or two intervals') samples under one host id."""
    if fcntl is None:
        return None
    try:
        owner = open(path.with_name(FILE_NAME + ".lock"), "ab")  # noqa: SIM115
    except OSError as exc:
        raise StoreUnavailable(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        owner.close()
        raise StoreUnavailable(
            f"{path} is in use by another sysstream server"
            " (give each its own --data-dir, or --no-store)"
        ) from None
    return owner


def _open_checked(path: Path, tiers: Sequence[Tier]) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot open {path}: {exc}") from None
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
        _create_tables(db, tiers)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        db.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        db.close()
        if (exc.sqlite_errorcode & 0xFF) in _CORRUPT_CODES:
            raise _Corrupt(str(exc)) from None
        raise StoreUnavailable(f"cannot write {path}: {exc}") from None
    except BaseException:
        db.close()
        raise
    return db


def _create_tables(db: sqlite3.Connection, tiers: Sequence[Tier]) -> None:
    """Schema version 1: raw ticks as one JSON body per row; each coarser tier as one
    min/avg/max row per group and bucket."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS raw (host TEXT NOT NULL, ts REAL NOT NULL,"
        " body BLOB NOT NULL, PRIMARY KEY (host, ts))"
    )
    for tier in tiers[1:]:
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {tier.table} (host TEXT NOT NULL,"
            " grp TEXT NOT NULL, ts REAL NOT NULL, n INTEGER NOT NULL,"
            " avg BLOB, min BLOB, max BLOB, PRIMARY KEY (host, grp, ts))"
        )


def _move_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        path.rename(target)
        wal = path.with_name(path.name + "-wal")
        if wal.exists():
            wal.rename(target.with_name(target.name + "-wal"))
        path.with_name(path.name + "-shm").unlink(missing_ok=True)
    except OSError as exc:
        raise StoreUnavailable(
            f"{path} is corrupt and cannot be moved aside: {exc.strerror or exc}"
        ) from None
    return target
