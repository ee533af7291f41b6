"""Notification bodies with no I/O: Prometheus Alertmanager's webhook format (version 4),
and the title and text of a chat notification (Apprise).

One notification carries one alert event, so a receiver written for Alertmanager's
webhook (``status``, ``alerts[].labels``, ``startsAt``, ``endsAt``, ``fingerprint``) works
unchanged.
"""

from __future__ import annotations

from typing import Any

from ._alerting import AlertEvent, EventKind
from ._messages import format_timestamp

__all__ = ["RECEIVER", "notification_text", "webhook_body"]

RECEIVER = "sysstream"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt while an alert is firing


def webhook_body(event: AlertEvent, external_url: str = "") -> dict[str, Any]:
    status = "resolved" if event.kind is EventKind.RESOLVED else "firing"
    labels = {"alertname": event.rule, **event.labels}
    if event.severity is not None:
        labels["severity"] = event.severity.value
    annotations = {"summary": event.summary or event.rule, "description": _describe(event)}
    if event.value is not None:
        annotations["value"] = f"{event.value:g}"
    if event.threshold is not None:
        annotations["threshold"] = f"{event.threshold:g}"
    alert = {
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": format_timestamp(event.since),
        "endsAt": format_timestamp(event.at) if status == "resolved" else ZERO_TIME,
        "generatorURL": external_url,
        "fingerprint": event.fingerprint,
    }
    group = {"alertname": event.rule}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{event.rule}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": RECEIVER,
        "groupLabels": group,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": [alert],
    }


def notification_text(event: AlertEvent) -> tuple[str, str]:
    """(title, body) for a chat or push notification."""
    where = ", ".join(f"{k}={v}" for k, v in event.labels.items())
    if event.kind is EventKind.RESOLVED:
        title = f"[RESOLVED] {event.rule} on {where}"
    else:
        severity = event.severity.value.upper() if event.severity else "FIRING"
        again = " (still firing)" if event.kind is EventKind.REPEAT else ""
        title = f"[{severity}] {event.rule} on {where}{again}"
    return title, _describe(event)


def _describe(event: AlertEvent) -> str:
    what = event.summary or event.rule
    if event.kind is EventKind.RESOLVED:
        since = format_timestamp(event.since)
        return f"{what}: resolved at {format_timestamp(event.at)} (since {since})"
    value = "no data" if event.value is None else f"{event.value:g}"
    threshold = "" if event.threshold is None else f" (threshold {event.threshold:g})"
    return f"{what}: {value}{threshold} since {format_timestamp(event.since)}"
