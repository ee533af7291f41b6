"""The stream as a FastAPI router: ``app.include_router(sysstream.router(), prefix=…)``.

The router owns a hub; its lifespan starts the sampler with the host app and stops it on
shutdown. Routes are relative to the prefix: ``WS /metrics`` streams, ``GET /metrics``
returns the latest sample.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import APIRouter, WebSocket
from fastapi.responses import Response
from starlette.websockets import WebSocketDisconnect

from ._collectors import build_collectors
from ._hub import DEFAULT_VIEW, MetricsHub
from ._messages import encode_error, encode_sample
from ._protocol import TRANSPORT_EXTENSION
from ._settings import Settings
from ._sinks import AsgiSink, Sink
from ._source import LocalSource, Source

__all__ = ["MetricsRouter", "router", "serve_stream"]

JSON = "application/json"


class MetricsRouter(APIRouter):
    """An APIRouter that carries the hub it serves, for apps that want its figures."""

    hub: MetricsHub
    settings: Settings


def router(settings: Settings | None = None, *, source: Source | None = None) -> MetricsRouter:
    """Build the metrics router. ``source`` defaults to this host's psutil sampler."""
    settings = settings if settings is not None else Settings()
    if source is None:
        source = LocalSource(
            build_collectors(disk_path=settings.disk_path), interval=settings.interval
        )
    hub = MetricsHub(source)

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    metrics = MetricsRouter(lifespan=lifespan)
    metrics.hub = hub
    metrics.settings = settings

    @metrics.websocket("/metrics")
    async def stream(websocket: WebSocket) -> None:
        await serve_stream(websocket, hub, stall_timeout=settings.stall_timeout)

    @metrics.get("/metrics", summary="Latest sample, in the stream's message format")
    async def latest() -> Response:
        try:
            first_tick = asyncio.wait_for(hub.wait_for_tick(), 5 * hub.source.interval)
            sample = hub.latest or await first_tick
        except TimeoutError:
            return Response(encode_error("no sample yet"), status_code=503, media_type=JSON)
        return Response(encode_sample(sample, DEFAULT_VIEW.fields), media_type=JSON)

    return metrics


async def serve_stream(websocket: WebSocket, hub: MetricsHub, *, stall_timeout: float) -> None:
    """Accept ``websocket`` and stream ``hub``'s ticks to it until it goes away."""
    await websocket.accept()
    view = DEFAULT_VIEW
    extension = websocket.scope.get("extensions", {}).get(TRANSPORT_EXTENSION)
    if extension is not None:
        sink: Sink = extension["attach"](stall_timeout)
        hub.attach(sink, view)
        try:
            await _serve_controls(websocket)
        finally:
            hub.detach(sink)
        return

    async with anyio.create_task_group() as tasks:
        asgi_sink = AsgiSink(websocket, stall_timeout, tasks.cancel_scope.cancel)
        hub.attach(asgi_sink, view)
        try:
            tasks.start_soon(_send_until_gone, asgi_sink, tasks.cancel_scope)
            await _serve_controls(websocket)
            tasks.cancel_scope.cancel()
        finally:
            hub.detach(asgi_sink)


async def _send_until_gone(sink: AsgiSink, scope: anyio.CancelScope) -> None:
    try:
        await sink.run()
    except (WebSocketDisconnect, RuntimeError, OSError):
        scope.cancel()  # the client went away mid-send; the receive side ends too


async def _serve_controls(websocket: WebSocket) -> None:
    """Read client messages until disconnect. The core stream takes no control messages;
    each one gets an error reply and the connection stays open."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        await websocket.send_text(encode_error("this stream takes no control messages").decode())
