"""``sysstream agent``: what it writes to a real Redis, how it rides out an outage, and
how it refuses bad input."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from sysstream._registry import GROUPS
from sysstream._sample import Sample
from sysstream.fleet._agent import PUBLISH_TIMEOUT, Publisher, PublisherState, published_groups
from sysstream.sansio._wire import HOSTS_KEY, backlog_key, decode_tick, ticks_channel

from .redis_server import RedisServer, cancel_at_each_step

SYSSTREAM = [sys.executable, "-m", "sysstream"]


def sample(tick: int) -> Sample:
    return Sample(tick=tick, timestamp=time.time(), values={"cpu": float(tick)})


async def publish_until_through(publisher: Publisher, first_tick: int) -> None:
    """Publish a tick every 50 ms until one goes through (the backoff delay has passed and
    Redis answers again), within 10 s."""
    async with asyncio.timeout(10):
        tick = first_tick
        while not await publisher.publish(1.0, sample(tick)):
            tick += 1
            await asyncio.sleep(0.05)
    assert publisher.state is PublisherState.CONNECTED


async def test_each_tick_goes_to_the_channel_the_backlog_and_the_host_set(
    redis_url: str,
) -> None:
    with redis.Redis.from_url(redis_url) as client, client.pubsub() as pubsub:
        pubsub.subscribe(ticks_channel("web1"))
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
        publisher = Publisher(redis_url, "web1", backlog=3)
        try:
            for tick in range(1, 151):
                assert await publisher.publish(0.5, sample(tick))
        finally:
            await publisher.close()
        message = pubsub.get_message(timeout=5)
        assert message is not None
        first = decode_tick(message["data"], host="web1")
        assert (first.interval, first.sample.values) == (0.5, {"cpu": 1.0})
        # MAXLEN ~ trims whole stream nodes (100 entries): about the backlog, never all.
        assert 3 <= client.xlen(backlog_key("web1")) <= 103
        newest = client.xrevrange(backlog_key("web1"), count=1)[0][1][b"tick"]
        assert decode_tick(newest).sample.values == {"cpu": 150.0}
        assert client.zscore(HOSTS_KEY, "web1") == pytest.approx(time.time(), abs=10)
    assert publisher.published == 150 and publisher.dropped == 0


async def test_ticks_are_dropped_while_redis_is_down_then_publishing_resumes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = RedisServer()  # its port is free until start()
    publisher = Publisher(down.url, "web1", backlog=10, max_backoff=0.5)
    try:
        with caplog.at_level(logging.WARNING, logger="sysstream"):
            assert not await publisher.publish(1.0, sample(1))
            assert not await publisher.publish(1.0, sample(2))  # within the backoff delay
        assert publisher.state is PublisherState.DISCONNECTED and publisher.dropped == 2
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1 and "agent web1: redis at redis://127.0.0.1:" in warnings[0]
        down.start()
        try:
            await publish_until_through(publisher, first_tick=3)
            with down.client() as client:
                assert client.xlen(backlog_key("web1")) == 1
        finally:
            down.kill()
    finally:
        await publisher.close()


def test_agents_publish_the_groups_kept_in_history() -> None:
    groups = published_groups(frozenset(GROUPS))
    assert groups == {name for name, group in GROUPS.items() if group.history}
    assert {"cpu", "memory", "disk"} <= groups
    assert "processes" not in groups


async def test_the_agent_process_publishes_and_exits_cleanly_on_sigterm(redis_url: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *SYSSTREAM,
        *("agent", "--redis", redis_url, "--host-id", "proc1", "--interval", "0.1"),
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    async with asyncio.timeout(15):
        while b"publishing to" not in (line := await process.stderr.readline()):
            assert line, "agent exited before publishing"
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 10) == 0
    with redis.Redis.from_url(redis_url) as client:
        assert client.xlen(backlog_key("proc1")) >= 1


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {}, "invalid --redis-url / SYSSTREAM_REDIS_URL: Field required"),
        (["--redis", "http://h"], {}, "expected a redis://, rediss:// or unix:// URL"),
        (["--redis", "redis://h:port"], {}, "expected a redis:// or rediss:// URL"),
        ([], {"SYSSTREAM_REDIS_URL": "redis://"}, "expected a host in the Redis URL"),
        (["--redis", "redis://h", "--host-id", "a:b"], {}, "expected a host id of 1-64"),
        (["--redis", "redis://h", "--interval", "0"], {}, "invalid --interval"),
        (["--redis", "redis://h", "--backlog", "x"], {}, "invalid --backlog"),
    ],
)
def test_bad_agent_input_fails_with_one_line(
    args: list[str], env: dict[str, str], expected: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SYSSTREAM_")}
    result = subprocess.run(
        [*SYSSTREAM, "agent", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**clean, **env},
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr


def test_serve_refuses_a_bad_redis_url_with_one_line() -> None:
    result = subprocess.run(
        [*SYSSTREAM, "serve", "--port", "0", "--redis", "redis://:pw@h:99999"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "invalid --redis-url / SYSSTREAM_REDIS_URL: expected a redis://" in result.stderr
    assert "redis://:***@h:99999" in result.stderr and ":pw@" not in result.stderr


async def test_a_publish_cancelled_at_any_step_ends_cancelled_so_the_agent_stops(
    redis_url: str,
) -> None:
    publisher = Publisher(redis_url, "web1", backlog=10)
    ticks = iter(range(1, 1000))
    try:
        cancelled = await cancel_at_each_step(
            lambda: publisher.publish(1.0, sample(next(ticks))),
            lambda: publisher.publish(1.0, sample(next(ticks))),
        )
        assert cancelled >= 2
        assert publisher.state is PublisherState.CONNECTED
    finally:
        await publisher.close()


async def test_a_redis_that_stops_answering_costs_one_publish_the_bound_then_resumes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frozen = RedisServer()
    frozen.start()
    publisher = Publisher(frozen.url, "web1", backlog=10, max_backoff=0.2)
    try:
        assert await publisher.publish(1.0, sample(1))
        assert frozen.process is not None
        frozen.process.send_signal(signal.SIGSTOP)  # accepts bytes, answers nothing
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="sysstream"):
            assert not await publisher.publish(1.0, sample(2))
        assert PUBLISH_TIMEOUT <= time.monotonic() - started < PUBLISH_TIMEOUT + 2
        assert f"no answer from Redis within {PUBLISH_TIMEOUT:g} s" in caplog.text
        assert publisher.state is PublisherState.DISCONNECTED
        # The next tick comes within the backoff delay (0.1 s at least): dropped at once,
        # not another PUBLISH_TIMEOUT spent on the frozen server.
        started = time.monotonic()
        assert not await publisher.publish(1.0, sample(3))
        assert time.monotonic() - started < 0.5
        assert publisher.dropped == 2
        frozen.process.send_signal(signal.SIGCONT)
        await publish_until_through(publisher, first_tick=4)
    finally:
        await publisher.close()
        frozen.kill()


async def test_the_next_outage_is_retried_from_the_first_delay_again() -> None:
    server = RedisServer()  # down: its port is free until start()
    publisher = Publisher(server.url, "web1", backlog=10, max_backoff=4.0)
    tick = 0

    async def publish() -> bool:
        nonlocal tick
        tick += 1
        return await publisher.publish(1.0, sample(tick))

    try:
        # A long outage: tries 0.1-0.2 s apart, then twice as far each time, up to 2-4 s.
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            assert not await publish()
            await asyncio.sleep(0.02)
        server.start()
        await publish_until_through(publisher, first_tick=tick + 1)
        server.kill()
        assert not await publish()  # the first try of a new outage
        failed = time.monotonic()
        server.start()
        await publish_until_through(publisher, first_tick=tick + 100)
        # Retried after the first delay (0.1-0.2 s), not the long outage's last (2-4 s).
        assert time.monotonic() - failed < 1.5
    finally:
        server.kill()
        await publisher.close()
