"""The registry as JSON: ``GET /api/system/metrics/schema`` (what the dashboard labels from)."""

from __future__ import annotations

import socket
from typing import Any

from .._registry import DEFAULT_FIELDS, GROUPS

__all__ = ["schema"]


def schema(
    interval: float, history_seconds: float, *, store: bool, processes: bool = False
) -> dict[str, Any]:
    """The registry plus what this server is and keeps: ``store`` says whether ranges older
    than the in-memory ring (``history_seconds``) can be read from the history store,
    ``processes`` whether ``GET …/metrics/processes`` lists this host's processes."""
    return {
        "hostname": socket.gethostname(),
        "interval": interval,
        "history_seconds": history_seconds,
        "store": store,
        "processes": processes,
        "default_fields": list(DEFAULT_FIELDS),
        "groups": {
            group.name: {
                "title": group.title,
                "description": group.description,
                "every": group.every,
                "history": group.history,
                "always_sampled": group.always,
                "metrics": [
                    {
                        "path": metric.path,
                        "unit": metric.unit,
                        "description": metric.description,
                        "kind": metric.kind.value,
                        "prometheus": metric.prometheus,
                        "labels": list(metric.labels),
                        "item_labels": list(metric.item_labels),
                    }
                    for metric in group.metrics
                ],
            }
            for group in GROUPS.values()
        },
    }
