"""Fleet mode's HTTP and WebSocket routes, mounted under ``/api/hosts`` by ``serve --redis``.

``GET /api/hosts`` lists the hosts and ``GET /api/hosts/history`` their recent past in one
request (the overview's sparklines); ``/api/hosts/{host}/metrics`` (WS and GET),
``/api/hosts/{host}/metrics/history`` and ``…/metrics/schema`` are the host's stream, latest
sample, history and schema, served by the same code as ``/api/system/metrics``, under the
same access policy and connection limit. An unknown host is refused with 404, during the
WebSocket handshake too (4404 after accepting, on a server without ASGI's denial-response
extension).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, Query, WebSocket
from fastapi.responses import Response

from .._registry import DEFAULT_FIELDS, GROUPS
from .._settings import Settings
from ..fleet import Fleet, RemoteHost, published_groups
from ..sansio import (
    ControlError,
    check_host_id,
    encode_error,
    encode_json,
    format_timestamp,
    parse_fields,
)
from ..stream import Recorder
from ._budget import ResponseBudget, budgeted
from ._history_route import parse_seconds
from ._limits import ConnectionLimit
from ._router import JSON, TRY_AGAIN_LATER, history_response, latest_response, serve_stream
from ._schema import schema
from ._security import AccessPolicy, Refusal, deny_websocket

__all__ = ["FleetRouter", "fleet_router"]

# Close code for an unknown host when the server cannot refuse the handshake with an HTTP
# status (no "websocket.http.response" extension): 4000 + the HTTP status.
UNKNOWN_HOST_CLOSE = 4404
# Points per host in GET /api/hosts/history: the default fills a 120-pixel sparkline; the
# maximum bounds the body at (hosts × fields × points) values whatever a client asks.
SPARK_POINTS = 60
MAX_POINTS = 300
# The groups a fleet host's stream carries: what every agent publishes.
PUBLISHED = published_groups(frozenset(GROUPS))


class FleetRouter(APIRouter):
    """An APIRouter that carries its :class:`~sysstream.fleet._hub.Fleet`."""

    fleet: Fleet


def fleet_router(
    settings: Settings,
    *,
    access: AccessPolicy,
    connections: ConnectionLimit,
    budget: ResponseBudget | None = None,
    recorders_for: Callable[[str], Iterable[Recorder]] | None = None,
    on_forget: Callable[[str], None] | None = None,
) -> FleetRouter:
    """The fleet routes for ``settings.redis_url``; the router's lifespan runs the fleet.

    ``access``, ``connections`` and ``budget`` are the metrics router's: one token and
    origin policy, one client limit and one budget of history bytes held for slow readers
    for the process, whichever host a client watches.
    """
    if settings.redis_url is None:
        raise ValueError("expected settings with a redis_url, got redis_url=None")
    fleet = Fleet(
        settings.redis_url,
        history_seconds=settings.history_seconds,
        max_views=settings.max_views,
        max_hosts=settings.max_hosts,
        recorders_for=recorders_for or (lambda host: ()),
        on_forget=on_forget or (lambda host: None),
    )

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        await fleet.start()
        try:
            yield
        finally:
            await fleet.stop()

    hosts = FleetRouter(lifespan=lifespan, dependencies=[Depends(access.dependency)])
    hosts.fleet = fleet

    @hosts.get("", summary="Every known host: status, last seen and latest cpu/memory/disk")
    async def list_hosts() -> Response:
        body = {
            "redis": fleet.state.value,
            "hosts": fleet.summaries(),
            "timestamp": format_timestamp(time.time()),
        }
        return Response(encode_json(body), media_type=JSON)

    @hosts.get("/history", summary="Every host's recent samples in one body, thinned")
    async def every_history(
        seconds: str | None = Query(None, description="How far back (default 300 s or less)."),
        fields: str = Query(",".join(DEFAULT_FIELDS), description="Comma-separated groups."),
        points: str = Query(str(SPARK_POINTS), description=f"Points per host, 1 to {MAX_POINTS}."),
    ) -> Response:
        # One request for the whole overview instead of one per host: its size is bounded
        # by the hosts the hub knows (not by the asker) times `points` times `fields`.
        try:
            limit = settings.history_seconds
            span = min(300.0, limit) if seconds is None else parse_seconds(seconds, limit)
            names = parse_fields(fields)
            count = _points(points)
        except ControlError as exc:
            return Response(encode_error(str(exc)), status_code=400, media_type=JSON)
        since = time.time() - span
        bodies = (
            encode_json(name) + b":" + fleet.hosts[name].history.query(names, since, points=count)
            for name in sorted(fleet.hosts)
        )
        header = encode_json({"seconds": span, "fields": list(names), "points": count})
        return budgeted(header[:-1] + b',"hosts":{' + b",".join(bodies) + b"}}", budget)

    @hosts.websocket("/{host}/metrics")
    async def stream(websocket: WebSocket, host: str) -> None:
        remote = _find(fleet, host)
        if remote is None:
            unknown = Refusal(404, f"unknown host {host!r}")
            await deny_websocket(websocket, unknown, close_code=UNKNOWN_HOST_CLOSE)
            return
        if not connections.acquire():
            full = Refusal(503, f"server full: {connections.maximum} clients connected")
            await deny_websocket(websocket, full, close_code=TRY_AGAIN_LATER)
            return
        # Held until the client is gone, which may be after serve_stream returns.
        await serve_stream(
            websocket, remote.hub, stall_timeout=settings.stall_timeout,
            on_end=connections.release, budget=budget,
        )  # fmt: skip

    @hosts.get("/{host}/metrics", summary="A host's latest sample, in the stream's format")
    async def latest(host: str) -> Response:
        remote = _find(fleet, host)
        if remote is None:
            return _unknown(host)
        return await latest_response(remote.hub)

    @hosts.get("/{host}/metrics/schema", summary="What a host's stream carries, from the registry")
    async def host_schema(host: str) -> Response:
        remote = _find(fleet, host)
        if remote is None:
            return _unknown(host)
        # The host's own tick (an agent may sample at another interval than this hub: the
        # dashboard's intervals must be multiples of it), and only what its agent publishes
        # (no processes); its routes read no store and list no processes.
        body = schema(
            remote.source.interval,
            settings.history_seconds,
            store=False,
            processes=False,
            hostname=host,
            groups=PUBLISHED,
        )
        return Response(encode_json(body), media_type=JSON)

    @hosts.get("/{host}/metrics/history", summary="A host's recent samples, one column per field")
    async def recent(
        host: str,
        seconds: str = Query("300", description="How far back, in seconds."),
        fields: str = Query(",".join(DEFAULT_FIELDS), description="Comma-separated groups."),
    ) -> Response:
        remote = _find(fleet, host)
        if remote is None:
            return _unknown(host)
        return history_response(remote.hub, seconds, fields, settings.history_seconds, budget)

    return hosts


def _points(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise ControlError(f"expected points as a whole number, got {value!r}") from None
    if not 1 <= count <= MAX_POINTS:
        raise ControlError(f"expected points from 1 to {MAX_POINTS}, got {count}")
    return count


def _find(fleet: Fleet, host: str) -> RemoteHost | None:
    try:
        check_host_id(host)
    except ValueError:
        return None
    return fleet.hosts.get(host)


def _unknown(host: str) -> Response:
    return Response(encode_error(f"unknown host {host!r}"), status_code=404, media_type=JSON)
