"""The fleet hub's drop counters on Prometheus ``/metrics`` (``sysstream.web._fleet_metrics``),
against a real redis-server, a real agent and a real hub."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from sysstream.sansio._wire import WIRE_REASONS, ticks_channel

from .conftest import RunningServer
from .test_fleet import INTERVAL, agent, deep, lie, wait_for_status

Factory = Callable[..., RunningServer]


async def scrape(server: RunningServer) -> dict[str, Any]:
    """The fleet families of ``/metrics``: name -> (type, help, {labels: value})."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text[:200]
    return {
        family.name: (
            family.type,
            family.documentation,
            {tuple(sample.labels.values()): sample.value for sample in family.samples},
        )
        for family in text_string_to_metric_families(response.text)
        if family.name.startswith("sysstream_fleet_")
    }


def warnings_of(server: RunningServer) -> int:
    return sum(1 for r in server.log.records if r.getMessage().startswith("fleet:"))


async def test_every_drop_is_counted_by_reason_on_prometheus(
    redis_url: str, server_factory: Factory
) -> None:
    server = server_factory(redis_url=redis_url, interval=INTERVAL, history_seconds=60, max_hosts=2)
    sent = {  # what each lie is dropped for
        "json": [b"{not json"] * 3,
        "version": [lie("web1", v=2)],
        "host": [lie("web2")],  # another host's tick on web1's channel
        "interval": [lie("web1", interval=1e-20)],
        "tick": [lie("web1", tick=-1)],
        "timestamp": [lie("web1", timestamp=1e12)],
        "values": [deep("web1", 300)],
        "errors": [lie("web1", errors={"cpu": 5})],
        "size": [lie("web1", values={"cpu": "x" * 250_000})],
    }
    async with agent(redis_url, "web1"):
        await wait_for_status(server, {"web1": "online"})
        before = await scrape(server)
        logged_before = warnings_of(server)
        with redis.Redis.from_url(redis_url) as client:
            for payloads in sent.values():
                for payload in payloads:
                    client.publish(ticks_channel("web1"), payload)
            client.publish("sysstream:bad host:ticks", b"{}")  # a channel no host can own
            for number in range(4):  # h0 is the second host; h1-h3 are past --max-hosts
                client.publish(ticks_channel(f"h{number}"), lie(f"h{number}"))
        expected = {reason: len(payloads) for reason, payloads in sent.items()}
        expected["host"] += 1
        expected["max_hosts"] = 3
        fleet = server.app.state.fleet
        total = sum(expected.values()) + sum(before["sysstream_fleet_dropped_messages"][2].values())
        await server.wait_until(lambda: sum(fleet.dropped.values()) >= total, timeout=15)
        after = await scrape(server)
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
            health = (await client.get("/healthz")).json()["fleet"]
    kind, help_text, dropped = after["sysstream_fleet_dropped_messages"]
    assert kind == "counter" and "by reason" in help_text
    assert set(dropped) == {(reason,) for reason in (*WIRE_REASONS, "max_hosts")}
    counted = {
        reason: dropped[(reason,)] - before["sysstream_fleet_dropped_messages"][2][(reason,)]
        for (reason,) in dropped
    }
    assert counted == expected
    # /healthz tells the same story, in its two sums.
    assert health["malformed_messages"] == sum(v for (r,), v in dropped.items() if r != "max_hosts")
    assert health["ignored_host_ticks"] == dropped[("max_hosts",)]
    # Every drop was either logged or counted as held back by the throttle.
    kind, help_text, unlogged = after["sysstream_fleet_unlogged_warnings"]
    assert kind == "counter" and "not logged" in help_text
    held_back = unlogged[()] - before["sysstream_fleet_unlogged_warnings"][2][()]
    assert held_back + warnings_of(server) - logged_before == sum(expected.values())
    assert held_back >= sum(expected.values()) - 1  # one line a minute at most
    kind, help_text, hosts = after["sysstream_fleet_hosts"]
    assert kind == "gauge" and hosts[()] == 2 == health["hosts"]
