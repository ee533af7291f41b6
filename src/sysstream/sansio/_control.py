"""Subscriptions with no I/O: query parameters and control messages to views, or errors.

``?fields=cpu,net&interval=2&history=300`` on connect, and
``{"type": "subscribe", "fields": [...], "interval": 2}`` while connected, both become a
:class:`View`. Every way to get it wrong raises :class:`ControlError`
with the one-line message the client receives.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .._registry import DEFAULT_FIELDS, GROUPS

__all__ = ["MAX_INTERVAL", "ControlError", "Subscribe", "parse_control", "parse_query"]

MAX_INTERVAL = 3600.0


class ControlError(ValueError):
    """Invalid subscription input; ``str()`` is the error sent to the client."""


@dataclass(frozen=True, slots=True)
class View:
    """What a client receives: which field groups, on every ``every``-th tick, and
    whether alert events too (docs/alerts.md; opt-in, so the default shape never changes)."""

    fields: tuple[str, ...] = DEFAULT_FIELDS
    every: int = 1
    alerts: bool = False


DEFAULT_VIEW = View()


@dataclass(frozen=True, slots=True)
class Subscribe:
    view: View

    def acknowledgement(self, tick: float) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "type": "subscribed",
            "fields": list(self.view.fields),
            "interval": _seconds(self.view.every * tick),
        }
        if self.view.alerts:
            reply["alerts"] = True
        return reply


def parse_fields(value: Any) -> tuple[str, ...]:
    """A list of group names; a string is read as the comma-separated query form."""
    if isinstance(value, str):
        names = [name.strip() for name in value.split(",") if name.strip()]
    elif isinstance(value, list) and all(isinstance(name, str) for name in value):
        names = value
    else:
        raise ControlError(f"expected fields as a list of names, got {_show(value)}")
    if not names:
        raise ControlError("expected at least one field")
    if len(names) > len(GROUPS):
        raise ControlError(f"expected at most {len(GROUPS)} fields, got {len(names)}")
    unknown = [name for name in names if name not in GROUPS]
    if unknown:
        raise ControlError(f"unknown field {unknown[0]!r}; known: {', '.join(GROUPS)}")
    if len(set(names)) != len(names):
        raise ControlError("expected each field once")
    return tuple(names)


def parse_interval(value: Any, tick: float) -> int:
    """Seconds between messages → every how many ticks. A whole multiple of the tick."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ControlError(f"expected interval in seconds, got {_show(value)}")
    if not tick <= value <= MAX_INTERVAL:
        raise ControlError(
            f"expected interval from {_seconds(tick)} to {MAX_INTERVAL:g} s, got {_show(value)}"
        )
    every = round(value / tick)
    if not math.isclose(every * tick, value, rel_tol=1e-9, abs_tol=1e-9):
        raise ControlError(
            f"expected interval a whole multiple of the {_seconds(tick)} s tick, got {value:g}"
        )
    return every


def parse_history(value: Any, limit: float) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ControlError(f"expected history in seconds, got {_show(value)}") from None
    if not 0 <= seconds <= limit:
        raise ControlError(f"expected history from 0 to {limit:g} s, got {_show(value)}")
    return seconds


def parse_query(params: Mapping[str, str], tick: float, history_limit: float) -> tuple[View, float]:
    """The view and history seconds asked for by a connection's query string."""
    fields = parse_fields(params["fields"]) if "fields" in params else DEFAULT_VIEW.fields
    every = parse_interval(_number(params["interval"]), tick) if "interval" in params else 1
    history = parse_history(params["history"], history_limit) if "history" in params else 0.0
    alerts = parse_alerts(params["alerts"]) if "alerts" in params else False
    return View(fields, every, alerts), history


def parse_alerts(value: Any) -> bool:
    """``alerts=1``/``true`` in a query, ``"alerts": true`` in a control message."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "0", "false"):
        return value.lower() in ("1", "true")
    raise ControlError(f"expected alerts as true or false, got {_show(value)}")


def parse_control(text: str, tick: float) -> Subscribe:
    """One control message from a client."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ControlError("expected a JSON object, got text that is not JSON") from None
    if not isinstance(message, dict):
        raise ControlError(f"expected a JSON object, got {type(message).__name__}")
    kind = message.get("type")
    if kind != "subscribe":
        raise ControlError(f"expected type 'subscribe', got {_show(kind)}")
    unknown = sorted(set(message) - {"type", "fields", "interval", "alerts"})
    if unknown:
        raise ControlError(f"unknown key {unknown[0]!r} in subscribe")
    if "fields" not in message:
        raise ControlError("expected 'fields' in subscribe")
    if not isinstance(message["fields"], list):
        raise ControlError(f"expected fields as a list of names, got {_show(message['fields'])}")
    fields = parse_fields(message["fields"])
    every = parse_interval(message["interval"], tick) if "interval" in message else 1
    alerts = message.get("alerts", False)
    if not isinstance(alerts, bool):
        raise ControlError(f"expected alerts as true or false, got {_show(alerts)}")
    return Subscribe(View(fields, every, alerts))


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # parse_interval names it in its error


def _seconds(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 6)


def _show(value: Any) -> str:
    text = orjson.dumps(value).decode() if _dumpable(value) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _dumpable(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True
