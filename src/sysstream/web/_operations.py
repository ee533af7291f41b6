"""``/healthz`` and Prometheus ``/metrics`` for a router's hub, as a router of their own.

``sysstream serve`` mounts it at the root; an app that embeds ``sysstream.router()`` mounts it
wherever it likes except under the stream's prefix, where Prometheus' ``/metrics`` would
meet the stream's own ``GET /metrics`` (README, "Inside an existing FastAPI app").
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client.registry import Collector

from .._version import __version__
from ..fleet import Fleet
from ..sansio import encode_json
from ._prometheus import CONTENT_TYPE, exposition
from ._router import JSON, MetricsRouter

__all__ = ["operations"]


def operations(
    metrics: MetricsRouter, *, collectors: Iterable[Collector] = (), fleet: Fleet | None = None
) -> APIRouter:
    """Health and Prometheus exposition for ``metrics``' hub (and ``fleet``'s counters in
    ``/healthz``). ``/metrics`` follows the router's token rule; ``/healthz`` is open, for
    load balancers and orchestrators."""
    hub = metrics.hub
    extra = list(collectors)
    ops = APIRouter()

    @ops.get("/healthz", summary="Liveness: the sampler's last tick and the fan-out figures")
    async def healthz() -> Response:
        now = asyncio.get_running_loop().time()
        stats = hub.stats
        age = None if stats.last_tick_at is None else round(now - stats.last_tick_at, 3)
        # Three missed intervals means the sampler is stuck, not merely late.
        alive = age is not None and age < 3 * hub.source.interval + 1
        body: dict[str, Any] = {
            "status": "ok" if alive else ("starting" if age is None else "stalled"),
            "version": __version__,
            "hub": hub.state.value,
            "last_tick_age_seconds": age,
            "interval_seconds": hub.source.interval,
            "clients": hub.clients,
            "fanout": {
                "ticks": stats.ticks,
                "messages": stats.messages,
                "drops": stats.drops,
                "views": stats.views,
                "encodings_last_tick": stats.encodings,
                "last_seconds": round(stats.last_fanout_seconds, 6),
                "max_seconds": round(stats.max_fanout_seconds, 6),
            },
        }
        budget = metrics.history_budget
        # History bodies held for clients yet to read them (docs/security.md).
        body["history_budget"] = {
            "held_bytes": budget.held,
            "max_bytes": budget.maximum,
            "refused": budget.refused,
        }
        if fleet is not None:
            body["fleet"] = {
                "redis": fleet.state.value,
                "hosts": len(fleet.hosts),
                "max_hosts": fleet.max_hosts,
                # What lying or broken agents sent: dropped, never served (docs/fleet.md).
                "malformed_messages": fleet.skipped,
                "ignored_host_ticks": fleet.refused,
            }
        status = 200 if alive or age is None else 503
        return Response(encode_json(body), status_code=status, media_type=JSON)

    @ops.get(
        "/metrics",
        summary="Prometheus exposition of the latest sample",
        dependencies=[Depends(metrics.access.dependency)],
    )
    async def prometheus_metrics() -> Response:
        return Response(exposition(hub, extra), media_type=CONTENT_TYPE)

    return ops
