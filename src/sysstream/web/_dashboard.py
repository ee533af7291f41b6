"""The live dashboard: plain static files (``static/``) served by a router.

``create_app`` serves the page at ``/``; an embedding app includes it under any prefix::

    app.include_router(sysstream.router(), prefix="/api/system")
    app.include_router(sysstream.dashboard(api="/api/system"), prefix="/dashboard")

The page finds the API through ``<meta name="sysstream-api">``, which this router fills with
the API path *relative to the page*; so it keeps working behind a reverse proxy that adds a
path prefix. Everything the page loads (ES modules, CSS, the vendored uPlot) comes from this
router; the page makes no request to any other origin, and its Content-Security-Policy says so.
"""

from __future__ import annotations

import html
import posixpath
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["STATIC_DIR", "dashboard"]

STATIC_DIR = Path(__file__).parent / "static"

_API_META = '<meta name="sysstream-api" content="api/system">'
_HOSTS_META = '<meta name="sysstream-hosts" content="">'
_ALERTS_META = '<meta name="sysstream-alerts" content="">'

# 'self' covers same-origin ws:/wss: in current browsers; inline styles are uPlot's.
_CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'self'; form-action 'none'"
)


def dashboard(
    *, api: str = "/api/system", hosts: str | None = None, alerts: str | None = None
) -> APIRouter:
    """A router serving the dashboard at its ``/`` and its assets under ``/static/``.

    ``api`` is the app-absolute path where :func:`sysstream.router` is included; ``hosts``,
    where the fleet routes are (``/api/hosts``), or None on a single server, so the page
    does not even ask for them; ``alerts``, where the alert routes are (``/api/alerts``),
    or None when the server evaluates none.
    """
    api = _absolute("api", api)
    hosts = None if hosts is None else _absolute("hosts", hosts)
    alerts = None if alerts is None else _absolute("alerts", alerts)
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    for meta in (_API_META, _HOSTS_META, _ALERTS_META):
        if meta not in page:
            raise RuntimeError(f"expected {meta!r} in {STATIC_DIR / 'index.html'}")
    files = StaticFiles(directory=STATIC_DIR)
    routes = APIRouter(include_in_schema=False)

    @routes.get("/")
    async def index(request: Request) -> Response:
        # This page's path in the app's own coordinates ("/" or "/ops/dashboard/"; without
        # the root_path a proxy adds), so the relative API path holds behind any prefix.
        page_dir = _app_path(request.scope)
        body = page.replace(_API_META, _meta("sysstream-api", posixpath.relpath(api, page_dir)))
        if hosts is not None:
            hosts_path = posixpath.relpath(hosts, page_dir)
            body = body.replace(_HOSTS_META, _meta("sysstream-hosts", hosts_path))
        if alerts is not None:
            alerts_path = posixpath.relpath(alerts, page_dir)
            body = body.replace(_ALERTS_META, _meta("sysstream-alerts", alerts_path))
        return HTMLResponse(
            body,
            headers={
                "Content-Security-Policy": _CSP,
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-cache",
            },
        )

    @routes.get("/static/{path:path}")
    async def asset(path: str, request: Request) -> Response:
        # StaticFiles resolves the path inside STATIC_DIR (no traversal) and answers
        # conditional requests with 304.
        response = await files.get_response(path, request.scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Cache-Control", "no-cache")
        return response

    return routes


def _app_path(scope: Scope) -> str:
    path = str(scope["path"])
    root = str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


def _absolute(name: str, path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"expected an absolute {name} path like '/api/system', got {path!r}")
    return path.rstrip("/") or "/"


def _meta(name: str, content: str) -> str:
    return f'<meta name="{name}" content="{html.escape(content)}">'
