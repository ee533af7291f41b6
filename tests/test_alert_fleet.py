"""Alerts in fleet mode: a real redis-server, two hubs (``sysstream serve --redis``
processes), two agents, one webhook receiver. Each transition is notified exactly once,
and when a hub is killed mid-alert the other carries on."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sysstream._sample import Sample
from sysstream.fleet._agent import Publisher

from .alert_receiver import Receiver
from .conftest import receive_json, ws_client
from .test_fleet import agent

INTERVAL = 0.2

RULES = """
builtin = false
[rules.hot]
metric = "cpu"
aggregate = "last"
warning = 80
repeat = 0
match = {{ host = "db1" }}
[rules.host_offline]
metric = "host.offline"
aggregate = "last"
op = ">="
critical = 1
[[notify]]
webhook = "{url}"
name = "hook"
"""


@dataclass
class Hub:
    process: asyncio.subprocess.Process
    port: int
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    async def alerts(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"http://127.0.0.1:{self.port}/api/alerts")
        body: dict[str, Any] = response.json()
        return body


@asynccontextmanager
async def hub(redis_url: str, rules: Path) -> AsyncIterator[Hub]:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "sysstream", "serve", "--port", "0", "--redis", redis_url),
        *("--interval", str(INTERVAL), "--alerts", str(rules), "--log-level", "info"),
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    port = 0
    async with asyncio.timeout(60):  # a process start on a loaded 2-core machine
        while b"Application startup complete" not in (line := await process.stderr.readline()):
            assert line, "hub exited before starting"
            if found := re.search(rb"serving on http://127\.0\.0\.1:(\d+)", line):
                port = int(found[1])
    running = Hub(process, port)

    async def read() -> None:
        assert process.stderr is not None
        while line := await process.stderr.readline():
            running.lines.append(line.decode(errors="replace"))

    running.reader = asyncio.create_task(read())
    try:
        yield running
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 10)
        await asyncio.wait_for(running.reader, 5)


class DialAgent:
    """An agent publishing through the agent's own Publisher, with the cpu the test dials."""

    def __init__(self, redis_url: str, host: str) -> None:
        self.publisher = Publisher(redis_url, host, backlog=100)
        self.cpu = 10.0
        self.tick = 0

    async def run(self) -> None:
        try:
            while True:
                self.tick += 1
                sample = Sample(self.tick, time.time(), {"cpu": self.cpu, "memory": 5.0})
                await self.publisher.publish(INTERVAL, sample)
                await asyncio.sleep(INTERVAL)
        finally:
            await self.publisher.close()


async def until(predicate: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


def summary(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(a["rule"], a["labels"]["host"], a["severity"], a["since"]) for a in body["active"]]


async def test_each_transition_is_notified_once_across_hubs_and_survives_a_killed_hub(
    redis_url: str, tmp_path: Path
) -> None:
    with Receiver() as receiver:
        rules = tmp_path / "rules.toml"
        rules.write_text(RULES.format(url=receiver.url()))
        dial = DialAgent(redis_url, "db1")
        dialing = asyncio.create_task(dial.run())
        try:
            async with (
                agent(redis_url, "web1", INTERVAL),
                hub(redis_url, rules) as first,
                hub(redis_url, rules) as second,
            ):
                hubs = (first, second)

                async def both_know_both_hosts() -> bool:
                    for each in hubs:
                        async with httpx.AsyncClient(timeout=5) as client:
                            listed = await client.get(f"http://127.0.0.1:{each.port}/api/hosts")
                        if sorted(h["id"] for h in listed.json()["hosts"]) != ["db1", "web1"]:
                            return False
                    return True

                await until(both_know_both_hosts)

                dial.cpu = 95.0  # one breach
                [body] = await asyncio.to_thread(receiver.wait_for, 1)
                assert body["alerts"][0]["labels"] == {
                    "alertname": "hot", "host": "db1", "severity": "warning",
                }  # fmt: skip

                async def both_decided() -> bool:
                    return all(h.logged("alert hot firing") for h in hubs)

                await until(both_decided)
                winners = [h for h in hubs if h.logged("alert hot firing (warning)")]
                losers = [h for h in hubs if h.logged("claimed by another hub")]
                assert len(winners) == 1 and len(losers) == 1 and winners != losers
                # Every hub serves the same active set.
                sets = [summary(await h.alerts()) for h in hubs]
                assert sets[0] == sets[1] != []

                # Kill the hub that notified, mid-alert: the other carries on.
                winner, survivor = winners[0], losers[0]
                winner.process.kill()
                await asyncio.wait_for(winner.process.wait(), 10)
                dial.cpu = 10.0
                bodies = await asyncio.to_thread(receiver.wait_for, 2)
                assert [b["status"] for b in bodies] == ["firing", "resolved"]
                assert bodies[1]["alerts"][0]["labels"]["alertname"] == "hot"

                # Host offline is built in: stop db1's agent.
                dialing.cancel()
                bodies = await asyncio.to_thread(receiver.wait_for, 3)
                offline = bodies[2]["alerts"][0]
                assert offline["labels"] == {
                    "alertname": "host_offline", "host": "db1", "severity": "critical",
                }  # fmt: skip
                assert [a["rule"] for a in (await survivor.alerts())["active"]] == ["host_offline"]
            assert receiver.attempts == 3  # exactly once each, across both hubs
        finally:
            dialing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dialing


async def test_a_hosts_stream_carries_that_hosts_alerts(
    redis_url: str, tmp_path: Path, server_factory: Any
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES.format(url="http://127.0.0.1:9/unused"))
    hot, cool = DialAgent(redis_url, "db1"), DialAgent(redis_url, "web1")
    hot.cpu = 95.0
    tasks = [asyncio.create_task(agent.run()) for agent in (hot, cool)]
    try:
        server = server_factory(
            redis_url=redis_url, interval=INTERVAL, history_seconds=60, alerts=str(rules)
        )
        evaluator = server.app.state.alerts
        await server.wait_until(lambda: len(evaluator.active()) == 1)
        for host, expected in (("db1", ["hot"]), ("web1", [])):
            url = server.ws_url(f"/api/hosts/{host}/metrics?alerts=1")
            async with ws_client(url) as websocket:
                async with asyncio.timeout(10):
                    while (message := await receive_json(websocket)).get("type") != "alerts":
                        pass
                assert [a["rule"] for a in message["active"]] == expected
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
