"""The registry as JSON: ``GET /api/system/metrics/schema`` (what the dashboard labels from)."""

from __future__ import annotations

import socket
from collections.abc import Collection
from typing import Any

from .._registry import DEFAULT_FIELDS, GROUPS

__all__ = ["schema"]


def schema(
    interval: float,
    history_seconds: float,
    *,
    store: bool,
    processes: bool = False,
    hostname: str | None = None,
    groups: Collection[str] | None = None,
) -> dict[str, Any]:
    """The registry plus what this server is and keeps: ``store`` says whether ranges older
    than the in-memory ring (``history_seconds``) can be read from the history store,
    ``processes`` whether ``GET …/metrics/processes`` lists this host's processes.
    ``hostname`` and ``groups`` describe another host (a fleet host): its id, and the groups
    its stream carries (default: this one's name, and every group)."""
    return {
        "hostname": socket.gethostname() if hostname is None else hostname,
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
            if groups is None or group.name in groups
        },
    }
