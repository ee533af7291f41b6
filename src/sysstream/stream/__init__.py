"""The stream: the hub that encodes each tick once per view, the in-memory history ring,
per-client sinks and the fast-path WebSocket protocol for uvicorn."""

from __future__ import annotations

from ._history import History
from ._hub import MetricsHub, Recorder, ViewLimitError
from ._protocol import TRANSPORT_EXTENSION, WebSocketProtocol
from ._sinks import AsgiSink, Sink

__all__ = [
    "TRANSPORT_EXTENSION",
    "AsgiSink",
    "History",
    "MetricsHub",
    "Recorder",
    "Sink",
    "ViewLimitError",
    "WebSocketProtocol",
]
