"""Alert routes under ``/api/alerts``, and the evaluator wired into the app's hubs.

``GET /api/alerts`` lists the rules, the active alerts and the silences;
``GET /api/alerts/history?from=&to=`` the events of a range; ``POST /api/alerts/silences``
creates a silence, ``DELETE /api/alerts/silences/{id}`` ends one. All of them sit behind
the app's access policy: with a token set, every one needs it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ..alerts import AlertEvaluator
from ..sansio import (
    AlertEvent,
    ControlError,
    SilenceError,
    encode_error,
    encode_json,
    format_timestamp,
)
from ..stream import MetricsHub
from ._history_route import parse_range
from ._security import AccessPolicy

__all__ = ["AlertRouter", "alert_router", "stream_alerts_to"]

JSON = "application/json"
MAX_BODY = 16 * 1024  # a silence request is a few hundred bytes
HISTORY_LIMIT = 3650 * 86400.0


class AlertRouter(APIRouter):
    evaluator: AlertEvaluator


def stream_alerts_to(
    evaluator: AlertEvaluator, hub: MetricsHub, host: str | None
) -> Callable[[], None]:
    """Deliver ``host``'s alert events (every host's for None) to ``hub``'s subscribers
    that asked for alerts, and give new subscribers the active set; the function
    returned undoes it (a fleet hub that stops serving a host)."""

    def listener(event: AlertEvent, message: bytes) -> None:
        if host is None or event.labels.get("host") == host:
            hub.broadcast_alert(message)

    def unsubscribe() -> None:
        with contextlib.suppress(ValueError):
            evaluator.listeners.remove(listener)
        hub.alert_snapshot = None

    evaluator.listeners.append(listener)
    hub.alert_snapshot = lambda: evaluator.snapshot(host)
    return unsubscribe


def alert_router(evaluator: AlertEvaluator, *, access: AccessPolicy) -> AlertRouter:
    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        await evaluator.start()
        try:
            yield
        finally:
            await evaluator.stop()

    alerts = AlertRouter(lifespan=lifespan, dependencies=[Depends(access.dependency)])
    alerts.evaluator = evaluator

    @alerts.get("", summary="Rules, active alerts (since, value, threshold) and silences")
    async def overview() -> Response:
        await evaluator.refresh_silences()
        now = time.time()
        body = {
            "rules": [rule.describe() for rule in evaluator.engine.rules.rules],
            "active": evaluator.active(),
            "silences": [s.to_json() for s in evaluator.silences.list(now)],
            "timestamp": format_timestamp(now),
        }
        return Response(encode_json(body), media_type=JSON)

    @alerts.get("/history", summary="Alert events (transitions) in a time range")
    async def history(
        start: str | None = Query(None, alias="from", description="Epoch seconds or ISO-8601."),
        end: str | None = Query(None, alias="to", description="Epoch seconds or ISO-8601."),
        seconds: str = Query("86400", description="How far back, when `from` is not given."),
    ) -> Response:
        now = time.time()
        try:
            span = parse_range(
                seconds=seconds, start=start, end=end, step=None, now=now, limit=HISTORY_LIMIT
            )
        except ControlError as exc:
            return _error(400, str(exc))
        events = await evaluator.history(span.start, span.end)
        body = {
            "from": format_timestamp(span.start),
            "to": format_timestamp(span.end),
            "events": [{k: v for k, v in e.items() if k != "at_epoch"} for e in events],
        }
        return Response(encode_json(body), media_type=JSON)

    @alerts.get("/silences", summary="Silences in force")
    async def list_silences() -> Response:
        await evaluator.refresh_silences()
        silences = [s.to_json() for s in evaluator.silences.list(time.time())]
        return Response(encode_json({"silences": silences}), media_type=JSON)

    @alerts.post("/silences", summary="Mute the alerts some matchers select until it ends")
    async def create_silence(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _error(413, f"expected a body under {MAX_BODY} bytes")
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, "expected a JSON object, got text that is not JSON")
        try:
            silence = await evaluator.add_silence(parsed)
        except SilenceError as exc:
            return _error(400, str(exc))
        return Response(encode_json(silence.to_json()), status_code=201, media_type=JSON)

    @alerts.delete("/silences/{silence_id}", summary="End a silence")
    async def delete_silence(silence_id: str) -> Response:
        await evaluator.refresh_silences()
        if not await evaluator.remove_silence(silence_id):
            return _error(404, f"no silence {silence_id[:64]!r}")
        return Response(status_code=204)

    return alerts


def _error(status: int, message: str) -> Response:
    return Response(encode_error(message), status_code=status, media_type=JSON)
