"""The HTTP face: the FastAPI router, the standalone app, dashboard, Prometheus,
access control, limits and running it all on uvicorn."""

from __future__ import annotations

from ._app import create_app
from ._dashboard import dashboard
from ._operations import operations
from ._router import router
from ._server import ServeError, run_server

__all__ = ["ServeError", "create_app", "dashboard", "operations", "router", "run_server"]
