"""The standalone application: the metrics router under ``/api/system`` plus health."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

from fastapi import FastAPI
from prometheus_client.registry import Collector

from .._settings import Settings
from .._version import __version__
from ..alerts import AlertEvaluator, RedisCoordinator, load_rule_file
from ..fleet import Fleet
from ..sampling import Source
from ..sansio import RESERVED_HOST_ID, HostStatus
from ..store import AlertLog, HistoryStore, store_from_settings
from ..stream import Recorder
from ._alert_metrics import AlertCollector
from ._alert_routes import alert_router, stream_alerts_to
from ._dashboard import dashboard
from ._fleet_metrics import FleetCollector
from ._fleet_routes import fleet_router
from ._operations import operations
from ._router import router
from ._security import AccessMiddleware

__all__ = ["create_app"]

PREFIX = "/api/system"
FLEET_PREFIX = "/api/hosts"
ALERTS_PREFIX = "/api/alerts"


def create_app(settings: Settings | None = None, *, source: Source | None = None) -> FastAPI:
    """The sysstream server as a FastAPI app; ``sysstream serve`` runs this on uvicorn."""
    settings = settings if settings is not None else Settings()
    # History on disk (docs/history.md), unless --no-store; the router opens and closes it.
    store = store_from_settings(settings, source.interval if source else settings.interval)
    metrics = router(settings, source=source, store=store)
    app = FastAPI(title="sysstream", version=__version__, docs_url="/api/docs")
    app.include_router(metrics, prefix=PREFIX)
    # The router checks its own routes; the middleware covers the app's other protected
    # paths (/metrics, /api/docs, /openapi.json) with the same policy.
    app.add_middleware(AccessMiddleware, policy=metrics.access)
    app.state.hub = metrics.hub
    app.state.history_queries = metrics.queries
    app.state.history_budget = metrics.history_budget
    app.state.settings = settings
    app.state.store = store  # fleet hubs attach store.recorder(host)
    evaluator = _evaluator(settings, store)
    app.state.alerts = evaluator
    if settings.redis_url is not None:
        # Each served host's alert subscription, undone when the fleet forgets the host.
        subscriptions: dict[str, Callable[[], None]] = {}

        def recorders_for(host: str) -> list[Recorder]:
            # Every host's history goes to the same store, keyed by host id; every host's
            # samples to the alert evaluator.
            found: list[Recorder] = [store.recorder(host)] if store is not None else []
            if evaluator is not None:
                found.append(evaluator.recorder(host))
                # The host's hub exists once this returns: then give it the host's alerts.
                asyncio.get_running_loop().call_soon(
                    _host_alerts, evaluator, hosts.fleet, host, subscriptions
                )
            return found

        def forget(host: str) -> None:
            unsubscribe = subscriptions.pop(host, None)
            if unsubscribe is not None:
                unsubscribe()

        hosts = fleet_router(
            settings, access=metrics.access, connections=metrics.connections,
            budget=metrics.history_budget, recorders_for=recorders_for, on_forget=forget,
        )  # fmt: skip
        app.include_router(hosts, prefix=FLEET_PREFIX)
        app.state.fleet = hosts.fleet
        if evaluator is not None:
            evaluator.host_statuses = lambda: _host_statuses(hosts.fleet)
    elif evaluator is not None:
        metrics.hub.recorders.append(evaluator.recorder(RESERVED_HOST_ID))
    extra_metrics: list[Collector] = []
    if evaluator is not None:
        stream_alerts_to(evaluator, metrics.hub, None)
        app.include_router(alert_router(evaluator, access=metrics.access), prefix=ALERTS_PREFIX)
        extra_metrics.append(AlertCollector(evaluator))
    fleet = getattr(app.state, "fleet", None)
    if fleet is not None:
        extra_metrics.append(FleetCollector(fleet))
    app.include_router(
        operations(metrics, collectors=extra_metrics, fleet=fleet)
    )  # /healthz, /metrics

    # The page at / and its files under /static/: exact paths, so nothing above is shadowed.
    fleet_prefix = FLEET_PREFIX if settings.redis_url is not None else None
    alerts_prefix = ALERTS_PREFIX if evaluator is not None else None
    app.include_router(dashboard(api=PREFIX, hosts=fleet_prefix, alerts=alerts_prefix))
    return app


def _evaluator(settings: Settings, store: HistoryStore | None) -> AlertEvaluator | None:
    """The alert evaluator the settings ask for (``RuleError`` on a bad rule file)."""
    if settings.no_alerts:
        return None
    rules = load_rule_file(settings.alerts)
    log = AlertLog(store.path.parent, retention=settings.retention_15m) if store else None
    coordinator = RedisCoordinator(settings.redis_url) if settings.redis_url else None
    # In fleet mode the hubs evaluate the agents' hosts (run an agent on a hub's own host),
    # which never use the local host's id; a standalone server evaluates that id alone.
    fleet = settings.redis_url is not None
    return AlertEvaluator(
        rules, rule_file=settings.alerts, log=log, coordinator=coordinator,
        evaluates=lambda host: (host != RESERVED_HOST_ID) == fleet,
    )  # fmt: skip


def _host_alerts(
    evaluator: AlertEvaluator,
    fleet: Fleet,
    host: str,
    subscriptions: dict[str, Callable[[], None]],
) -> None:
    """``/api/hosts/{host}/metrics?alerts=1`` gets that host's alerts (once, however often
    the host was forgotten and served again meanwhile)."""
    remote = fleet.hosts.get(host)
    if remote is None:
        return  # forgotten before this ran
    previous = subscriptions.pop(host, None)
    if previous is not None:
        previous()
    subscriptions[host] = stream_alerts_to(evaluator, remote.hub, host)


def _host_statuses(fleet: Fleet) -> Iterator[tuple[str, bool, float]]:
    """(host, offline, at) for the built-in host_offline rule, stamped with the host's own
    clock (its last tick), so every hub stamps a transition alike."""
    if fleet.state.value != "connected":
        return  # without Redis every host looks offline: no verdict
    now = time.time()
    for host, remote in list(fleet.hosts.items()):
        record = remote.record
        if record.latest is None:
            continue
        offline = record.status(now) is HostStatus.OFFLINE
        at = record.latest.timestamp + (record.grace if offline else 0.0)
        yield host, offline, at
