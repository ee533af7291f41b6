"""The stream as a router inside someone else's FastAPI app, the way it was first deployed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

import sysstream

from .conftest import receive_json, ws_client


def host_app(**settings: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/api/other")
    def other() -> dict[str, str]:
        return {"owner": "host app"}

    app.include_router(sysstream.router(sysstream.load_settings(**settings)), prefix="/api/system")
    return app


def test_routes_are_mounted_under_the_host_prefix() -> None:
    paths = host_app().openapi()["paths"]
    assert {"/api/system/metrics", "/api/other"} <= set(paths)


def test_host_lifespan_starts_and_stops_the_sampler() -> None:
    settings = sysstream.load_settings(interval=0.1)
    metrics = sysstream.router(settings)
    app = FastAPI()
    app.include_router(metrics, prefix="/api/system")
    assert metrics.hub.state.value == "created"
    with TestClient(app) as client:
        assert metrics.hub.state.value == "running"
        body = client.get("/api/system/metrics").json()
        assert list(body) == ["cpu", "memory", "disk", "timestamp"]
    assert metrics.hub.state.value == "stopped"


@pytest.mark.parametrize("fast_path", [True, False], ids=["sysstream-protocol", "stock-uvicorn"])
async def test_embedded_router_streams_on_a_real_server(
    server_factory: Any, fast_path: bool
) -> None:
    stock = None if fast_path else WebSocketsSansIOProtocol
    server = server_factory(host_app(interval=0.2), interval=0.2, ws_protocol=stock)
    async with ws_client(server.ws_url()) as websocket:
        first = await receive_json(websocket)
        second = await receive_json(websocket)
        assert list(first) == ["cpu", "memory", "disk", "timestamp"]
        assert first["timestamp"] < second["timestamp"]
        await websocket.send("hello")
        async with asyncio.timeout(5):
            while "error" not in (reply := await receive_json(websocket)):
                pass
        assert reply["error"]


# Unique per run: the same suite may run at once elsewhere on the machine (a shared CI host).
MARKER = f"sysstream-process-list-marker-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def marked_children() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Three processes whose command lines end with MARKER and their number."""
    command = [sys.executable, "-c", "import sys; sys.stdin.read()", MARKER]
    children = [subprocess.Popen([*command, str(n)], stdin=subprocess.PIPE) for n in range(3)]
    yield children
    for child in children:
        child.communicate(timeout=10)


async def test_process_list_is_sorted_filtered_and_bounded(
    server: Any, marked_children: list[subprocess.Popen[bytes]]
) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        url = "/api/system/metrics/processes"
        body = (await client.get(url, params={"filter": MARKER, "sort": "pid"})).json()
        everything = (await client.get(url, params={"limit": "500"})).json()
        refused = await client.get(url, params={"limit": "501"})
        schema = (await client.get("/api/system/metrics/schema")).json()
    children = marked_children
    marker = MARKER
    assert body["matched"] == 3
    assert [row["pid"] for row in body["rows"]] == sorted(child.pid for child in children)
    assert [row["cmdline"].split()[-2:] for row in body["rows"]] == [
        [marker, str(n)] for n in range(3)
    ]
    assert body["cpus"] == psutil.cpu_count()
    assert everything["count"] == min(everything["count"], 500) == len(everything["rows"])
    cpu = [row["cpu_percent"] for row in everything["rows"]]
    assert cpu == sorted(cpu, reverse=True)
    assert refused.status_code == 400
    assert refused.json()["error"] == "expected limit from 1 to 500, got 501"
    assert schema["processes"] is True


def test_an_embedding_app_with_its_own_source_has_no_process_list() -> None:
    class Silent:
        interval = 1.0

        async def next_sample(self, groups: frozenset[str]) -> Any:
            await asyncio.Event().wait()

        def close(self) -> None:
            pass

    app = FastAPI()
    app.include_router(sysstream.router(source=Silent()), prefix="/api/system")
    with TestClient(app) as client:
        response = client.get("/api/system/metrics/processes")
        assert response.status_code == 404
        assert response.json()["error"] == "no process list: this router does not sample this host"
        assert client.get("/api/system/metrics/schema").json()["processes"] is False
