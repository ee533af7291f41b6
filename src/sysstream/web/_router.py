"""The stream as a FastAPI router: ``app.include_router(sysstream.router(), prefix=…)``.

The router owns a hub; its lifespan starts the sampler with the host app and stops it on
shutdown. Routes are relative to the prefix: ``WS /metrics`` streams; ``GET /metrics``,
``/metrics/schema``, ``/metrics/history`` and ``/metrics/processes`` serve the latest
sample, the registry, the recent past and the full process list.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Query, Request, WebSocket
from fastapi.responses import Response
from starlette.websockets import WebSocketDisconnect

from .._registry import ALWAYS_FIELDS, DEFAULT_FIELDS
from .._settings import Settings
from ..sampling import LocalSource, ProcessTable, Source, build_collectors
from ..sansio import (
    POLICY_VIOLATION,
    Close,
    ControlError,
    ControlSession,
    View,
    encode_error,
    encode_json,
    encode_sample,
    format_timestamp,
    parse_process_query,
    parse_query,
    select_processes,
)
from ..store import HistoryStore, StoreState
from ..stream import TRANSPORT_EXTENSION, AsgiSink, History, MetricsHub, Sink, ViewLimitError
from ._budget import ResponseBudget, budgeted, hold_until_drained
from ._history_route import QueryGate, parse_history_fields, parse_seconds
from ._history_route import history_response as stored_history_response
from ._limits import ConnectionLimit, resolve_max_clients
from ._schema import schema
from ._security import AccessPolicy, Refusal, deny_websocket

__all__ = ["MetricsRouter", "router", "serve_stream"]

JSON = "application/json"
TRY_AGAIN_LATER = 1013
# Seconds a process walk is reused by the process list route (the processes group walks
# every 5th tick while subscribed; this bounds the walks a client's requests can cause).
PROCESS_LIST_AGE = 5.0


class MetricsRouter(APIRouter):
    """An APIRouter that carries the hub it serves, for apps that want its figures."""

    hub: MetricsHub
    settings: Settings
    access: AccessPolicy  # origin and token rules, enforced on every route of the router
    connections: ConnectionLimit
    queries: QueryGate  # the store's queries: how many run and wait at once
    history_budget: ResponseBudget  # bytes of history held for clients yet to read them


def router(
    settings: Settings | None = None,
    *,
    source: Source | None = None,
    store: HistoryStore | None = None,
) -> MetricsRouter:
    """Build the metrics router. ``source`` defaults to this host's psutil sampler;
    ``store`` (none by default) keeps history on disk, opened and closed with the app."""
    settings = settings if settings is not None else Settings()
    # The process list route reads this host's process table: there is one only when the
    # router samples this host itself.
    processes: ProcessTable | None = None
    if source is None:
        processes = ProcessTable()
        collectors = build_collectors(
            disk_path=settings.disk_path, docker_host=settings.docker_host, processes=processes
        )
        source = LocalSource(collectors, interval=settings.interval)
    history = History(settings.history_seconds, source.interval)
    recorders = [store.recorder()] if store is not None else []
    hub = MetricsHub(
        source,
        always=ALWAYS_FIELDS,
        history=history,
        recorders=recorders,
        max_views=settings.max_views,
    )

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        if store is not None:
            await anyio.to_thread.run_sync(store.open)  # never raises: a bad file is set aside
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()
            if store is not None:
                await anyio.to_thread.run_sync(store.close)  # writes everything still pending

    token = settings.token.get_secret_value() if settings.token is not None else None
    access = AccessPolicy(allow_origins=settings.allow_origin, token=token)
    connections = ConnectionLimit(resolve_max_clients(settings.max_clients))
    # A dependency, not a middleware: an app that embeds the router gets no middleware
    # from us, and router dependencies survive include_router.
    metrics = MetricsRouter(lifespan=lifespan, dependencies=[Depends(access.dependency)])
    metrics.hub = hub
    metrics.settings = settings
    metrics.access = access
    metrics.connections = connections
    # One budget for every history body of the process, HTTP and stream, all hosts; the
    # default 64 MiB is four of the largest responses, six full-catalogue hours at 1 s.
    responses = ResponseBudget(settings.history_budget_mib * 1024 * 1024)
    metrics.history_budget = responses

    @metrics.websocket("/metrics")
    async def stream(websocket: WebSocket) -> None:
        if not connections.acquire():
            full = Refusal(503, f"server full: {connections.maximum} clients connected")
            await deny_websocket(websocket, full, close_code=TRY_AGAIN_LATER)
            return
        # The slot is held until the client is gone, which on the fast path is after
        # serve_stream has handed the connection over and returned.
        await serve_stream(
            websocket, hub, stall_timeout=settings.stall_timeout, on_end=connections.release,
            budget=responses,
        )  # fmt: skip

    @metrics.get("/metrics", summary="Latest sample, in the stream's default message format")
    async def latest() -> Response:
        return await latest_response(hub)

    @metrics.get("/metrics/schema", summary="Every field the stream can carry, from the registry")
    async def metrics_schema() -> Response:
        # A store that could not be opened serves nothing older than the ring.
        stored = store is not None and store.state is not StoreState.DISABLED
        body = schema(
            hub.source.interval,
            settings.history_seconds,
            store=stored,
            processes=processes is not None,
        )
        return Response(encode_json(body), media_type=JSON)

    @metrics.get("/metrics/processes", summary="Every process, sorted and filtered, bounded")
    async def process_list(request: Request) -> Response:
        if processes is None:
            return Response(
                encode_error("no process list: this router does not sample this host"),
                status_code=404,
                media_type=JSON,
            )
        try:
            query = parse_process_query(request.query_params)
        except ControlError as exc:
            return Response(encode_error(str(exc)), status_code=400, media_type=JSON)
        # A walk takes tens of milliseconds: off the event loop, and at most one every
        # PROCESS_LIST_AGE seconds however many clients ask.
        table = await anyio.to_thread.run_sync(processes.snapshot, PROCESS_LIST_AGE)
        matched, rows = select_processes(table.rows, query)
        body = {
            "timestamp": format_timestamp(table.walked_at),
            "count": len(table.rows),
            "matched": matched,
            "cpus": table.cpus,
            "rows": rows,
        }
        return Response(encode_json(body), media_type=JSON)

    queries = metrics.queries = QueryGate()  # a few store queries at a time; the rest 503

    @metrics.get("/metrics/history", summary="Recent samples, one column per field")
    async def recent(
        seconds: str = Query("300", description="How far back, in seconds."),
        fields: str = Query(",".join(DEFAULT_FIELDS), description="Comma-separated groups."),
        # History store (docs/history.md): absolute ranges, coarser steps, older points.
        start: str | None = Query(None, alias="from", description="Epoch seconds or ISO-8601."),
        end: str | None = Query(None, alias="to", description="Epoch seconds or ISO-8601."),
        step: str | None = Query(None, description="Seconds per point; adds min and max."),
    ) -> Response:
        if store is not None or start is not None or end is not None or step is not None:
            return await stored_history_response(
                hub.history, store, seconds=seconds, fields=fields, start=start, end=end,
                step=step, gate=queries, budget=responses,
            )  # fmt: skip
        return history_response(hub, seconds, fields, settings.history_seconds, responses)

    return metrics


async def latest_response(hub: MetricsHub) -> Response:
    sample = hub.latest
    if sample is None:
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation (shutdown) that arrives just as the tick does.
            async with asyncio.timeout(5 * hub.source.interval):
                sample = await hub.wait_for_tick()
        except TimeoutError:
            return Response(encode_error("no sample yet"), status_code=503, media_type=JSON)
    return Response(encode_sample(sample, DEFAULT_FIELDS), media_type=JSON)


def history_response(
    hub: MetricsHub, seconds: str, fields: str, limit: float, budget: ResponseBudget | None = None
) -> Response:
    if hub.history is None:
        return Response(encode_error("no history kept"), status_code=404, media_type=JSON)
    try:
        span = parse_seconds(seconds, limit)
        names = parse_history_fields(fields)
    except ControlError as exc:
        return Response(encode_error(str(exc)), status_code=400, media_type=JSON)
    return budgeted(hub.history.query(names, since=time.time() - span), budget)


async def serve_stream(
    websocket: WebSocket,
    hub: MetricsHub,
    *,
    stall_timeout: float,
    on_end: Callable[[], None] | None = None,
    budget: ResponseBudget | None = None,
) -> None:
    """Accept ``websocket`` and stream ``hub``'s ticks to it until it goes away.

    Query parameters choose the view (docs/protocol.md); invalid ones get an error message
    and close code 1008. Control messages change the view while connected.

    On sysstream's protocol this returns as soon as the stream is set up: the connection
    carries on without its ASGI task (see ``WebSocketProtocol.detach``). ``on_end`` is called
    exactly once when the client is gone, whether that is before or after this returns.
    With ``budget``, the ``history=`` message is charged to it until the connection has
    taken it (close 1013 when it does not fit).
    """
    session: ControlSession | None = None
    try:
        view = await _open_stream(websocket, hub, budget)
        if view is None:
            return
        extension = websocket.scope.get("extensions", {}).get(TRANSPORT_EXTENSION)
        if extension is not None:
            sink: Sink = extension["attach"](stall_timeout)
            if not await _attach_or_refuse(websocket, hub, sink, view):
                return
            session = ControlSession(hub, sink, on_close=on_end)
            extension["detach"](session)  # the connection owns the session from here
            return
        async with anyio.create_task_group() as tasks:
            asgi_sink = AsgiSink(websocket, stall_timeout, tasks.cancel_scope.cancel)
            if not await _attach_or_refuse(websocket, hub, asgi_sink, view):
                return
            session = ControlSession(hub, asgi_sink, on_close=on_end)
            try:
                tasks.start_soon(_send_until_gone, asgi_sink, tasks.cancel_scope)
                await _serve_controls(websocket, session)
                tasks.cancel_scope.cancel()
            finally:
                session.close()
    finally:
        if session is None and on_end is not None:
            on_end()  # gone, or refused, before a session took charge


async def _open_stream(
    websocket: WebSocket, hub: MetricsHub, budget: ResponseBudget | None
) -> View | None:
    """Accept, read the view from the query and send the history asked for; None when the
    query was invalid or the history did not fit ``budget`` (the client was told and the
    connection closed)."""
    await websocket.accept()
    tick = hub.source.interval
    history_limit = hub.history.capacity * tick if hub.history is not None else 0.0
    try:
        view, history_seconds = parse_query(websocket.query_params, tick, history_limit)
        if not hub.admits(view):
            raise hub.limit_error()
    except ControlError as exc:
        await _refuse(websocket, exc)
        return None
    if history_seconds and hub.history is not None:
        body = hub.history.query(view.fields, since=time.time() - history_seconds)
        size = len(body)
        if budget is not None and not budget.reserve(size):
            await websocket.send_text(encode_error(budget.busy_message()).decode())
            await websocket.close(TRY_AGAIN_LATER, "history busy")
            return None
        # Sent before the sink is attached, with no await between query and attach on a
        # writable connection, so the history ends where the live ticks begin.
        try:
            await websocket.send_text((b'{"type":"history",' + body[1:]).decode())
        except BaseException:
            if budget is not None:
                budget.release(size)
            raise
        del body
        if budget is not None:
            _release_when_taken(websocket, budget, size)
    return view


# Tasks that hold a history message's budget until its connection has taken it.
_draining: set[asyncio.Task[None]] = set()


def _release_when_taken(websocket: WebSocket, budget: ResponseBudget, size: int) -> None:
    """The message is in the connection's write buffer: release its bytes once the buffer
    has drained (sysstream's protocol says when) or the connection is gone. Elsewhere the
    server's own flow control and stall handling hold it; it is released at once."""
    extension = websocket.scope.get("extensions", {}).get(TRANSPORT_EXTENSION)
    drained = extension.get("drained") if extension is not None else None
    if drained is None:
        budget.release(size)
        return
    task = asyncio.create_task(hold_until_drained(budget, size, drained))
    _draining.add(task)
    task.add_done_callback(_draining.discard)


async def _attach_or_refuse(websocket: WebSocket, hub: MetricsHub, sink: Sink, view: View) -> bool:
    """Attach ``sink``; False when the hub refused the view (the client was told, and the
    connection closed). Room was checked before the history was sent; another client may
    have taken the last view meanwhile."""
    try:
        hub.attach(sink, view)
    except ViewLimitError as exc:
        await _refuse(websocket, exc)
        return False
    return True


async def _refuse(websocket: WebSocket, exc: ControlError) -> None:
    await websocket.send_text(encode_error(str(exc)).decode())
    reason = "too many views" if isinstance(exc, ViewLimitError) else "invalid subscription"
    await websocket.close(POLICY_VIOLATION, reason)


async def _send_until_gone(sink: AsgiSink, scope: anyio.CancelScope) -> None:
    try:
        await sink.run()
    except (WebSocketDisconnect, RuntimeError, OSError):
        scope.cancel()  # the client went away mid-send; the receive side ends too


async def _serve_controls(websocket: WebSocket, session: ControlSession) -> None:
    """The portable path's control loop: read messages until disconnect and carry out what
    ``session`` answers (the fast path hands messages to the session from the protocol)."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        outcome = session.receive(text if text is not None else message["bytes"])
        if isinstance(outcome, Close):
            await websocket.close(outcome.code, outcome.reason)
            return
        await websocket.send_text(outcome.payload.decode())
