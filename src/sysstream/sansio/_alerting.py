"""Alert evaluation with no I/O: windows, the per-series state machine, and the engine.

Every rule applies to one or more *series*: a host plus the label values of each ``*`` in
the rule's metric (one per mount for ``mounts.*.percent``). Each series has a
:class:`Window` that aggregates the values seen over the rule's window, and a state:

    ok ──breach──▶ pending ──breach lasted `for`──▶ firing(warning|critical) ──clear──▶ ok
        ◀─ no breach ─┘                                  (resolved)

Every change of state is an :class:`AlertEvent`, stamped with the sample's own time, so
hubs that see the same ticks make the same transitions at the same instants (fleet mode
relies on this to notify each transition once). While firing, the clear threshold and
the clear duration keep a value that hovers around the threshold from flapping; a repeat
event comes every ``repeat`` seconds.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ._messages import format_timestamp
from ._rules import (
    HOST_OFFLINE_METRIC,
    Aggregate,
    Comparison,
    Rule,
    RuleSet,
    Severity,
)

__all__ = ["AlertEngine", "AlertEvent", "AlertState", "EventKind", "Window", "fingerprint"]

# A window is trusted once it holds this share of its span: right after start, a 5-minute
# average over the last 20 seconds would fire on a spike.
WARM = 0.9


class AlertState(enum.StrEnum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"


class EventKind(enum.StrEnum):
    PENDING = "pending"  # ok → pending: breaching, waiting out `for`
    CANCELLED = "cancelled"  # pending → ok: the breach did not last
    FIRING = "firing"  # → firing, or a change of severity while firing
    REPEAT = "repeat"  # still firing after `repeat` seconds (a notification, not a transition)
    RESOLVED = "resolved"  # firing → ok

    @property
    def notifies(self) -> bool:
        return self in (EventKind.FIRING, EventKind.REPEAT, EventKind.RESOLVED)


def fingerprint(rule: str, labels: Mapping[str, str]) -> str:
    """A stable id of one series of one rule (Alertmanager's ``fingerprint``)."""
    text = rule + "\0" + "\0".join(f"{k}={labels[k]}" for k in sorted(labels))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class AlertEvent:
    kind: EventKind
    rule: str
    labels: Mapping[str, str]  # host first, then the metric's labels
    severity: Severity | None
    value: float | None
    threshold: float | None
    at: float  # epoch seconds of the sample that caused it
    since: float  # when the series started pending or firing
    summary: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.labels)

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.kind.value,
            "rule": self.rule,
            "labels": dict(self.labels),
            "severity": None if self.severity is None else self.severity.value,
            "value": self.value,
            "threshold": self.threshold,
            "at": format_timestamp(self.at),
            "since": format_timestamp(self.since),
            "summary": self.summary,
            "fingerprint": self.fingerprint,
        }


_LAST, _AVG, _MAX = Aggregate.LAST, Aggregate.AVG, Aggregate.MAX

# A window keeps at most this many buckets, whatever its length: an hour's window at 1 s
# ticks holds 60 one-minute buckets, not 3,600 points (1,000 hosts × 10 rules stay small).
BUCKETS = 60


class Window:
    """The aggregate of the values seen over the last ``seconds`` (0: the latest alone).

    Values are summed into ``seconds / 60``-wide buckets; a bucket leaves the window once
    its start is ``seconds`` old, so the span covered is exact to one bucket (a tick, for
    windows up to a minute at 1 s ticks).
    """

    __slots__ = (
        "_best", "_buckets", "_closes", "_count", "_current", "_current_best",
        "_current_count", "_current_end", "_current_total", "_ready_at", "_total",
        "aggregate", "first", "seconds", "width",
    )  # fmt: skip

    def __init__(self, aggregate: Aggregate, seconds: float) -> None:
        if seconds <= 0 or aggregate is Aggregate.LAST:
            raise ValueError(f"expected avg/max/min over seconds > 0, got {aggregate} {seconds}")
        self.aggregate = aggregate
        self.seconds = seconds
        self.width = seconds / BUCKETS
        self.first: float | None = None
        self._ready_at = math.inf  # when the window covers enough of its span to be trusted
        # avg: closed buckets as (start, total, count), with their running total and count
        self._buckets: deque[tuple[float, float, int]] = deque()
        self._total = 0.0
        self._count = 0
        self._closes = 0
        # max/min: closed buckets as (start, best), a monotonic deque whose front is the best
        self._best: deque[tuple[float, float]] = deque()
        self._current = -math.inf  # the open bucket's start and end
        self._current_end = -math.inf
        self._current_total = 0.0
        self._current_count = 0
        self._current_best = 0.0

    def add(self, at: float, value: float) -> float | None:
        """Add a value; returns the aggregate, or None while the window is still filling."""
        # Called for every series on every tick: the same-bucket case is a few additions.
        aggregate = self.aggregate
        if at < self._current_end:
            self._current_total += value
            self._current_count += 1
            if aggregate is not _AVG:
                best = self._current_best
                if (value > best) if aggregate is _MAX else (value < best):
                    self._current_best = value
        else:
            self._open(at, value)
        if at < self._ready_at:
            return None
        if aggregate is _AVG:
            return (self._total + self._current_total) / (self._count + self._current_count)
        best = self._current_best
        closed = self._best
        if closed:
            front = closed[0][1]
            if (front > best) if aggregate is _MAX else (front < best):
                return front
        return best

    def _open(self, at: float, value: float) -> None:
        """A value past the open bucket: close it, open the next, let old buckets go."""
        if self.first is None:
            self.first = at
            self._ready_at = at + self.seconds * WARM
        upward = self.aggregate is _MAX
        if self._current_count:
            self._close(upward)
        width = self.width
        self._current = start = at - at % width
        self._current_end = start + width
        self._current_total = value
        self._current_count = 1
        self._current_best = value
        horizon = at - self.seconds
        if self.aggregate is _AVG:
            buckets = self._buckets
            while buckets and buckets[0][0] <= horizon:
                _, total, count = buckets.popleft()
                self._total -= total
                self._count -= count
        else:
            closed = self._best
            while closed and closed[0][0] <= horizon:
                closed.popleft()

    def _close(self, upward: bool) -> None:
        if self.aggregate is _AVG:
            self._buckets.append((self._current, self._current_total, self._current_count))
            self._total += self._current_total
            self._count += self._current_count
            self._closes += 1
            if self._closes >= 4096:  # bound the float error of the running sum
                self._closes = 0
                self._total = sum(total for _, total, _ in self._buckets)
            return
        best = self._current_best
        closed = self._best
        while closed and ((closed[-1][1] <= best) if upward else (closed[-1][1] >= best)):
            closed.pop()
        closed.append((self._current, best))


class _Series:
    """One rule's state for one series."""

    __slots__ = (
        "calm",
        "clearing_since",
        "labels",
        "notified_at",
        "pending_since",
        "rule",
        "seen",
        "severity",
        "since",
        "state",
        "threshold",
        "value",
        "window",
    )

    def __init__(self, rule: Rule, labels: dict[str, str]) -> None:
        self.rule = rule
        self.labels = labels
        self.window = _window_for(rule)
        self.calm = _calm_check(rule)
        self.state = AlertState.OK
        self.severity: Severity | None = None
        self.pending_since = 0.0
        self.since = 0.0
        self.notified_at = 0.0
        self.clearing_since: float | None = None
        self.value: float | None = None
        self.threshold: float | None = None
        self.seen = 0.0

    def event(self, kind: EventKind, at: float) -> AlertEvent:
        return AlertEvent(
            kind,
            self.rule.name,
            self.labels,
            self.severity,
            self.value,
            self.threshold,
            at,
            self.since
            if self.state is AlertState.FIRING or kind is EventKind.RESOLVED
            else self.pending_since,
            self.rule.summary,
        )

    def active(self) -> dict[str, Any]:
        since = self.since if self.state is AlertState.FIRING else self.pending_since
        return {
            "rule": self.rule.name,
            "state": self.state.value,
            "severity": None if self.severity is None else self.severity.value,
            "labels": dict(self.labels),
            "value": self.value,
            "threshold": self.threshold,
            "since": format_timestamp(since),
            "since_epoch": since,
            "notified_at": self.notified_at,
            "summary": self.rule.summary,
            "fingerprint": fingerprint(self.rule.name, self.labels),
        }


def _window_for(rule: Rule) -> Window | None:
    """The rule's window; None for the latest value alone (no state to keep)."""
    if rule.window <= 0 or rule.aggregate is Aggregate.LAST:
        return None  # `last` over any window is the latest value
    return Window(rule.aggregate, rule.window)


def _calm_check(rule: Rule) -> Callable[[float], bool] | None:
    """For fixed thresholds, a test that is True when a value breaches neither: the common
    case, decided with one comparison. None when a threshold comes from the sample."""
    levels = [t.value for t in (rule.warning, rule.critical) if t is not None]
    if len(levels) != sum(t is not None for t in (rule.warning, rule.critical)):
        return None
    fixed = [v for v in levels if v is not None]
    if not fixed:
        return None
    op = rule.op
    lowest = float(
        min(fixed) if op.upward else max(fixed)
    )  # float: int.__ge__(float) is NotImplemented
    # `lowest.__ge__(value)` is `value <= lowest`: for `>`, calm means not above the lowest.
    return {
        Comparison.ABOVE: lowest.__ge__,
        Comparison.AT_LEAST: lowest.__gt__,
        Comparison.BELOW: lowest.__le__,
        Comparison.AT_MOST: lowest.__lt__,
    }[op]


def _level(
    rule: Rule, value: float, warning: float | None, critical: float | None, firing: Severity | None
) -> Severity | None:
    """The severity ``value`` calls for; while firing, thresholds move by the clear margin."""
    op = rule.op
    if firing is None:
        if critical is not None and op.holds(value, critical):
            return Severity.CRITICAL
        if warning is not None and op.holds(value, warning):
            return Severity.WARNING
        return None
    lowest = warning if warning is not None else critical
    assert lowest is not None
    margin = lowest - rule.clear if rule.clear is not None else 0.0
    if critical is not None:
        kept = firing is Severity.CRITICAL and op.holds(value, critical - margin)
        if kept or op.holds(value, critical):
            return Severity.CRITICAL
    if op.holds(value, lowest - margin):
        return Severity.WARNING if warning is not None else Severity.CRITICAL
    return None


class _Compiled:
    """A rule with its metric path split for fast lookups."""

    __slots__ = ("head", "leaf", "parts", "path", "rule", "series")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.parts = rule.metric.split(".")
        self.head = self.parts[0]
        # Without a `*`, the keys under the head: one series, read with plain lookups.
        self.path = tuple(self.parts[1:]) if "*" not in self.parts else None
        # `group.*.leaf` over an object of objects (mounts): walked without recursion.
        shape = len(self.parts) == 3 and self.parts[1] == "*" and self.parts[2] != "*"
        self.leaf = self.parts[2] if shape else None
        # host → label values → series, or None for a series the selectors leave out
        self.series: dict[str, dict[tuple[str, ...], _Series | None]] = {}


def _leaves(
    value: Any, parts: list[str], index: int, labels: tuple[str, ...], parent: Any
) -> Iterator[tuple[tuple[str, ...], float, Any]]:
    """(label values, number, the dict holding it) for each leaf of ``value`` at ``parts``."""
    if index == len(parts):
        if isinstance(value, int | float) and not isinstance(value, bool):
            yield labels, float(value), parent
        return
    part = parts[index]
    if part != "*":
        if isinstance(value, dict) and part in value:
            yield from _leaves(value[part], parts, index + 1, labels, value)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, parts, index + 1, (*labels, str(key)), value)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            name = item.get("label", position) if isinstance(item, dict) else position
            yield from _leaves(item, parts, index + 1, (*labels, str(name)), value)


_OK = AlertState.OK


class AlertEngine:
    """Every rule's state for every series of every host, fed samples in time order.

    ``stale_after``: a series missing from a host's samples this long (a mount that went
    away) is dropped, resolved if it was firing.
    """

    def __init__(self, rules: RuleSet, *, stale_after: float = 60.0) -> None:
        self.stale_after = stale_after
        self._compiled: list[_Compiled] = []
        self._offline: list[_Compiled] = []
        self._host_seen: dict[str, float] = {}
        # host → each compiled rule's series table, in rule order (one lookup per sample)
        self._tables: dict[str, list[dict[tuple[str, ...], _Series | None]]] = {}
        self.rules = rules
        self.replace_rules(rules)

    # Rules

    def replace_rules(self, rules: RuleSet, at: float | None = None) -> list[AlertEvent]:
        """Swap in new rules, keeping the state of series whose rule is still there.

        Firing series of rules that are gone are resolved (stamped ``at``).
        """
        old = {c.rule.name: c for c in [*self._compiled, *self._offline]}
        self.rules = rules
        self._compiled, self._offline = [], []
        self._tables = {}
        for rule in rules.rules:
            compiled = _Compiled(rule)
            previous = old.pop(rule.name, None)
            if previous is not None:
                same_data = (previous.rule.metric, previous.rule.aggregate, previous.rule.window)
                for host, by_values in previous.series.items():
                    kept = compiled.series[host] = {}
                    for values, series in by_values.items():
                        if series is None:
                            continue  # selectors may have changed: decide again
                        if not rule.selects(series.labels):
                            continue
                        series.rule = rule
                        series.calm = _calm_check(rule)
                        if same_data != (rule.metric, rule.aggregate, rule.window):
                            series.window = _window_for(rule)
                        kept[values] = series
            if rule.metric == HOST_OFFLINE_METRIC:
                self._offline.append(compiled)
            else:
                self._compiled.append(compiled)
        events: list[AlertEvent] = []
        for gone in old.values():
            for by_values in gone.series.values():
                for series in by_values.values():
                    if series is not None and series.state is AlertState.FIRING:
                        stamp = at if at is not None else series.seen
                        events.append(self._resolve(series, stamp))
        return events

    # Feeding

    def observe(self, host: str, at: float, values: Mapping[str, Any]) -> list[AlertEvent]:
        """One sample of ``host`` taken at ``at``; the events it causes."""
        events: list[AlertEvent] = []
        self._host_seen[host] = at
        tables = self._tables.get(host)
        if tables is None:
            tables = self._tables[host] = [c.series.setdefault(host, {}) for c in self._compiled]
        for compiled, table in zip(self._compiled, tables, strict=True):
            root = values.get(compiled.head)
            if root is None:
                continue
            path = compiled.path
            if path is not None:
                value, parent = root, values
                for key in path:
                    if type(value) is not dict:
                        break
                    parent, value = value, value.get(key)
                if type(value) is not float and type(value) is not int:
                    continue  # absent, null (a rate's first tick) or not a number
                series = table.get(())
                if series is None:
                    if () in table:
                        continue
                    series = self._new_series(compiled, host, (), table)
                    if series is None:
                        continue
                # _step, inlined for the common case: a calm series decided in one test.
                window = series.window
                aggregate = value if window is None else window.add(at, value)
                series.seen = at
                if aggregate is None:
                    continue
                if series.state is _OK and series.calm is not None and series.calm(aggregate):
                    continue
                self._decide(series, at, aggregate, parent, events)
                continue
            leaf = compiled.leaf
            if leaf is not None and isinstance(root, dict):
                # `group.*.leaf` over an object of objects (mounts): a flat loop.
                for key, item in root.items():
                    if not isinstance(item, dict):
                        continue
                    number = item.get(leaf)
                    if type(number) is not float and type(number) is not int:
                        continue
                    label_values: tuple[str, ...] = (key,)
                    series = table.get(label_values)
                    if series is None:
                        if label_values in table:
                            continue
                        series = self._new_series(compiled, host, label_values, table)
                        if series is None:
                            continue
                    window = series.window
                    aggregate = number if window is None else window.add(at, number)
                    series.seen = at
                    if aggregate is None:
                        continue
                    if series.state is _OK and series.calm is not None and series.calm(aggregate):
                        continue
                    self._decide(series, at, aggregate, item, events)
                continue
            for label_values, number, parent in _leaves(root, compiled.parts, 1, (), values):
                series = table.get(label_values)
                if series is None:
                    if label_values in table:
                        continue
                    series = self._new_series(compiled, host, label_values, table)
                    if series is None:
                        continue
                self._step(series, at, number, parent, events)
        return events

    def host_status(self, host: str, offline: bool, at: float) -> list[AlertEvent]:
        """Feed the built-in ``host.offline`` metric (1 offline, 0 online) for ``host``."""
        events: list[AlertEvent] = []
        for compiled in self._offline:
            table = compiled.series.setdefault(host, {})
            series = table.get(())
            if series is None and () not in table:
                series = self._new_series(compiled, host, (), table)
            if series is not None:
                self._step(series, at, 1.0 if offline else 0.0, None, events)
        return events

    def sweep(self) -> list[AlertEvent]:
        """Drop series that stopped appearing in their host's samples."""
        events: list[AlertEvent] = []
        for compiled in self._compiled:
            for host, table in compiled.series.items():
                latest = self._host_seen.get(host, 0.0)
                gone = [
                    values
                    for values, series in table.items()
                    if series is not None and latest - series.seen > self.stale_after
                ]
                for values in gone:
                    series = table.pop(values)
                    assert series is not None
                    if series.state is AlertState.FIRING:
                        events.append(self._resolve(series, latest))
        return events

    def forget_host(self, host: str) -> None:
        for compiled in [*self._compiled, *self._offline]:
            compiled.series.pop(host, None)
        self._host_seen.pop(host, None)
        self._tables.pop(host, None)

    def _new_series(
        self,
        compiled: _Compiled,
        host: str,
        label_values: tuple[str, ...],
        table: dict[tuple[str, ...], _Series | None],
    ) -> _Series | None:
        rule = compiled.rule
        labels = {"host": host, **dict(zip(rule.labels, label_values, strict=False))}
        series = _Series(rule, labels) if rule.selects(labels) else None
        table[label_values] = series
        return series

    # The state machine

    def _step(
        self,
        series: _Series,
        at: float,
        value: float,
        siblings: Any,
        events: list[AlertEvent],
    ) -> None:
        series.seen = at
        window = series.window
        aggregate: float | None
        if window is None:
            aggregate = value
        else:
            aggregate = window.add(at, value)
            if aggregate is None:
                return  # still filling the window: no verdict either way
        calm = series.calm
        if series.state is _OK and calm is not None and calm(aggregate):
            return  # the common case: all is well, nothing to decide
        self._decide(series, at, aggregate, siblings, events)

    def _decide(
        self,
        series: _Series,
        at: float,
        aggregate: float,
        siblings: Any,
        events: list[AlertEvent],
    ) -> None:
        """The state machine, for an aggregate that needs a verdict."""
        state = series.state
        rule = series.rule
        warning = rule.warning.resolve(siblings) if rule.warning is not None else None
        critical = rule.critical.resolve(siblings) if rule.critical is not None else None
        if state is _OK:
            if warning is None and critical is None:
                return
            level = _level(rule, aggregate, warning, critical, None)
            if level is None:
                return
            series.value = aggregate
            series.severity = level
            series.threshold = critical if level is Severity.CRITICAL else warning
            series.pending_since = at
            if rule.for_ <= 0:
                self._fire(series, at, events)
            else:
                series.state = AlertState.PENDING
                events.append(series.event(EventKind.PENDING, at))
            return
        series.value = aggregate
        if state is AlertState.PENDING:
            level = _level(rule, aggregate, warning, critical, None)
            if level is None:
                series.state = AlertState.OK
                events.append(series.event(EventKind.CANCELLED, at))
                series.severity = None
                return
            series.severity = level
            series.threshold = critical if level is Severity.CRITICAL else warning
            if at - series.pending_since >= rule.for_:
                self._fire(series, at, events)
            return
        # Firing
        level = (
            _level(rule, aggregate, warning, critical, series.severity)
            if warning is not None or critical is not None
            else None
        )
        if level is None:
            if series.clearing_since is None:
                series.clearing_since = at
            if at - series.clearing_since >= rule.clear_for:
                events.append(self._resolve(series, at))
            return
        series.clearing_since = None
        if level is not series.severity:
            series.severity = level
            series.threshold = critical if level is Severity.CRITICAL else warning
            series.notified_at = at
            events.append(series.event(EventKind.FIRING, at))
        elif rule.repeat > 0 and at - series.notified_at >= rule.repeat:
            series.notified_at = at
            events.append(series.event(EventKind.REPEAT, at))

    def _fire(self, series: _Series, at: float, events: list[AlertEvent]) -> None:
        series.state = AlertState.FIRING
        series.since = at
        series.notified_at = at
        series.clearing_since = None
        events.append(series.event(EventKind.FIRING, at))

    def _resolve(self, series: _Series, at: float) -> AlertEvent:
        event = series.event(EventKind.RESOLVED, at)
        series.state = AlertState.OK
        series.severity = None
        series.clearing_since = None
        return event

    # Queries and restarts

    def active(self) -> list[dict[str, Any]]:
        """Pending and firing series, most severe first, then oldest first."""
        found = [
            series.active() for series in self._all_series() if series.state is not AlertState.OK
        ]
        rank = {"critical": 0, "warning": 1, None: 2}
        found.sort(key=lambda a: (a["state"] != "firing", rank[a["severity"]], a["since_epoch"]))
        return found

    def restore(self, alerts: Iterable[Mapping[str, Any]]) -> int:
        """Put back firing alerts saved before a restart (the dicts :meth:`active` gave), so
        they are not notified again; returns how many matched a rule still in force."""
        by_name = {c.rule.name: c for c in [*self._compiled, *self._offline]}
        restored = 0
        for alert in alerts:
            compiled = by_name.get(str(alert.get("rule")))
            labels = alert.get("labels")
            if compiled is None or not isinstance(labels, Mapping) or "host" not in labels:
                continue
            if alert.get("state") != AlertState.FIRING.value:
                continue
            rule = compiled.rule
            try:
                values = tuple(str(labels[name]) for name in rule.labels)
                severity = Severity(str(alert.get("severity")))
            except (KeyError, ValueError):
                continue
            clean = {"host": str(labels["host"])}
            clean.update(zip(rule.labels, values, strict=True))
            series = _Series(rule, clean)
            series.state = AlertState.FIRING
            series.severity = severity
            series.since = float(alert.get("since_epoch") or 0.0)
            series.notified_at = float(alert.get("notified_at") or series.since)
            value, threshold = alert.get("value"), alert.get("threshold")
            series.value = float(value) if isinstance(value, int | float) else None
            series.threshold = float(threshold) if isinstance(threshold, int | float) else None
            series.seen = series.since
            compiled.series.setdefault(clean["host"], {})[values] = series
            restored += 1
        return restored

    def series_count(self) -> int:
        return sum(1 for _ in self._all_series())

    def _all_series(self) -> Iterator[_Series]:
        for compiled in [*self._compiled, *self._offline]:
            for table in compiled.series.values():
                for series in table.values():
                    if series is not None:
                        yield series
