"""sysstream: live system metrics, streamed over WebSocket.

Standalone: ``sysstream serve``. Inside an existing FastAPI app::

    app.include_router(sysstream.router(), prefix="/api/system")
"""

from __future__ import annotations

from ._sample import Sample
from ._settings import Settings, SettingsError, load_settings
from ._version import __version__
from .sansio import View
from .stream import MetricsHub, WebSocketProtocol
from .web import create_app, dashboard, operations, router

__all__ = [
    "MetricsHub",
    "Sample",
    "Settings",
    "SettingsError",
    "View",
    "WebSocketProtocol",
    "__version__",
    "create_app",
    "dashboard",
    "load_settings",
    "operations",
    "router",
]
