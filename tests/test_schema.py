from __future__ import annotations

import httpx

from sysstream._registry import GROUPS

from .conftest import RunningServer


async def test_schema_lists_every_group_from_the_registry(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
        body = (await client.get("/api/system/metrics/schema")).json()
    assert body["default_fields"] == ["cpu", "memory", "disk"]
    assert body["interval"] == 0.2
    assert list(body["groups"]) == list(GROUPS)
    net = body["groups"]["net"]
    paths = {m["path"]: m for m in net["metrics"]}
    assert paths["net.interfaces.*.rx_bytes_per_s"]["unit"] == "bytes/s"
    assert paths["net.interfaces.*.rx_bytes_per_s"]["labels"] == ["interface"]
    assert paths["net.interfaces.*.rx_bytes"]["kind"] == "counter"
    assert body["groups"]["processes"]["every"] == 5
