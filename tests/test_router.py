"""The stream as a router inside someone else's FastAPI app, the way it was first deployed."""

from __future__ import annotations

import asyncio
from typing import Any

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
