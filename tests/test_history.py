from __future__ import annotations

import orjson
import pytest

from sysstream._sample import Sample
from sysstream.stream._history import History


def sample(tick: int, **values: object) -> Sample:
    return Sample(tick, 1000.0 + tick, dict(values))


def test_ring_is_bounded_by_seconds_over_interval() -> None:
    history = History(seconds=10, interval=2)
    for tick in range(20):
        history.record(sample(tick, cpu=float(tick)))
    assert len(history) == 5
    body = orjson.loads(history.query(["cpu"], since=0))
    assert body["values"]["cpu"] == [15.0, 16.0, 17.0, 18.0, 19.0]


def test_query_is_columnar_with_nulls_for_missing_groups() -> None:
    history = History(seconds=60, interval=1)
    history.record(sample(1, cpu=1.0, load={"load1": 0.5}))
    history.record(sample(2, cpu=2.0))
    body = orjson.loads(history.query(["cpu", "load"], since=1001.5))
    assert body == {
        "interval": 1,
        "step": 1,
        "fields": ["cpu", "load"],
        "timestamps": [1002.0],
        "values": {"cpu": [2.0], "load": [None]},
    }
    full = orjson.loads(history.query(["load"], since=0, until=1001.0))
    assert full["values"]["load"] == [{"load1": 0.5}]


def test_query_thins_to_at_most_points_counting_back_from_the_newest() -> None:
    history = History(seconds=60, interval=1)
    for tick in range(10):
        history.record(sample(tick, cpu=float(tick)))
    body = orjson.loads(history.query(["cpu"], since=0, points=4))
    # 10 ticks in at most 4 points: every 3rd, ending with the newest.
    assert body["values"]["cpu"] == [0.0, 3.0, 6.0, 9.0]
    assert body["timestamps"] == [1000.0, 1003.0, 1006.0, 1009.0]
    assert body["step"] == 3
    assert orjson.loads(history.query(["cpu"], since=0, points=50))["values"]["cpu"] == [
        float(tick) for tick in range(10)
    ]


def test_process_lists_are_not_kept() -> None:
    history = History(seconds=60, interval=1)
    history.record(sample(1, processes={"count": 3}))
    assert orjson.loads(history.query(["processes"], since=0))["values"]["processes"] == [None]


def test_zero_seconds_keeps_nothing() -> None:
    history = History(seconds=0, interval=1)
    history.record(sample(1, cpu=1.0))
    assert len(history) == 0


def test_misuse() -> None:
    with pytest.raises(ValueError, match="expected seconds >= 0 and interval > 0"):
        History(seconds=10, interval=0)


async def test_history_endpoint(server_factory: object) -> None:
    import httpx

    server = server_factory(interval=0.1)  # type: ignore[operator]
    await server.wait_until(lambda: len(server.hub.history) >= 3)
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
        ok = await client.get("/api/system/metrics/history?seconds=60&fields=cpu,mounts")
        bad = await client.get("/api/system/metrics/history?seconds=-1")
    body = ok.json()
    assert len(body["timestamps"]) >= 3
    assert "/" in body["values"]["mounts"][-1]
    assert bad.status_code == 400
    assert bad.json()["error"] == "expected seconds from 0 to 3600, got -1"
