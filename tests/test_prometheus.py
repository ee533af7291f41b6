from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from sysstream._registry import GROUPS
from sysstream.web._prometheus import walk

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
