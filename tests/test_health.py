"""``GET /healthz`` and the polled sample through the sampler's life (docs/protocol.md):
starting before the first tick, ok while ticks arrive, stalled (503) when they stop."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx

from sysstream import create_app, load_settings
from sysstream._sample import Sample

from .conftest import RunningServer

INTERVAL = 0.2
VALUES = {"cpu": 12.5, "memory": 50.0, "disk": 40.0}


class GatedSource:
    """A source that ticks only when the test calls :meth:`step`, so the test decides
    whether the sampler has started, is running or has stopped."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._gate = threading.Semaphore(0)  # released from the test's thread
        self._tick = 0

    def step(self) -> None:
        self._gate.release()

    async def next_sample(self, groups: frozenset[str]) -> Sample:
        while not self._gate.acquire(blocking=False):
            await asyncio.sleep(0.01)
        self._tick += 1
        return Sample(self._tick, time.time(), dict(VALUES))

    def close(self) -> None:
        pass


async def test_health_is_starting_then_ok_then_stalled(server_factory: Any) -> None:
    source = GatedSource(INTERVAL)
    app = create_app(load_settings(interval=INTERVAL, port=0), source=source)
    server: RunningServer = server_factory(app, interval=INTERVAL)
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
        # Before the first tick: starting (200, so a probe does not kill a booting server),
        # and the polled sample is a 503 with the error shape.
        health = await http.get("/healthz")
        assert health.status_code == 200
        assert (health.json()["status"], health.json()["last_tick_age_seconds"]) == (
            "starting",
            None,
        )
        polled = await http.get("/api/system/metrics")
        assert polled.status_code == 503
        assert list(polled.json()) == ["error", "timestamp"]
        assert polled.json()["error"] == "no sample yet"

        stepped = time.monotonic()  # the tick comes after this, so stalled no sooner than
        source.step()  # three intervals and a second from here (same clock as the loop's)
        await server.wait_until(lambda: server.hub.stats.ticks == 1)
        health = await http.get("/healthz")
        assert (health.status_code, health.json()["status"]) == (200, "ok")
        polled = await http.get("/api/system/metrics")
        assert polled.status_code == 200
        assert {key: polled.json()[key] for key in VALUES} == VALUES

        # No tick for three intervals (plus a second of grace): stalled, 503.
        async with asyncio.timeout(10):
            while (health := await http.get("/healthz")).json()["status"] == "ok":
                await asyncio.sleep(0.05)
        assert health.status_code == 503
        assert health.json()["status"] == "stalled"
        assert health.json()["last_tick_age_seconds"] >= 3 * INTERVAL + 1
        assert time.monotonic() - stepped >= 3 * INTERVAL + 1

        source.step()  # the sampler comes back
        await server.wait_until(lambda: server.hub.stats.ticks == 2)
        health = await http.get("/healthz")
        assert (health.status_code, health.json()["status"]) == (200, "ok")
    assert server.log.errors() == []
