"""The SQLite history store: tiers, restarts, crashes, pruning and files it cannot use."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sysstream._sample import Sample
from sysstream.sansio._rollup import bucket_start
from sysstream.store import _store
from sysstream.store._store import (
    FILE_NAME,
    HistoryStore,
    QueryAborted,
    StoreState,
    tiers_with_retention,
)

from .conftest import RunningServer, receive_json, ws_client

Opened = Callable[..., HistoryStore]


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[Opened]:
    stores: list[HistoryStore] = []

    def factory(directory: Path | None = None, **options: Any) -> HistoryStore:
        options.setdefault("interval", 1.0)
        options.setdefault("flush_interval", 3600.0)  # tests flush explicitly
        store = HistoryStore(directory or tmp_path / "data", **options)
        store.open()
        stores.append(store)
        return store

    yield factory
    for store in stores:
        store.close()


def point(i: int, timestamp: float, host_note: str = "vda") -> Sample:
    """Tick ``i`` of a series whose min/avg/max per bucket are known in closed form:
    ``cpu`` is ``i`` itself, and ``mounts`` carries a text leaf that changes."""
    return Sample(
        i,
        timestamp,
        {
            "cpu": float(i),
            "load": {"load1": float(i % 2), "load5": 1.0},
            "mounts": {"/": {"device": f"/dev/{host_note}{i}", "percent": float(i)}},
            "processes": {"count": 1},  # never stored
        },
    )


def record_series(store: HistoryStore, start: float, first: int, count: int) -> None:
    for i in range(first, first + count):
        store.record(point(i, start + i))


def rows(directory: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(directory / FILE_NAME)) as db:
        return db.execute(sql).fetchall()


def test_tier_rollups_match_a_series_with_known_min_avg_max(open_store: Opened) -> None:
    start = bucket_start(time.time() - 2 * 3600, 900)  # older than the raw tier keeps
    store = open_store()
    record_series(store, start, 0, 3600)
    store.flush()

    minutes = store.query(start, start + 3599, ["cpu", "mounts", "load"])
    assert minutes["step"] == 60 and minutes["interval"] == 1.0
    assert minutes["timestamps"] == [start + 60 * m for m in range(60)]
    for m in range(59):  # the last minute is still open: complete buckets only
        assert minutes["values"]["cpu"][m] == 60 * m + 29.5
        assert minutes["min"]["cpu"][m] == 60 * m
        assert minutes["max"]["cpu"][m] == 60 * m + 59
        last = 60 * m + 59
        assert minutes["values"]["mounts"][m] == {
            "/": {"device": f"/dev/vda{last}", "percent": 60 * m + 29.5}
        }
        assert minutes["values"]["load"][m] == {"load1": 0.5, "load5": 1.0}
        assert minutes["max"]["load"][m] == {"load1": 1.0, "load5": 1.0}

    quarters = store.query(start, start + 3599, ["cpu"], step=900)
    assert quarters["step"] == 900
    assert quarters["timestamps"] == [start + 900 * q for q in range(4)]
    assert quarters["values"]["cpu"][:3] == [900 * q + 449.5 for q in range(3)]
    assert quarters["min"]["cpu"][:3] == [900 * q for q in range(3)]
    assert quarters["max"]["cpu"][:3] == [900 * q + 899 for q in range(3)]
    # The open quarter is the open minutes so far: points 2700..3599.
    assert quarters["values"]["cpu"][3] == (2700 + 3599) / 2
    assert rows(store.directory, "SELECT COUNT(*) FROM agg_15m WHERE grp = 'cpu'") == [(3,)]


def test_processes_are_not_stored(open_store: Opened) -> None:
    store = open_store()
    record_series(store, time.time() - 10, 0, 5)
    store.flush()
    groups = {row[0] for row in rows(store.directory, "SELECT DISTINCT grp FROM agg_1m")}
    assert "processes" not in groups
    with pytest.raises(ValueError, match="expected fields kept in history"):
        store.query(time.time() - 60, time.time(), ["processes"])


def test_restart_keeps_history_and_completes_the_open_minute(
    open_store: Opened, tmp_path: Path
) -> None:
    start = bucket_start(time.time(), 60) - 240
    first = open_store()
    record_series(first, start, 0, 90)  # a minute and a half, then a clean stop
    first.close()
    assert rows(tmp_path / "data", "SELECT COUNT(*) FROM raw") == [(90,)]

    second = open_store()
    record_series(second, start, 90, 60)
    raw = second.query(start, start + 149, ["cpu"])
    assert raw["timestamps"] == [start + i for i in range(150)]  # flushed and pending
    second.close()

    third = open_store()
    minutes = third.query(start, start + 179, ["cpu"], step=60)
    assert minutes["timestamps"] == [start, start + 60, start + 120]
    # The middle minute spans the restart: points 60..119 from both runs.
    assert minutes["values"]["cpu"] == [29.5, 89.5, 134.5]
    assert minutes["min"]["cpu"] == [0, 60, 120]
    assert minutes["max"]["cpu"] == [59, 119, 149]


def test_clean_shutdown_writes_what_the_writer_had_not(open_store: Opened, tmp_path: Path) -> None:
    store = open_store()  # flush_interval is an hour: only close() writes
    start = bucket_start(time.time(), 60) - 120
    record_series(store, start, 0, 100)  # a closed minute, then 40 s of an open one
    assert rows(tmp_path / "data", "SELECT COUNT(*) FROM raw") == [(0,)]
    store.close()
    assert rows(tmp_path / "data", "SELECT COUNT(*) FROM raw") == [(100,)]
    # The open minute and quarter are written as they stand, not only the closed minute.
    minutes = "SELECT ts, n, min, max FROM agg_1m WHERE grp = 'cpu' ORDER BY ts"
    assert rows(tmp_path / "data", minutes) == [
        (start, 60, b"0.0", b"59.0"),
        (start + 60, 40, b"60.0", b"99.0"),
    ]
    quarter = "SELECT ts, n FROM agg_15m WHERE grp = 'cpu'"
    assert rows(tmp_path / "data", quarter) == [(bucket_start(start, 900), 100)]


def test_the_writer_flushes_on_its_interval(open_store: Opened, tmp_path: Path) -> None:
    store = open_store(flush_interval=0.1)
    record_series(store, time.time() - 10, 0, 10)
    deadline = time.monotonic() + 5
    while rows(tmp_path / "data", "SELECT COUNT(*) FROM raw") != [(10,)]:
        assert time.monotonic() < deadline, "the writer did not flush"
        time.sleep(0.05)


def test_old_rows_are_pruned_per_tier(open_store: Opened, tmp_path: Path) -> None:
    now = [bucket_start(time.time(), 900)]
    store = open_store(clock=lambda: now[0])
    start = now[0] - 2 * 3600
    record_series(store, start, 0, 2 * 3600)
    now[0] += 61  # pruning runs once a minute; it last ran at open
    store.flush()
    oldest = {
        table: rows(tmp_path / "data", f"SELECT MIN(ts) FROM {table}")[0][0]
        for table in ("raw", "agg_1m", "agg_15m")
    }
    assert oldest["raw"] >= now[0] - 3600  # pruned to the last hour
    assert oldest["agg_1m"] == oldest["agg_15m"] == start

    now[0] += 8 * 86400  # past the 1-minute tier's 7 days, within the 15-minute tier's 90
    store.flush()
    assert rows(tmp_path / "data", "SELECT COUNT(*) FROM raw") == [(0,)]
    assert rows(tmp_path / "data", "SELECT COUNT(*) FROM agg_1m") == [(0,)]
    assert rows(tmp_path / "data", "SELECT COUNT(*) FROM agg_15m WHERE grp = 'cpu'") == [(7,)]
    assert store.choose_tier(start).name == "15m"


def test_the_tier_follows_the_range_and_the_step(open_store: Opened) -> None:
    store = open_store()
    now = time.time()
    assert store.choose_tier(now - 600).name == "raw"
    assert store.choose_tier(now - 600, step=60).name == "1m"
    assert store.choose_tier(now - 6 * 3600).name == "1m"
    assert store.choose_tier(now - 7 * 86400).name == "1m"
    assert store.choose_tier(now - 30 * 86400).name == "15m"
    assert store.choose_tier(now - 365 * 86400).name == "15m"
    with pytest.raises(ValueError, match="expected finite start <= end"):
        store.query(now, now - 1, ["cpu"])
    with pytest.raises(ValueError, match="expected a step > 0"):
        store.query(now - 1, now, ["cpu"], step=0)


def test_hosts_are_kept_apart(open_store: Opened) -> None:
    store = open_store()
    now = time.time()
    store.recorder("web-1").record(Sample(1, now - 2, {"cpu": 10.0}))
    store.recorder("web-2").record(Sample(1, now - 2, {"cpu": 20.0}))
    store.flush()
    assert store.hosts() == ["web-1", "web-2"]
    assert store.query(now - 5, now, ["cpu"], host="web-2")["values"] == {"cpu": [20.0]}
    assert store.query(now - 5, now, ["cpu"])["values"] == {"cpu": []}  # "local" has none


def test_a_query_reads_its_host_only_before_the_flush_too(open_store: Opened) -> None:
    store = open_store()
    now = time.time()
    store.recorder("web-1").record(Sample(1, now - 2, {"cpu": 10.0}))
    store.recorder("web-2").record(Sample(1, now - 2, {"cpu": 20.0}))
    # Not flushed: both are pending, and each query sees its own host's point only.
    assert store.query(now - 5, now, ["cpu"], host="web-2")["values"] == {"cpu": [20.0]}
    assert store.query(now - 5, now, ["cpu"], step=60, host="web-1")["values"] == {"cpu": [10.0]}


def test_a_tier_read_includes_the_points_not_flushed_yet(open_store: Opened) -> None:
    store = open_store()
    start = bucket_start(time.time(), 60) - 180
    record_series(store, start, 0, 150)
    minutes = store.query(start, start + 149, ["cpu"], step=60)
    assert minutes["timestamps"] == [start, start + 60, start + 120]
    assert minutes["values"]["cpu"] == [29.5, 89.5, 134.5]
    assert minutes["min"]["cpu"] == [0, 60, 120]
    assert minutes["max"]["cpu"] == [59, 119, 149]


@pytest.mark.parametrize("flushed", [True, False])
def test_a_tier_read_is_bounded_by_its_range(open_store: Opened, flushed: bool) -> None:
    """Buckets are keyed by their start: the bucket holding ``start`` is in, and nothing
    after ``end`` is, stored or still open."""
    store = open_store()
    start = bucket_start(time.time(), 60) - 240
    record_series(store, start, 0, 210)  # three closed minutes, 30 s of a fourth
    if flushed:
        store.flush()
    minutes = store.query(start + 30, start + 90, ["cpu"], step=60)
    assert minutes["timestamps"] == [start, start + 60]
    assert minutes["values"]["cpu"] == [29.5, 89.5]
    minutes = store.query(start + 130, start + 150, ["cpu"], step=60)
    assert minutes["timestamps"] == [start + 120]
    assert minutes["values"]["cpu"] == [149.5]


def test_a_full_batch_drops_the_oldest_points_and_counts_them(
    open_store: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_store, "MAX_PENDING", 5)
    store = open_store()
    start = time.time() - 100
    record_series(store, start, 0, 8)
    assert store.dropped == 3
    store.flush()
    assert store.query(start, start + 10, ["cpu"])["values"]["cpu"] == [3, 4, 5, 6, 7]


def test_a_failed_write_counts_its_points_and_warns_once(
    open_store: Opened, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store()
    start = time.time() - 100
    real_write = store._tiers.write

    def full_disk(*args: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store._tiers, "write", full_disk)
    with caplog.at_level(logging.WARNING, logger="sysstream"):
        record_series(store, start, 0, 3)
        store.flush()
        record_series(store, start, 3, 4)
        store.flush()
        assert store.dropped == 7
        monkeypatch.setattr(store._tiers, "write", real_write)
        record_series(store, start, 7, 1)
        store.flush()
    assert store.dropped == 7
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "write failed, 3 points dropped" in warnings[0]
    assert warnings[1] == f"history store {store.path}: writing again"
    assert store.query(start, start + 10, ["cpu"])["values"]["cpu"] == [7]


def test_a_tier_must_keep_one_bucket_of_the_next(tmp_path: Path) -> None:
    # A restart rebuilds the open minute from raw rows: raw kept 30 s cannot rebuild it.
    with pytest.raises(ValueError, match="expected tier raw to be kept at least 60 s"):
        HistoryStore(tmp_path, interval=1.0, tiers=tiers_with_retention(30, 7 * 86400, 86400))
    with pytest.raises(ValueError, match="expected tier 1m to be kept at least 900 s"):
        HistoryStore(tmp_path, interval=1.0, tiers=tiers_with_retention(60, 600, 86400))
    HistoryStore(tmp_path, interval=1.0, tiers=tiers_with_retention(60, 900, 900))


def test_a_corrupt_file_is_moved_aside_and_a_new_one_started(
    open_store: Opened, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "data"
    directory.mkdir()
    garbage = os.urandom(16384)
    (directory / FILE_NAME).write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger="sysstream"):
        store = open_store()
    (moved,) = directory.glob(f"{FILE_NAME}.corrupt-*")
    assert moved.read_bytes() == garbage
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(directory / FILE_NAME) in warning and moved.name in warning
    assert "corrupt" in warning
    assert store.state is StoreState.RUNNING
    record_series(store, time.time() - 5, 0, 5)
    store.flush()
    assert len(store.query(time.time() - 10, time.time(), ["cpu"])["timestamps"]) == 5


def test_damaged_pages_are_caught_at_start(open_store: Opened, tmp_path: Path) -> None:
    directory = tmp_path / "data"
    store = open_store(directory)
    record_series(store, time.time() - 3000, 0, 3000)
    store.close()
    path = directory / FILE_NAME
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    data[2 * page : len(data) - page] = os.urandom(len(data) - 3 * page)  # keep the header
    path.write_bytes(bytes(data))
    reopened = open_store(directory)
    assert reopened.state is StoreState.RUNNING
    assert list(directory.glob(f"{FILE_NAME}.corrupt-*"))


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """A directory nobody can create files in, root included (root ignores modes)."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(directory)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
    else:
        directory.chmod(0o500)
        try:
            yield
        finally:
            directory.chmod(0o700)


def test_a_read_only_directory_disables_the_store(
    open_store: Opened, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "locked"
    with read_only(directory), caplog.at_level(logging.WARNING, logger="sysstream"):
        store = open_store(directory)
        assert store.state is StoreState.DISABLED
        store.record(point(1, time.time()))  # dropped, never raises
        store.flush()
        assert store.query(time.time() - 5, time.time(), ["cpu"])["timestamps"] == []
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("history store disabled")
    assert str(directory / FILE_NAME) in warning


async def test_the_stream_goes_on_when_the_store_cannot_write(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    directory = tmp_path / "locked"
    with read_only(directory):
        server = server_factory(interval=0.1, no_store=False, data_dir=str(directory))
        async with ws_client(server.ws_url()) as websocket:
            assert "cpu" in await receive_json(websocket)
            assert "cpu" in await receive_json(websocket)
    warnings = [r.getMessage() for r in server.log.records]
    assert any(m.startswith("history store disabled") for m in warnings)


async def test_kill_9_loses_at_most_the_flush_interval(tmp_path: Path) -> None:
    flush, interval = 1.0, 0.1
    env = {k: v for k, v in os.environ.items() if k != "SYSSTREAM_NO_STORE"}
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "sysstream", "serve", "--port", "0"),
        *("--interval", str(interval), "--flush-interval", str(flush)),
        *("--data-dir", str(tmp_path)),
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(15):
            while b"Application startup complete" not in await process.stderr.readline():
                pass
            # Run past a few flushes, then kill at a point unrelated to the flush cadence.
            while not rows(tmp_path, "SELECT COUNT(*) FROM raw")[0][0]:
                await asyncio.sleep(0.05)
            await asyncio.sleep(2.5 * flush + 0.37)
        killed = time.time()
        process.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(process.wait(), 10) == -signal.SIGKILL
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    store = HistoryStore(tmp_path, interval=interval)
    store.open()
    try:
        assert store.state is StoreState.RUNNING
        kept = store.query(killed - 60, killed, ["cpu"])["timestamps"]
    finally:
        store.close()
    assert len(kept) >= 2.5 * flush / interval
    # The last flush wrote everything sampled before it; what came after is the loss.
    assert killed - kept[-1] <= flush + interval + 0.5


def test_one_data_directory_has_one_writer(
    open_store: Opened, caplog: pytest.LogCaptureFixture
) -> None:
    first = open_store()
    with caplog.at_level(logging.WARNING, logger="sysstream"):
        second = open_store()
    assert first.state is StoreState.RUNNING and second.state is StoreState.DISABLED
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "is in use by another sysstream server" in warning
    first.close()
    assert open_store().state is StoreState.RUNNING  # the lock goes with the first store


@pytest.mark.parametrize(
    ("flags", "kept_raw"),
    [
        (("--retention-raw", "60"), [150]),  # the point 120 s old is past 60 s
        ((), [0, 150]),  # the default hour keeps both
    ],
)
async def test_retention_raw_flag_prunes_the_store_at_start(
    open_store: Opened, tmp_path: Path, flags: tuple[str, ...], kept_raw: list[int]
) -> None:
    """`sysstream serve --retention-raw`: raw rows past it go at the first flush; the
    minute roll-ups of the same time stay (their own retention is a week)."""
    now = time.time()
    store = open_store(tmp_path)
    store.record(point(0, now - 120))
    store.record(point(150, now - 30))
    store.close()  # writes both
    old_minute = bucket_start(now - 120, 60)
    env = {k: v for k, v in os.environ.items() if k != "SYSSTREAM_NO_STORE"}
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "sysstream", "serve", "--port", "0", "--interval", "0.5"),
        *("--flush-interval", "0.2", "--data-dir", str(tmp_path), *flags),
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(30):
            while b"Application startup complete" not in await process.stderr.readline():
                pass
            # The first flush prunes: wait for the server's own first tick on disk.
            while not rows(tmp_path, f"SELECT COUNT(*) FROM raw WHERE ts > {now}")[0][0]:
                await asyncio.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 10)
    old = rows(tmp_path, f"SELECT json_extract(body, '$.cpu') FROM raw WHERE ts < {now}")
    assert sorted(int(value) for (value,) in old) == kept_raw
    minutes = rows(tmp_path, f"SELECT ts FROM agg_1m WHERE grp = 'cpu' AND ts <= {old_minute}")
    assert minutes == [(old_minute,)]


def test_a_query_running_too_long_or_at_close_is_cut_short(
    open_store: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 13: a week of every group took 7 s of CPU under the connection's lock, and a
    # SIGTERM waited for every query in flight. SQLite's progress handler now cuts a query
    # short past its deadline or as soon as the store closes.
    store = open_store()
    start = time.time() - 3000
    record_series(store, start, 0, 2900)
    store.flush()
    assert len(store.query(start, start + 2900, ["cpu"])["timestamps"]) == 2900
    monkeypatch.setattr(_store, "QUERY_SECONDS", 0.0)
    with pytest.raises(QueryAborted, match=r"^history query cut short: over 0 s$"):
        store.query(start, start + 2900, ["cpu", "load", "mounts"])
    monkeypatch.setattr(_store, "QUERY_SECONDS", 10.0)
    store._closing = True  # what close() sets first, before it waits for the lock
    with pytest.raises(QueryAborted, match="the store is closing"):
        store.query(start, start + 2900, ["cpu"])
