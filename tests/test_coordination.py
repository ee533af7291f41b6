"""``sysstream.alerts._coordination``: what a hub does with Redis when Redis stops answering
(a real redis-server, frozen with SIGSTOP)."""

from __future__ import annotations

import asyncio
import logging
import signal
import time

import pytest

from sysstream._redis import COMMAND_TIMEOUT
from sysstream.alerts import RedisCoordinator
from sysstream.sansio import AlertEvent, EventKind, Severity

from .redis_server import RedisServer


def firing(at: float) -> AlertEvent:
    return AlertEvent(
        EventKind.FIRING, "cpu", {"host": "web1"}, Severity.WARNING, 95.0, 90.0, at, at
    )


async def test_an_outage_costs_one_timeout_not_one_per_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frozen = RedisServer()
    frozen.start()
    assert frozen.process is not None
    coordinator = RedisCoordinator(frozen.url)
    try:
        assert await coordinator.claim(firing(1.0)) is True
        assert await coordinator.claim(firing(1.0)) is False  # the same transition, again
        frozen.process.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="sysstream"):
            assert await coordinator.claim(firing(2.0)) is None  # waited COMMAND_TIMEOUT
            # A fleet going offline at once: every other event of the outage, at once.
            outage = [await coordinator.claim(firing(float(at))) for at in range(3, 53)]
            assert await coordinator.load_silences() is None  # keep the ones in memory
            assert await coordinator.load_active() == []
        assert outage == [None] * 50
        assert time.monotonic() - started < COMMAND_TIMEOUT + 1
        assert coordinator.skipped == 52
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1, warnings
        assert "alerts: cannot claim a transition at redis://127.0.0.1:" in warnings[0]
        assert f"no answer from Redis within {COMMAND_TIMEOUT:g} s" in warnings[0]
        frozen.process.send_signal(signal.SIGCONT)
        with caplog.at_level(logging.INFO, logger="sysstream"):
            async with asyncio.timeout(10):  # the backoff delay (1 s, jittered), then a try
                while (won := await coordinator.claim(firing(100.0))) is None:
                    await asyncio.sleep(0.1)
        assert won is True and (coordinator.claims_won, coordinator.claims_lost) == (2, 1)
        assert "alerts: redis at redis://127.0.0.1:" in caplog.text
        assert "answers again" in caplog.text
    finally:
        await coordinator.close()
        frozen.kill()
