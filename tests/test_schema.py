from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

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
    assert body["hostname"] == socket.gethostname()


async def schema_of(server: RunningServer) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
        body: dict[str, object] = (await client.get("/api/system/metrics/schema")).json()
    return body


async def test_schema_says_whether_a_history_store_serves_older_ranges(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    memory_only = server_factory(interval=0.2)  # conftest sets SYSSTREAM_NO_STORE=1
    stored = server_factory(interval=0.2, no_store=False, data_dir=str(tmp_path / "data"))
    # The same directory: its file has one writer (the server above), so this store
    # cannot be opened.
    broken = server_factory(interval=0.2, no_store=False, data_dir=str(tmp_path / "data"))
    assert (await schema_of(memory_only))["store"] is False
    assert (await schema_of(stored))["store"] is True
    # A store that could not be opened is no store to the page (it warned once).
    assert (await schema_of(broken))["store"] is False
    assert any("history store disabled" in r.getMessage() for r in broken.log.records)
