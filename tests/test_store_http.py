"""``GET /metrics/history`` over the ring and the store, against real servers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from sysstream._registry import GROUPS
from sysstream.sansio._control import ControlError
from sysstream.web._history_route import MAX_CELLS, merge_ring, parse_range

from .conftest import RunningServer, stop_server

NOW = 1_762_777_845.0


def test_seconds_count_back_from_now() -> None:
    span = parse_range(seconds="300", start=None, end=None, step=None, now=NOW, limit=3600)
    assert (span.start, span.end, span.step) == (NOW - 300, NOW, None)


def test_from_and_to_take_epoch_seconds_or_iso_8601() -> None:
    iso = datetime.fromtimestamp(NOW - 7200, UTC).isoformat().replace("+00:00", "Z")
    span = parse_range(seconds="300", start=iso, end=str(NOW - 60), step="60", now=NOW, limit=86400)
    assert (span.start, span.end, span.step) == (NOW - 7200, NOW - 60, 60.0)
    naive = datetime.fromtimestamp(NOW - 600, UTC).replace(tzinfo=None).isoformat()
    assert parse_range(
        seconds=None, start=naive, end=None, step=None, now=NOW, limit=900
    ).start == (NOW - 600)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"start": "yesterday"}, "expected from as epoch seconds or ISO-8601, got 'yesterday'"),
        ({"end": "nan"}, "expected to as epoch seconds or ISO-8601"),
        ({"seconds": "-5"}, "expected seconds from 0 to 3600, got -5"),
        ({"seconds": "soon"}, "expected seconds from 0 to 3600, got 'soon'"),
        ({"step": "0"}, "expected step as a number of seconds > 0, got '0'"),
        ({"start": str(NOW), "end": str(NOW - 1)}, "expected from <= to"),
        ({"seconds": "7200"}, "expected seconds from 0 to 3600, got 7200"),
        ({"seconds": "60", "end": str(NOW - 3590)}, "expected a range within the last 3600 s"),
    ],
)
def test_bad_ranges_get_one_line(arguments: dict[str, Any], message: str) -> None:
    given = {"seconds": None, "start": None, "end": None, "step": None, **arguments}
    with pytest.raises(ControlError, match=message.replace("(", r"\(")):
        parse_range(**given, now=NOW, limit=3600)


def test_the_ring_replaces_the_stores_newest_points() -> None:
    stored = {"timestamps": [1.0, 2.0, 3.0], "values": {"cpu": [10.0, 20.0, 30.0]}, "step": 1}
    ring = {"timestamps": [3.0, 4.0], "values": {"cpu": [31.0, 40.0]}}
    merged = merge_ring(stored, orjson.dumps(ring), oldest=3.0)
    assert merged["timestamps"] == [1.0, 2.0, 3.0, 4.0]
    assert merged["values"] == {"cpu": [10.0, 20.0, 31.0, 40.0]}


async def get(server: RunningServer, start: Any = None, **params: Any) -> httpx.Response:
    """``GET /metrics/history`` with ``start`` as ``from=`` (a Python keyword)."""
    if start is not None:
        params["from"] = start
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        return await client.get("/api/system/metrics/history", params=params)


async def test_errors_name_the_seconds_parameter_with_and_without_a_store(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    ring_only = server_factory(interval=0.2, history_seconds=60)  # conftest: no store
    stored = server_factory(interval=0.2, no_store=False, data_dir=str(tmp_path))
    answers = {
        # The ring's own route, and the store's code path that serves it with a step.
        ("ring", "4000"): await get(ring_only, seconds="4000"),
        ("ring", "-5"): await get(ring_only, seconds="-5"),
        ("ring+step", "4000"): await get(ring_only, seconds="4000", step="1"),
        ("ring+step", "abc"): await get(ring_only, seconds="abc", step="1"),
        ("store", "-5"): await get(stored, seconds="-5"),
        ("store", "abc"): await get(stored, seconds="abc"),
    }
    assert {key: (r.status_code, r.json()["error"]) for key, r in answers.items()} == {
        ("ring", "4000"): (400, "expected seconds from 0 to 60, got 4000"),
        ("ring", "-5"): (400, "expected seconds from 0 to 60, got -5"),
        ("ring+step", "4000"): (400, "expected seconds from 0 to 60, got 4000"),
        ("ring+step", "abc"): (400, "expected seconds from 0 to 60, got 'abc'"),
        ("store", "-5"): (400, "expected seconds >= 0, got -5"),
        ("store", "abc"): (400, "expected seconds >= 0, got 'abc'"),
    }


async def test_history_from_before_a_restart_is_served_from_the_store(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    options = {"interval": 0.1, "no_store": False, "data_dir": str(tmp_path), "flush_interval": 5}
    first = server_factory(**options)
    await first.wait_until(lambda: first.hub.stats.ticks >= 10)
    before = (await get(first, seconds="60", fields="cpu,net")).json()
    stop_server(first)  # a clean stop writes what the 5 s flush had not
    assert len(before["timestamps"]) >= 10

    second = server_factory(**options)
    await second.wait_until(lambda: second.hub.stats.ticks >= 3)
    since = before["timestamps"][0] - 0.001
    body = (await get(second, start=since, fields="cpu,net")).json()
    assert body["fields"] == ["cpu", "net"] and body["step"] == 0.1
    assert body["timestamps"][: len(before["timestamps"])] == before["timestamps"]
    assert body["values"]["cpu"][: len(before["timestamps"])] == before["values"]["cpu"]
    assert len(body["timestamps"]) > len(before["timestamps"])  # and the new run"s ticks
    assert body["timestamps"] == sorted(body["timestamps"])

    # Per minute: the min, mean and max of exactly the raw points in that minute. Read from
    # a server that ticks once an hour, so no point arrives between the two reads.
    stop_server(second)
    third = server_factory(**{**options, "interval": 3600})
    raw = (await get(third, start=since, fields="cpu")).json()
    assert raw["timestamps"][: len(body["timestamps"])] == body["timestamps"]
    iso = datetime.fromtimestamp(since, UTC).isoformat()
    minutes = (await get(third, start=iso, step="60", fields="cpu")).json()
    assert minutes["step"] == 60
    assert minutes["timestamps"], minutes
    for index, bucket in enumerate(minutes["timestamps"]):
        points = [
            value
            for moment, value in zip(raw["timestamps"], raw["values"]["cpu"], strict=True)
            if bucket <= moment < bucket + 60 and value is not None
        ]
        assert minutes["min"]["cpu"][index] == min(points)
        assert minutes["max"]["cpu"][index] == max(points)
        assert minutes["values"]["cpu"][index] == pytest.approx(sum(points) / len(points), abs=1e-3)


async def test_bad_ranges_and_unstored_fields_get_400(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = server_factory(interval=0.2, no_store=False, data_dir=str(tmp_path))
    bad = await get(server, start="last-tuesday")
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("expected from as epoch seconds or ISO-8601")
    unstored = await get(server, seconds="60", fields="processes")
    assert unstored.status_code == 400
    assert unstored.json()["error"] == "field 'processes' is not kept in history"


async def test_without_a_store_the_ring_bounds_the_range(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory(interval=0.2, history_seconds=60)  # conftest: no store
    await server.wait_until(lambda: server.hub.stats.ticks >= 2)
    recent = await get(server, start="0", to="1")
    assert recent.status_code == 400
    assert "expected a range within the last 60 s" in recent.json()["error"]
    ok = (await get(server, seconds="30", step="0.2")).json()
    assert ok["step"] == 0.2 and len(ok["timestamps"]) >= 2
    for extra in ({}, {"step": "0.2"}):  # the ring's own route and the store's, as with one
        unstored = await get(server, seconds="30", fields="cpu,processes", **extra)
        assert unstored.status_code == 400
        assert unstored.json()["error"] == "field 'processes' is not kept in history"


async def test_a_query_past_the_points_limit_gets_400_naming_it(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    # Issue 13: a week of every group at step=61 cost 7 s of CPU and ~84 MB.
    server = server_factory(interval=0.2, no_store=False, data_dir=str(tmp_path))
    kept = ",".join(name for name, group in GROUPS.items() if group.history)
    heavy = await get(server, seconds=str(7 * 86400), fields=kept, step="61")
    assert heavy.status_code == 400
    assert heavy.json()["error"].startswith(
        f"expected at most {MAX_CELLS} points x fields per query, got 9915 points x 15 fields"
    )
    light = await get(server, seconds=str(7 * 86400), fields="cpu,memory", step="3600")
    assert light.status_code == 200 and light.json()["step"] == 3600


async def test_store_queries_past_the_gate_get_503_and_then_run(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = server_factory(interval=0.2, no_store=False, data_dir=str(tmp_path))
    gate = server.app.state.history_queries
    capacity = gate.capacity
    try:
        server.call(lambda: setattr(gate, "capacity", gate.admitted))  # as if full
        busy = await get(server, seconds="3600", fields="cpu", step="60")
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert busy.json()["error"] == "too many history queries in progress; try again shortly"
    finally:
        server.call(lambda: setattr(gate, "capacity", capacity))
    assert (await get(server, seconds="3600", fields="cpu", step="60")).status_code == 200
