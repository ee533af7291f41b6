from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import httpx
from prometheus_client.parser import text_string_to_metric_families

from sysstream._registry import GROUPS
from sysstream.stream._hub import FanoutStats, MetricsHub
from sysstream.web._prometheus import exposition, walk

from .conftest import RunningServer


def test_walk_labels_dict_keys_list_positions_and_sensor_labels() -> None:
    values: dict[str, Any] = {
        "cpu_per_core": [10.0, 20.0],
        "temps": {"coretemp": [{"label": "Core 0", "celsius": 40.0}]},
        "net": {"interfaces": {"eth0": {"rx_bytes": 5}}},
    }
    assert list(walk(values, "cpu_per_core.*")) == [(["0"], 10.0), (["1"], 20.0)]
    assert list(walk(values, "temps.*.*.celsius")) == [(["coretemp", "Core 0"], 40.0)]
    assert list(walk(values, "net.interfaces.*.rx_bytes")) == [(["eth0"], 5.0)]
    assert list(walk(values, "swap.used_bytes")) == []


async def test_exposition_parses_and_carries_registry_help(server: RunningServer) -> None:
    await server.wait_until(lambda: server.hub.stats.ticks >= 2)
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
        response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    cpu = families["sysstream_cpu_usage_ratio"]
    assert cpu.type == "gauge"
    assert cpu.documentation == GROUPS["cpu"].metrics[0].description + " As a ratio (0-1)."
    assert 0 <= cpu.samples[0].value <= 1
    received = families["sysstream_network_receive_bytes"]
    assert received.type == "counter"
    assert {s.labels["interface"] for s in received.samples} >= {"lo"}
    assert all(s.name.endswith("_total") for s in received.samples)
    assert families["sysstream_ticks"].samples[0].value >= 2
    for family in families.values():
        assert family.documentation, f"{family.name} has no HELP"


def test_the_hubs_own_figures_each_come_from_their_own_counter() -> None:
    stats = FanoutStats(
        ticks=7, messages=11, drops=3, source_errors=2,
        last_fanout_seconds=0.25, max_fanout_seconds=0.5,
    )  # fmt: skip
    hub = cast(MetricsHub, SimpleNamespace(latest=None, stats=stats, clients=4))
    families = {f.name: f for f in text_string_to_metric_families(exposition(hub).decode())}
    values = {name: family.samples[0].value for name, family in families.items()}
    assert values == {
        "sysstream_clients": 4,
        "sysstream_ticks": 7,
        "sysstream_messages_sent": 11,
        "sysstream_dropped_clients": 3,
        "sysstream_source_errors": 2,
        "sysstream_fanout_seconds": 0.25,
        "sysstream_fanout_max_seconds": 0.5,
    }
    assert families["sysstream_dropped_clients"].type == "counter"
