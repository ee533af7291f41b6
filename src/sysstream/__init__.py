"""sysstream: live system metrics, streamed over WebSocket.

Standalone: ``sysstream serve``. Inside an existing FastAPI app::

    app.include_router(sysstream.router(), prefix="/api/system")
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._app import create_app
from ._dashboard import dashboard
from ._hub import MetricsHub, View
from ._protocol import WebSocketProtocol
from ._router import router
from ._sample import Sample
from ._settings import Settings, SettingsError, load_settings

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
