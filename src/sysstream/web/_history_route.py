"""``GET /metrics/history`` over both histories: the in-memory ring and the SQLite store.

:func:`parse_range` reads ``?seconds=`` or ``?from=&to=`` (epoch seconds or ISO-8601) and
``&step=`` without I/O; :func:`merge_ring` puts the ring's newest points over the store's
raw ones. :func:`history_response` is the thin layer the router calls: a recent range at
the sampling step comes from the ring alone (no disk, no decode); anything older, or
coarser, is read from the store in a worker thread.
"""

from __future__ import annotations

import bisect
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import orjson
from fastapi.responses import Response

from .._registry import GROUPS
from ..sansio import ControlError, encode_error, parse_fields
from ..store import HistoryStore, QueryAborted
from ..stream import History
from ._budget import ResponseBudget, budgeted, busy

__all__ = [
    "MAX_CELLS",
    "HistoryRange",
    "QueryGate",
    "history_response",
    "merge_ring",
    "parse_history_fields",
    "parse_range",
    "parse_seconds",
]

JSON = "application/json"
# Points × fields one request may return: an hour of every group at 1 s (~50,000) fits; a
# week of every group at step=61 (~150,000, 7 s of CPU and tens of MB) does not.
MAX_CELLS = 100_000
# The encoded body, whatever the values weigh (mounts, interfaces, containers).
MAX_BODY_BYTES = 16 * 1024 * 1024


class QueryGate:
    """Store queries run at most ``workers`` at a time, with at most ``waiting`` more
    queued; past that a request is refused at once (503) instead of piling up threads,
    memory and CPU behind the others."""

    def __init__(self, workers: int = 2, waiting: int = 8) -> None:
        self.limiter = anyio.CapacityLimiter(workers)
        self.capacity = workers + waiting
        self.admitted = 0

    def full(self) -> bool:
        return self.admitted >= self.capacity


@dataclass(frozen=True, slots=True)
class HistoryRange:
    start: float  # epoch seconds
    end: float
    step: float | None  # None: the tier's own step


def parse_range(
    *,
    seconds: str | None,
    start: str | None,
    end: str | None,
    step: str | None,
    now: float,
    limit: float,
) -> HistoryRange:
    """The range a history request asks for. ``from`` wins over ``seconds``; ``to``
    defaults to ``now``; the range may reach at most ``limit`` seconds back from ``now``."""
    stop = now if end is None else _instant(end, "to")
    if start is not None:
        begin = _instant(start, "from")
    else:
        begin = stop - parse_seconds(seconds if seconds is not None else "300", limit)
    if begin > stop:
        raise ControlError(f"expected from <= to, got {begin:.3f} > {stop:.3f}")
    if begin < now - limit:
        raise ControlError(
            f"expected a range within the last {limit:g} s, got one from {begin:.3f}"
        )
    every = None if step is None else _positive(step, "step")
    return HistoryRange(begin, stop, every)


def parse_seconds(text: str, limit: float) -> float:
    """``?seconds=``, how far back a history request reaches: 0 to ``limit`` (``math.inf``
    with a store, which keeps what it keeps). Every history route reads it here, so its
    errors name the parameter the client sent, with or without a store."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= limit):
        bounds = f"from 0 to {limit:g}" if math.isfinite(limit) else ">= 0"
        shown = text[:40] if math.isfinite(value) else repr(text[:40])
        raise ControlError(f"expected seconds {bounds}, got {shown}")
    return value


def _instant(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ControlError(
                f"expected {name} as epoch seconds or ISO-8601, got {text[:40]!r}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)  # like the stream's timestamps
        return moment.timestamp()
    if not math.isfinite(value):
        raise ControlError(f"expected {name} as epoch seconds or ISO-8601, got {text[:40]!r}")
    return value


def _positive(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ControlError(f"expected {name} as a number of seconds > 0, got {text[:40]!r}")
    return value


def parse_history_fields(text: str) -> tuple[str, ...]:
    """The groups a history request names; a group that is not kept in history (live
    only, such as ``processes``) is refused, with a store or without one."""
    names = parse_fields(text)
    unkept = [name for name in names if not GROUPS[name].history]
    if unkept:
        raise ControlError(f"field {unkept[0]!r} is not kept in history")
    return names


def merge_ring(stored: dict[str, Any], ring_body: bytes, oldest: float) -> dict[str, Any]:
    """``stored`` (raw points from the store) with every point from ``oldest`` on replaced
    by the ring's (``ring_body``, the ring's columnar JSON), which is never behind."""
    ring = orjson.loads(ring_body)
    cut = bisect.bisect_left(stored["timestamps"], round(oldest, 3))
    merged = dict(stored)
    merged["timestamps"] = stored["timestamps"][:cut] + ring["timestamps"]
    merged["values"] = {
        name: column[:cut] + ring["values"][name] for name, column in stored["values"].items()
    }
    return merged


async def history_response(
    ring: History | None,
    store: HistoryStore | None,
    *,
    seconds: str | None,
    fields: str,
    start: str | None,
    end: str | None,
    step: str | None,
    gate: QueryGate | None = None,
    budget: ResponseBudget | None = None,
) -> Response:
    """The body of ``GET /metrics/history`` from the ring and, when there is one, the store;
    with ``budget``, the body is charged to it until sent (or refused with 503)."""
    now = time.time()
    if store is not None:
        limit = math.inf  # older than the coarsest tier: what is left, maybe nothing
    elif ring is not None:
        limit = ring.capacity * ring.interval
    else:
        return Response(encode_error("no history kept"), status_code=404, media_type=JSON)
    try:
        span = parse_range(seconds=seconds, start=start, end=end, step=step, now=now, limit=limit)
        names = parse_history_fields(fields)
        if store is not None:
            points = store.estimate_points(span.start, span.end, span.step)
        elif ring is not None:
            points = math.floor((span.end - span.start) / max(span.step or 0, ring.interval)) + 1
        if points * len(names) > MAX_CELLS:
            raise ControlError(
                f"expected at most {MAX_CELLS} points x fields per query, got {points} points "
                f"x {len(names)} fields: narrow the range, raise step or ask for fewer fields"
            )
    except ControlError as exc:
        return Response(encode_error(str(exc)), status_code=400, media_type=JSON)
    oldest = ring.oldest if ring is not None else None
    at_tick = span.step is None or (ring is not None and span.step <= ring.interval)
    if ring is not None and (
        store is None or (at_tick and oldest is not None and span.start >= oldest)
    ):
        return budgeted(ring.query(names, since=span.start, until=span.end), budget)
    assert store is not None
    gate = gate if gate is not None else QueryGate()
    if gate.full():
        return busy("too many history queries in progress; try again shortly")
    gate.admitted += 1
    try:
        result = await anyio.to_thread.run_sync(
            lambda: store.query(span.start, span.end, names, span.step), limiter=gate.limiter
        )
    except QueryAborted as exc:
        return busy(str(exc))
    finally:
        gate.admitted -= 1
    if "min" not in result and ring is not None and oldest is not None and oldest <= span.end:
        ring_body = ring.query(names, since=max(span.start, oldest), until=span.end)
        result = merge_ring(result, ring_body, max(span.start, oldest))
    body = orjson.dumps(result)
    if len(body) > MAX_BODY_BYTES:
        message = (
            f"expected a response of at most {MAX_BODY_BYTES} bytes, got {len(body)}: "
            "narrow the range, raise step or ask for fewer fields"
        )
        return Response(encode_error(message), status_code=400, media_type=JSON)
    return budgeted(body, budget)
