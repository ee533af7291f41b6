"""The Redis-fed source: ticks handed in come out renumbered; silence becomes one
placeholder sample per interval, with the reason, until ticks come again."""

from __future__ import annotations

import asyncio
import time

import pytest

from sysstream._sample import Sample
from sysstream.fleet._source import UNAVAILABLE, RemoteSource, is_placeholder

GROUPS = frozenset({"cpu", "memory"})


def tick(number: int, **values: float) -> Sample:
    return Sample(tick=number, timestamp=time.time(), values=dict(values))


async def test_delivered_ticks_come_out_in_order_renumbered() -> None:
    source = RemoteSource("web1", 0.1, lambda: None)
    source.deliver(tick(500, cpu=1.0, memory=2.0), 0.1)
    source.deliver(tick(3, cpu=3.0, memory=4.0), 0.2)  # the agent restarted
    first = await source.next_sample(GROUPS)
    second = await source.next_sample(GROUPS)
    assert (first.tick, first.values["cpu"]) == (1, 1.0)
    assert (second.tick, second.values["cpu"]) == (2, 3.0)
    assert source.interval == 0.2


async def test_groups_the_agent_did_not_send_are_reported() -> None:
    source = RemoteSource("web1", 0.1, lambda: None)
    source.deliver(tick(1, cpu=1.0), 0.1)
    sample = await source.next_sample(frozenset({"cpu", "processes"}))
    assert sample.values == {"cpu": 1.0}
    assert sample.errors == {"processes": "not sampled by host web1"}


async def test_a_late_tick_is_waited_for_while_the_source_is_available() -> None:
    source = RemoteSource("web1", 0.05, lambda: None)
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, source.deliver, tick(1, cpu=9.0, memory=1.0), 0.05)
    sample = await asyncio.wait_for(source.next_sample(GROUPS), 5)
    assert sample.values["cpu"] == 9.0 and not sample.errors


async def test_silence_yields_one_placeholder_per_interval_then_data_again() -> None:
    reason: list[str | None] = ["redis connection lost"]
    source = RemoteSource("web1", 0.1, lambda: reason[0])
    started = time.monotonic()
    placeholders = [await asyncio.wait_for(source.next_sample(GROUPS), 5) for _ in range(3)]
    elapsed = time.monotonic() - started
    assert 0.25 < elapsed < 1.0  # about one per interval, not a busy loop
    for sample in placeholders:
        assert is_placeholder(sample) and not sample.values
        assert sample.errors == dict.fromkeys(GROUPS, UNAVAILABLE + "redis connection lost")
    assert [s.tick for s in placeholders] == [1, 2, 3]
    reason[0] = None
    source.deliver(tick(1, cpu=1.0, memory=2.0), 0.1)
    sample = await source.next_sample(GROUPS)
    assert sample.tick == 4 and sample.values == {"cpu": 1.0, "memory": 2.0}
    assert not is_placeholder(sample)


def test_an_agent_error_is_not_a_placeholder() -> None:
    assert not is_placeholder(Sample(1, 0.0, errors={"cpu": "OSError: x"}))
    assert is_placeholder(Sample(1, 0.0, errors={"cpu": UNAVAILABLE + "x"}))


def test_delivering_to_a_closed_source_is_refused() -> None:
    source = RemoteSource("web1", 0.1, lambda: None)
    source.close()
    with pytest.raises(RuntimeError, match="expected an open source, got host web1's closed"):
        source.deliver(tick(1), 0.1)
