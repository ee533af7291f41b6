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
import functools
import hashlib
import math
import operator
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
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
    Threshold,
)

__all__ = [
    "AlertEngine",
    "AlertEvent",
    "AlertState",
    "AverageWindow",
    "EventKind",
    "MaxWindow",
    "MinWindow",
    "Window",
    "fingerprint",
    "window",
]

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


# A window keeps at most this many buckets, whatever its length: an hour's window at 1 s
# ticks holds 60 one-minute buckets, not 3,600 points (1,000 hosts × 10 rules stay small).
BUCKETS = 60


def window(aggregate: Aggregate, seconds: float) -> Window:
    """A window of ``seconds`` for ``aggregate`` (avg, max or min)."""
    if seconds <= 0 or aggregate is Aggregate.LAST:
        raise ValueError(f"expected avg/max/min over seconds > 0, got {aggregate} {seconds}")
    kind = {Aggregate.AVG: AverageWindow, Aggregate.MAX: MaxWindow, Aggregate.MIN: MinWindow}
    return kind[aggregate](seconds)


class Window:
    """The aggregate of the values seen over the last ``seconds``, decided once per bucket.

    Values are folded into ``seconds / 60``-wide buckets; a bucket leaves the window once
    its start is ``seconds`` old, so the span covered is exact to one bucket (a tick, for
    windows up to a minute at 1 s ticks). The aggregate is given when a value opens a new
    bucket, and only then: that value's rule decides once per bucket (every tick for
    windows up to a minute, every 5 s for 5 minutes), the way Prometheus evaluates rules
    at an interval, and a value inside the open bucket costs a few additions. Each
    subclass keeps its running aggregate so that a bucket's arrival or departure is O(1)
    (amortised).
    """

    __slots__ = ("_ready_at", "_start", "end", "seconds", "width")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.width = seconds / BUCKETS
        self._ready_at = math.inf  # when the window covers enough of its span to be trusted
        self._start = -math.inf  # the open bucket's start
        self.end = -math.inf  # the open bucket's end: a value from then on opens the next

    def add(self, at: float, value: float) -> float | None:
        """Add a value; returns the aggregate when ``value`` opened a new bucket and the
        window is trusted (covers enough of its span), else None."""
        raise NotImplementedError

    def fold(self, values: Collection[float]) -> None:
        """Add values that fall in the open bucket (taken before :attr:`end`), in order."""
        raise NotImplementedError

    def fold_and_add(self, kept: Collection[float], at: float, value: float) -> float | None:
        """:meth:`fold` ``kept`` (if any), then :meth:`add`: a decision's one call."""
        if kept:
            self.fold(kept)
        return self.add(at, value)

    def _open(self, at: float) -> float:
        """Open the bucket ``at`` falls in; returns the horizon (older buckets leave)."""
        if self._ready_at == math.inf:
            self._ready_at = at + self.seconds * WARM
        self._start = start = at - at % self.width
        self.end = start + self.width
        return at - self.seconds


class AverageWindow(Window):
    """The mean: closed buckets' totals and counts, with their running sums."""

    __slots__ = ("_buckets", "_closes", "_count", "_open_count", "_open_total", "_total")

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self._buckets: deque[tuple[float, float, int]] = deque()  # (start, total, count)
        self._total = 0.0
        self._count = 0
        self._closes = 0
        self._open_total = 0.0
        self._open_count = 0

    def add(self, at: float, value: float) -> float | None:
        if at < self.end:
            self._open_total += value
            self._open_count += 1
            return None
        return self._roll(at, value)

    def fold(self, values: Collection[float]) -> None:
        # A left fold, as `add` would have summed them one by one (sum() rounds otherwise).
        self._open_total = functools.reduce(operator.add, values, self._open_total)
        self._open_count += len(values)

    def fold_and_add(self, kept: Collection[float], at: float, value: float) -> float | None:
        if kept:
            self._open_total = functools.reduce(operator.add, kept, self._open_total)
            self._open_count += len(kept)
        if at < self.end:
            self._open_total += value
            self._open_count += 1
            return None
        return self._roll(at, value)

    def _roll(self, at: float, value: float) -> float | None:
        """Close the open bucket, open the one ``at`` falls in with ``value``; returns the
        aggregate once trusted."""
        buckets = self._buckets
        total, count = self._total, self._count
        if self._open_count:
            buckets.append((self._start, self._open_total, self._open_count))
            total += self._open_total
            count += self._open_count
            self._closes += 1
            if self._closes >= 4096:  # bound the float error of the running sum
                self._closes = 0
                total = sum(bucket[1] for bucket in buckets)
        horizon = self._open(at)
        while buckets and buckets[0][0] <= horizon:
            _, gone, gone_count = buckets.popleft()
            total -= gone
            count -= gone_count
        self._total, self._count = total, count
        self._open_total = value
        self._open_count = 1
        if at < self._ready_at:
            return None
        return (total + value) / (count + 1)


class MaxWindow(Window):
    """The maximum: closed buckets' maxima in a monotonic deque (decreasing from the
    front, which is the closed buckets' maximum), and the open bucket's maximum."""

    __slots__ = ("_best", "_open_best")

    upward = True  # the aggregate is the greatest value

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self._best: deque[tuple[float, float]] = deque()  # (start, max)
        self._open_best: float | None = None

    def add(self, at: float, value: float) -> float | None:
        if at < self.end:
            if value > self._open_best:  # type: ignore[operator]  # open: not None
                self._open_best = value
            return None
        closed = self._best
        best = self._open_best
        if best is not None:
            # A closed bucket below a later one can never be the maximum again.
            while closed and closed[-1][1] <= best:
                closed.pop()
            closed.append((self._start, best))
        horizon = self._open(at)
        while closed and closed[0][0] <= horizon:
            closed.popleft()
        self._open_best = value
        if at < self._ready_at:
            return None
        if closed:
            front = closed[0][1]
            if front > value:
                return front
        return value

    def fold(self, values: Collection[float]) -> None:
        best: float = self._open_best  # type: ignore[assignment]  # open: not None
        for value in values:  # as `add` compares them (max() differs on a NaN)
            if value > best:
                best = value
        self._open_best = best

    def restart(self, at: float, value: float, previous: float) -> float | None:
        """Add ``value`` to a window that left out the values since it was last fed, up
        to the one taken at ``previous``, all of them below ``value``: they can never be
        the maximum (``value`` outlives them in the window), so the window forgets them
        and everything before. Returns what :meth:`add` would."""
        self._best.clear()
        start = previous - previous % self.width
        if at < start + self.width:  # in the bucket ``previous`` was in: no new bucket
            self._start, self.end = start, start + self.width
            self._open_best = value
            return None
        self._open_best = None
        self.end = -math.inf  # `add` opens the bucket ``at`` falls in
        return MaxWindow.add(self, at, value)  # not MinWindow's: ``value`` is negated


class MinWindow(MaxWindow):
    """The minimum: the maximum of the negated values (negation is exact)."""

    __slots__ = ()

    upward = False

    def add(self, at: float, value: float) -> float | None:
        best = super().add(at, -value)
        return None if best is None else -best

    def restart(self, at: float, value: float, previous: float) -> float | None:
        best = super().restart(at, -value, previous)
        return None if best is None else -best

    def fold(self, values: Collection[float]) -> None:
        super().fold([-value for value in values])


class _Series:
    """One rule's state for one series."""

    __slots__ = (
        "bound",
        "calm",
        "clearing_since",
        "holds",
        "labels",
        "notified_at",
        "pending_since",
        "rule",
        "seen",
        "severity",
        "since",
        "skippable",
        "skipping",
        "state",
        "threshold",
        "value",
        "window",
    )

    def __init__(self, rule: Rule, labels: dict[str, str]) -> None:
        self.labels = labels
        self.window = _window_for(rule)
        self.skipping = False  # a skippable window left out the calm values since
        self.bound: CalmBound | None = None
        self.set_rule(rule)
        self.state = AlertState.OK
        self.severity: Severity | None = None
        self.pending_since = 0.0
        self.since = 0.0
        self.notified_at = 0.0
        self.clearing_since: float | None = None
        self.value: float | None = None
        self.threshold: float | None = None
        self.seen = 0.0

    def set_rule(self, rule: Rule) -> None:
        """Take ``rule`` (at start, or a reload that keeps the series)."""
        self.rule = rule
        bound = _calm_bound(rule)
        if self.skipping and not _looser(bound, self.bound):
            # The values left out were calm for the old thresholds, maybe not for these.
            self.window = _window_for(rule)
            self.skipping = False
        self.bound = bound
        self.calm = _calm_check(bound)
        self.holds = _hold_checks(rule)
        # A maximum that is calm below a bound (or a minimum above one) has every value of
        # its window calm; while they stay calm, the window need not keep them (see
        # :meth:`MaxWindow.restart`).
        self.skippable = (
            bound is not None
            and isinstance(self.window, MaxWindow)
            and self.window.upward == bound[0]
        )

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
    return window(rule.aggregate, rule.window)


# A calm check for thresholds that come from the sample: never calm, always decide.
_NEVER_CALM: Callable[[float], bool] = frozenset[float]().__contains__
# A value gate that lets every number through (a NaN takes the slow path, which is exact).
_ANY_VALUE: Callable[[float], bool] = (-math.inf).__le__


# A value is calm for a rule when it breaches neither threshold: (upward, strict, level)
# is "below the level" for `>` (strictly below for `>=`), "above" for `<` (`<=`). Plain
# values: a path's gate is looked up by its series' bounds.
CalmBound = tuple[bool, bool, float]


def _calm_bound(rule: Rule) -> CalmBound | None:
    """For fixed thresholds, the bound a calm value stays within; None when a threshold
    comes from the sample (never calm: always decide)."""
    levels = [t.value for t in (rule.warning, rule.critical) if t is not None]
    fixed = [v for v in levels if v is not None]
    if not fixed or len(fixed) != len(levels):
        return None
    op = rule.op
    strict = op in (Comparison.AT_LEAST, Comparison.AT_MOST)  # `>=`: calm strictly below
    # float: int.__ge__(float) is NotImplemented
    return op.upward, strict, float(min(fixed) if op.upward else max(fixed))


@functools.cache
def _gate(bounds: tuple[CalmBound, ...]) -> Callable[[float], bool]:
    """A test that is True when a value is calm for every bound: the common case, decided
    with one C-level comparison (two when the bounds point both ways)."""
    checks = []
    upward = [(level, strict) for up, strict, level in bounds if up]
    if upward:  # calm below the lowest: `lowest.__ge__(value)` is `value <= lowest`
        lowest, strict = min(upward, key=lambda bound: (bound[0], not bound[1]))
        checks.append(lowest.__gt__ if strict else lowest.__ge__)
    downward = [(level, strict) for up, strict, level in bounds if not up]
    if downward:  # calm above the highest
        highest, strict = max(downward, key=lambda bound: (bound[0], bound[1]))
        checks.append(highest.__lt__ if strict else highest.__le__)
    if not checks:
        return _ANY_VALUE
    if len(checks) == 1:
        return checks[0]
    below, above = checks
    return lambda value: below(value) and above(value)


def _looser(new: CalmBound | None, old: CalmBound | None) -> bool:
    """Whether every value calm for ``old`` is calm for ``new``."""
    if new is None or old is None or new[0] != old[0]:
        return False
    upward, new_strict, new_level = new
    _, old_strict, old_level = old
    if new_level != old_level:
        return new_level > old_level if upward else new_level < old_level
    return old_strict or not new_strict


def _calm_check(bound: CalmBound | None) -> Callable[[float], bool]:
    """For a rule's :func:`_calm_bound`, a test that is True when a value breaches neither
    threshold. Never True when a threshold comes from the sample (no bound)."""
    return _NEVER_CALM if bound is None else _gate((bound,))


# `threshold.__lt__(value)` is `value > threshold`: each comparison as one C-level call.
_REVERSED: dict[Comparison, str] = {
    Comparison.ABOVE: "__lt__",
    Comparison.AT_LEAST: "__le__",
    Comparison.BELOW: "__gt__",
    Comparison.AT_MOST: "__ge__",
}


def _hold_checks(rule: Rule) -> dict[Severity, Callable[[float], bool]]:
    """For fixed thresholds, per severity, a test that is True when a value keeps a firing
    series at that severity (what :func:`_level` would say): a firing series comes to the
    state machine every tick, and this decides the common case in one comparison."""
    thresholds = [t for t in (rule.warning, rule.critical) if t is not None]
    if not thresholds or any(t.sibling is not None for t in thresholds):
        return {}
    warning = rule.warning.value if rule.warning is not None else None
    critical = rule.critical.value if rule.critical is not None else None
    if critical is None:
        assert warning is not None
        margin = warning - rule.clear if rule.clear is not None else 0.0
        return {Severity.WARNING: getattr(float(warning - margin), _REVERSED[rule.op])}
    lowest = warning if warning is not None else critical
    margin = lowest - rule.clear if rule.clear is not None else 0.0
    # Critical is kept while `op(value, critical - margin) or op(value, critical)`: one
    # comparison with the looser of the two.
    looser = (min if rule.op.upward else max)(critical - margin, critical)
    holds = {Severity.CRITICAL: getattr(float(looser), _REVERSED[rule.op])}
    if warning is not None:  # kept above the lowered warning, short of critical
        kept = getattr(float(warning - margin), _REVERSED[rule.op])
        reached = getattr(float(critical), _REVERSED[rule.op])
        holds[Severity.WARNING] = lambda value: kept(value) and not reached(value)
    return holds


_HOLDS: dict[Comparison, Callable[[float, float], bool]] = {
    Comparison.ABOVE: operator.gt,
    Comparison.AT_LEAST: operator.ge,
    Comparison.BELOW: operator.lt,
    Comparison.AT_MOST: operator.le,
}


def _threshold(threshold: Threshold | None, siblings: Any) -> float | None:
    if threshold is None:
        return None
    if threshold.sibling is None:
        return threshold.value
    return threshold.resolve(siblings)


def _level(
    rule: Rule, value: float, warning: float | None, critical: float | None, firing: Severity | None
) -> Severity | None:
    """The severity ``value`` calls for; while firing, thresholds move by the clear margin."""
    op = _HOLDS[rule.op]  # the operator function: a firing series comes here every tick
    if firing is None:
        if critical is not None and op(value, critical):
            return Severity.CRITICAL
        if warning is not None and op(value, warning):
            return Severity.WARNING
        return None
    lowest = warning if warning is not None else critical
    assert lowest is not None
    margin = lowest - rule.clear if rule.clear is not None else 0.0
    if critical is not None:
        kept = firing is Severity.CRITICAL and op(value, critical - margin)
        if kept or op(value, critical):
            return Severity.CRITICAL
    if op(value, lowest - margin):
        return Severity.WARNING if warning is not None else Severity.CRITICAL
    return None


class _Compiled:
    """A rule with its metric path split for fast lookups."""

    __slots__ = ("leaf", "parts", "rule", "series")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.parts = rule.metric.split(".")
        # `group.*.leaf` over an object of objects (mounts): walked without recursion.
        shape = len(self.parts) == 3 and self.parts[1] == "*" and self.parts[2] != "*"
        self.leaf = self.parts[2] if shape else None
        # host → label values → series, or None for a series the selectors leave out
        self.series: dict[str, dict[tuple[str, ...], _Series | None]] = {}


class _Path:
    """The rules that read one metric path without a ``*`` (one series per host): the value
    is looked up once per sample for all of them."""

    __slots__ = ("head", "keys", "rules")

    def __init__(self, metric: str) -> None:
        self.head, *keys = metric.split(".")
        self.keys = tuple(keys)
        self.rules: list[_Compiled] = []


# A buffer that keeps nothing (appending to it discards the value).
_DISCARD: deque[float] = deque(maxlen=0)


class _Feed:
    """The series one :class:`_Path` feeds on one host, and what lets most ticks skip them.

    Windowed series decide only when a bucket opens; a ``last`` series that is ok, and a
    skipping max/min window, need nothing while the value is calm. So until ``due`` (the
    earliest end of the kept windows' open buckets), a value that ``calm`` passes (the
    gate made of those series' bounds) is only appended to ``buffer``; the next tick that
    needs a decision folds the buffer into each kept window in one call, then steps each
    series.
    """

    __slots__ = (
        "bounds",
        "buffer",
        "calm",
        "deeper",
        "due",
        "head",
        "key",
        "path",
        "seen",
        "series",
    )

    def __init__(self, path: _Path) -> None:
        self.path = path
        self.head = path.head  # the path, split for the lookup on every sample
        self.key = path.keys[0] if path.keys else None
        self.deeper = path.keys[1:]
        self.series: list[_Series] | None = None  # made on the first number seen
        # values since `due` was set, in every kept window's open bucket; none are kept
        # while no window needs them (a path of `last` and skipping series only)
        self.buffer: deque[float] = _DISCARD
        self.bounds: list[CalmBound] = []  # what `calm` was made of
        self.calm = _ANY_VALUE
        self.due = -math.inf  # no window has a bucket open yet: decide
        self.seen = -math.inf  # the latest sample with a value (series.seen lags behind)

    def flush(self) -> None:
        """Fold the kept values into the windows and bring each series' ``seen`` up to
        date: before the series are stepped, swept or looked up again."""
        buffer = self.buffer
        if self.series is None:
            buffer.clear()
            return
        if buffer:
            for series in self.series:
                if series.window is not None and not series.skipping:
                    series.window.fold(buffer)
            buffer.clear()
        seen = self.seen
        for series in self.series:
            if seen > series.seen:
                series.seen = seen

    def siblings(self, values: Mapping[str, Any]) -> Any:
        """The object holding this path's value in ``values`` (a sensor's `high` is there)."""
        parent: Any = values
        for key in (self.head, *self.path.keys)[:-1]:
            parent = parent.get(key)
        return parent


class _Host:
    """What the engine keeps per host to make a sample cheap to evaluate."""

    __slots__ = ("feeds", "kept", "latest", "oldest", "tables")

    def __init__(
        self,
        paths: list[_Path],
        tables: list[tuple[_Compiled, dict[tuple[str, ...], _Series | None]]],
    ) -> None:
        self.feeds = [_Feed(path) for path in paths]  # per _Path, its series on this host
        self.tables = tables  # each rule with a `*` and its series table for this host
        self.kept = 0  # samples since the feeds' buffers were last flushed all at once
        self.latest = 0.0  # the time of the host's latest sample
        # no series of this host was seen before this: sweep skips the host until
        # `latest - oldest` passes `stale_after`
        self.oldest = -math.inf

    def flush(self) -> None:
        """Every feed's kept values into its windows: before the feeds are looked up again."""
        self.kept = 0
        for feed in self.feeds:
            feed.flush()

    def look_up_again(self) -> None:
        """Forget which series each path feeds (some were dropped, or restored)."""
        self.flush()
        self.feeds = [_Feed(feed.path) for feed in self.feeds]


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
# A feed keeps at most this many values between decisions (a bucket's worth at 1 s ticks
# is up to 60 of them).
KEPT_SAMPLES = 1024


class AlertEngine:
    """Every rule's state for every series of every host, fed samples in time order.

    ``stale_after``: a series missing from a host's samples this long (a mount that went
    away) is dropped, resolved if it was firing.
    """

    def __init__(self, rules: RuleSet, *, stale_after: float = 60.0) -> None:
        self.stale_after = stale_after
        self._compiled: list[_Compiled] = []  # every rule but host.offline, in rule order
        self._offline: list[_Compiled] = []
        self._paths: list[_Path] = []  # the rules without a `*`, by metric path
        self._wild: list[_Compiled] = []  # the rules with a `*`
        self._rank: dict[str, int] = {}  # rule name → place: one sample's events in rule order
        self._hosts: dict[str, _Host] = {}
        self.rules = rules
        self.replace_rules(rules)

    # Rules

    def replace_rules(self, rules: RuleSet, at: float | None = None) -> list[AlertEvent]:
        """Swap in new rules, keeping the state of series whose rule is still there.

        Firing series of rules that are gone are resolved (stamped ``at``).
        """
        for state in self._hosts.values():
            state.flush()  # the windows may be replaced, the feeds are looked up again
        old = {c.rule.name: c for c in [*self._compiled, *self._offline]}
        self.rules = rules
        self._compiled, self._offline = [], []
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
                        if same_data != (rule.metric, rule.aggregate, rule.window):
                            series.window = _window_for(rule)
                            series.skipping = False
                        series.set_rule(rule)
                        kept[values] = series
            if rule.metric == HOST_OFFLINE_METRIC:
                self._offline.append(compiled)
            else:
                self._compiled.append(compiled)
        paths: dict[str, _Path] = {}
        self._wild = []
        for compiled in self._compiled:
            if "*" in compiled.parts:
                self._wild.append(compiled)
            else:
                paths.setdefault(compiled.rule.metric, _Path(compiled.rule.metric))
                paths[compiled.rule.metric].rules.append(compiled)
        self._paths = list(paths.values())
        self._rank = {c.rule.name: rank for rank, c in enumerate(self._compiled)}
        hosts, self._hosts = self._hosts, {}
        for host, state in hosts.items():
            self._host(host).latest = state.latest
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
        state = self._hosts.get(host)
        if state is None:
            state = self._host(host)
        state.latest = at
        state.kept += 1
        if state.kept > KEPT_SAMPLES:
            state.flush()  # a host sending many samples a tick: the buffers stay bounded
        # Called for every host's every sample: what follows is the whole cost of a path
        # whose series have nothing to decide (one lookup, one comparison, one append).
        for feed in state.feeds:
            value = values.get(feed.head)
            key = feed.key
            if key is not None:
                if type(value) is not dict:
                    continue
                value = value.get(key)
                for key in feed.deeper:
                    if type(value) is not dict:
                        value = None
                        break
                    value = value.get(key)
            if type(value) is not float and type(value) is not int:
                continue  # absent, null (a rate's first tick) or not a number
            if at < feed.due and feed.calm(value):
                feed.buffer.append(value)  # no bucket opens, no `last` series to decide
                feed.seen = at
                continue
            self._step_feed(feed, host, at, value, values, events)
        for compiled, table in state.tables:
            root = values.get(compiled.parts[0])
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
                    if series.window is None and series.state is _OK and series.calm(number):
                        series.seen = at  # `last`, ok and calm: nothing to decide
                        continue
                    self._step(series, at, number, item, events)
                continue
            if root is None:
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
        if len(events) > 1:
            rank = self._rank
            events.sort(key=lambda event: rank[event.rule])  # stable: a rule's own order kept
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
        stale_after = self.stale_after
        # Run every second over every series of a large fleet: only hosts that may hold a
        # stale series are looked at (at most once per `stale_after` for a healthy host).
        suspects = {
            host: state
            for host, state in self._hosts.items()
            if state.latest - state.oldest > stale_after
        }
        if not suspects:
            return events
        for state in suspects.values():
            state.flush()  # the series' `seen` up to date
            state.oldest = state.latest  # lowered to the oldest series kept, below
        for compiled in self._compiled:
            for host, table in compiled.series.items():
                suspect = suspects.get(host)
                if suspect is None:
                    continue
                latest = suspect.latest
                gone = []
                for values, series in table.items():
                    if series is None:
                        continue
                    if latest - series.seen > stale_after:
                        gone.append(values)
                    elif series.seen < suspect.oldest:
                        suspect.oldest = series.seen
                for values in gone:
                    series = table.pop(values)
                    assert series is not None
                    if series.state is AlertState.FIRING:
                        events.append(self._resolve(series, latest))
                if gone:
                    suspect.look_up_again()
        return events

    def forget_host(self, host: str) -> None:
        for compiled in [*self._compiled, *self._offline]:
            compiled.series.pop(host, None)
        self._hosts.pop(host, None)

    def _host(self, host: str) -> _Host:
        for compiled in self._compiled:  # every rule's table, so sweep sees hosts in order
            compiled.series.setdefault(host, {})
        tables = [(compiled, compiled.series[host]) for compiled in self._wild]
        state = self._hosts[host] = _Host(self._paths, tables)
        return state

    def _feed(self, path: _Path, host: str) -> list[_Series]:
        """The series ``path`` feeds on ``host``, made on the first number seen."""
        feed = []
        for compiled in path.rules:
            table = compiled.series.setdefault(host, {})
            series = table[()] if () in table else self._new_series(compiled, host, (), table)
            if series is not None:
                feed.append(series)
        return feed

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

    def _step_feed(
        self,
        feed: _Feed,
        host: str,
        at: float,
        value: float,
        values: Mapping[str, Any],
        events: list[AlertEvent],
    ) -> None:
        """Step every series of ``feed`` (a tick that may need a decision), then set how
        long the following ticks can skip them."""
        if feed.series is None:
            feed.series = self._feed(feed.path, host)
        siblings = None  # looked up for a decision only
        previous = feed.seen
        feed.seen = at
        buffer = feed.buffer
        due = math.inf  # the earliest end of a kept window's open bucket
        calm: list[CalmBound] = []  # what the next values must stay within to be skipped
        for series in feed.series:
            window = series.window
            aggregate: float | None
            if window is None:
                aggregate = value
            elif series.skipping:
                if series.calm(value):
                    series.seen = at
                    calm.append(series.bound)  # type: ignore[arg-type]  # skippable
                    continue
                series.skipping = False
                # The series' own `seen` when the feed is new (looked up again).
                last = series.seen if series.seen > previous else previous
                aggregate = window.restart(at, value, last)  # type: ignore[attr-defined]
            else:
                aggregate = window.fold_and_add(buffer, at, value)
            series.seen = at
            if aggregate is not None:
                if series.state is not _OK or not series.calm(aggregate):
                    if siblings is None:
                        siblings = feed.siblings(values)
                    self._decide(series, at, aggregate, siblings, events)
                elif series.skippable:
                    series.skipping = True  # calm: every value in the window is
                    calm.append(series.bound)  # type: ignore[arg-type]  # skippable
                    continue
            if window is not None:
                if window.end < due:
                    due = window.end
            elif series.state is _OK and series.bound is not None:
                calm.append(series.bound)  # `last`: nothing to decide while ok and calm
            else:
                due = -math.inf
        if due == math.inf:
            feed.buffer = _DISCARD  # no window to fold values into
        elif buffer is _DISCARD:
            feed.buffer = deque()
        else:
            buffer.clear()
        feed.due = due
        if calm != feed.bounds:  # the same bound objects, mostly: compared by identity
            feed.bounds = calm
            feed.calm = _gate(tuple(calm))

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
                return  # no bucket opened, or still filling the window: no verdict
        if series.state is _OK and series.calm(aggregate):
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
        if state is AlertState.FIRING:
            hold = series.holds.get(series.severity)  # type: ignore[arg-type]  # firing
            if hold is not None and hold(aggregate):  # still firing at the same severity
                series.value = aggregate
                series.clearing_since = None
                if rule.repeat > 0 and at - series.notified_at >= rule.repeat:
                    series.notified_at = at
                    events.append(series.event(EventKind.REPEAT, at))
                return
        warning = _threshold(rule.warning, siblings)
        critical = _threshold(rule.critical, siblings)
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
            state = self._hosts.get(clean["host"])
            if state is not None:  # look the host's series up again, stale ones too
                state.look_up_again()
                state.oldest = -math.inf
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
