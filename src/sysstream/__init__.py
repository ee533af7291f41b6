"""sysstream: live system metrics, streamed over WebSocket.

Standalone: ``sysstream serve``. Inside an existing FastAPI app::

    app.include_router(sysstream.router(), prefix="/api/system")
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._sample import Sample
from ._settings import Settings, SettingsError, load_settings
from .stream._hub import MetricsHub, View
from .stream._protocol import WebSocketProtocol
from .web._app import create_app
from .web._dashboard import dashboard
from .web._router import router

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
    "router",
]
