"""Alert rules with no I/O: the rule model, its validation and the built-in defaults.

A rule names a metric of the registry (``cpu``, ``mounts.*.percent``, ``temps.*.*.celsius``),
how to aggregate it over a window, a comparison and a warning and/or critical threshold,
how long a breach must last (``for``), how it clears (``clear`` threshold, ``clear_for``
duration), how often a notification repeats, and which series it applies to (``match``).
:func:`parse_rules` turns the TOML file's tables into :class:`Rule` objects, merged over
:data:`BUILTIN_RULES`; every mistake raises :class:`RuleError` naming the rule and field.
"""

from __future__ import annotations

import difflib
import enum
import fnmatch
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from .._registry import GROUPS, Kind

__all__ = [
    "BUILTIN_RULES",
    "HOST_OFFLINE_METRIC",
    "Aggregate",
    "Comparison",
    "Destination",
    "DestinationKind",
    "Rule",
    "RuleError",
    "RuleSet",
    "Severity",
    "Threshold",
    "alertable_metrics",
    "parse_duration",
    "parse_rule_text",
    "parse_rules",
]

# The fleet's built-in pseudo-metric: 1 while a host is offline, 0 while it publishes.
HOST_OFFLINE_METRIC = "host.offline"

DEFAULT_REPEAT = 4 * 3600.0  # Alertmanager's repeat_interval default
MAX_WINDOW = 7 * 86400.0


class RuleError(ValueError):
    """An invalid rule file; ``str()`` is one line naming the rule and field."""


class Severity(enum.StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class Aggregate(enum.StrEnum):
    AVG = "avg"
    MAX = "max"
    MIN = "min"
    LAST = "last"


class Comparison(enum.StrEnum):
    ABOVE = ">"
    AT_LEAST = ">="
    BELOW = "<"
    AT_MOST = "<="

    def holds(self, value: float, threshold: float) -> bool:
        if self is Comparison.ABOVE:
            return value > threshold
        if self is Comparison.AT_LEAST:
            return value >= threshold
        if self is Comparison.BELOW:
            return value < threshold
        return value <= threshold

    @property
    def upward(self) -> bool:
        return self in (Comparison.ABOVE, Comparison.AT_LEAST)


@dataclass(frozen=True, slots=True)
class Threshold:
    """A fixed number, or the name of a sibling value of the series (a sensor's ``high``)."""

    value: float | None = None
    sibling: str | None = None

    def resolve(self, siblings: Mapping[str, Any] | None) -> float | None:
        if self.sibling is None:
            return self.value
        found = siblings.get(self.sibling) if siblings is not None else None
        if isinstance(found, int | float) and not isinstance(found, bool) and found > 0:
            return float(found)
        return None  # the sensor has no such threshold: the level does not apply

    def __str__(self) -> str:
        return self.sibling if self.sibling is not None else f"{self.value:g}"


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    metric: str
    aggregate: Aggregate = Aggregate.AVG
    window: float = 0.0  # seconds; 0 is the latest tick alone
    op: Comparison = Comparison.ABOVE
    warning: Threshold | None = None
    critical: Threshold | None = None
    for_: float = 0.0
    clear: float | None = None
    clear_for: float = 0.0
    repeat: float = DEFAULT_REPEAT  # 0: notify once
    match: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    exclude: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    summary: str = ""
    enabled: bool = True
    labels: tuple[str, ...] = ()  # label name of each `*` in the metric path
    # A built-in's what ("CPU busy"): its summary is derived from this, the aggregate and
    # the window (_derived_summary), so an override of either still reads true.
    subject: str = ""

    def selects(self, labels: Mapping[str, str]) -> bool:
        """Whether a series with ``labels`` is one this rule watches."""
        for name, patterns in self.match.items():
            value = labels.get(name)
            if value is None or not any(fnmatch.fnmatchcase(value, p) for p in patterns):
                return False
        for name, patterns in self.exclude.items():
            value = labels.get(name)
            if value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns):
                return False
        return True

    def describe(self) -> dict[str, Any]:
        """The rule as ``GET /api/alerts`` lists it."""
        return {
            "name": self.name,
            "metric": self.metric,
            "aggregate": self.aggregate.value,
            "window": self.window,
            "op": self.op.value,
            "warning": None if self.warning is None else _threshold_json(self.warning),
            "critical": None if self.critical is None else _threshold_json(self.critical),
            "for": self.for_,
            "clear": self.clear,
            "clear_for": self.clear_for,
            "repeat": self.repeat,
            "match": {k: list(v) for k, v in self.match.items()},
            "exclude": {k: list(v) for k, v in self.exclude.items()},
            "summary": self.summary,
        }


def _threshold_json(threshold: Threshold) -> float | str | None:
    return threshold.sibling if threshold.sibling is not None else threshold.value


class DestinationKind(enum.StrEnum):
    APPRISE = "url"  # any Apprise URL: ntfy://, slack://, mailto://, json://, ...
    WEBHOOK = "webhook"  # a plain POST of Alertmanager's webhook JSON


@dataclass(frozen=True, slots=True)
class Destination:
    """Where notifications go, and how hard to try."""

    kind: DestinationKind
    url: str
    name: str
    timeout: float = 5.0  # seconds per attempt
    retries: int = 3  # attempts after the first
    per_minute: int = 20  # rate limit; notifications past it are dropped (and counted)
    severities: tuple[Severity, ...] = (Severity.WARNING, Severity.CRITICAL)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules in force (enabled ones only) and the notification destinations."""

    rules: tuple[Rule, ...]
    notify: tuple[Destination, ...] = ()

    def get(self, name: str) -> Rule | None:
        for rule in self.rules:
            if rule.name == name:
                return rule
        return None


def alertable_metrics() -> dict[str, tuple[str, ...]]:
    """Every numeric registry path a rule may name, with the label of each ``*``."""
    paths: dict[str, tuple[str, ...]] = {HOST_OFFLINE_METRIC: ()}
    for group in GROUPS.values():
        if not group.history:
            continue  # top-process lists change members every sample: no series to follow
        for metric in group.metrics:
            if metric.kind in (Kind.GAUGE, Kind.RATE):
                wildcards = metric.path.count("*")
                labels = metric.labels or tuple(f"item{n}" for n in range(wildcards))
                paths[metric.path] = labels
    return paths


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like ``"90s"``, ``"5m"``, ``"1h"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30, '90s' or '5m', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (found := _DURATION.match(value)):
        seconds = float(found.group(1)) * _UNITS[found.group(2)]
    else:
        raise ValueError(f"expected a duration like 30, '90s' or '5m', got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected a duration of 0 or more seconds, got {value!r}")
    return seconds


_RULE_KEYS = {
    "metric", "aggregate", "window", "op", "warning", "critical", "for", "clear",
    "clear_for", "repeat", "match", "exclude", "summary", "enabled",
}  # fmt: skip
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


def _builtin(name: str, metric: str, **fields: Any) -> Rule:
    rule = replace(Rule(name, metric, labels=alertable_metrics()[metric]), **fields)
    return replace(rule, summary=_derived_summary(rule))


_HOW = {
    Aggregate.AVG: "on average",
    Aggregate.MAX: "at its highest",
    Aggregate.MIN: "at its lowest",
}


def _derived_summary(rule: Rule) -> str:
    """A built-in's summary: its subject and how it is aggregated ("CPU busy on average
    over 5 minutes"); the subject alone for the latest value (``last``, or window 0)."""
    if rule.aggregate == Aggregate.LAST or rule.window == 0:
        return rule.subject
    return f"{rule.subject} {_HOW[rule.aggregate]} over {_spoken_duration(rule.window)}"


def _spoken_duration(seconds: float) -> str:
    """``300`` → "5 minutes", ``3600`` → "1 hour", ``90`` → "90 seconds"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds / size
            return f"{count:g} {unit}{'' if count == 1 else 's'}"
    return f"{seconds:g} second{'' if seconds == 1 else 's'}"


def _n(value: float) -> Threshold:
    return Threshold(value=float(value))


BUILTIN_RULES: tuple[Rule, ...] = (
    _builtin(
        "cpu",
        "cpu",
        window=300.0,
        warning=_n(90),
        critical=_n(98),
        clear=85.0,
        subject="CPU busy",
    ),
    _builtin(
        "memory",
        "memory",
        window=300.0,
        warning=_n(90),
        critical=_n(95),
        clear=85.0,
        subject="Memory in use",
    ),
    _builtin(
        "swap",
        "swap.percent",
        window=300.0,
        warning=_n(80),
        critical=_n(95),
        clear=75.0,
        subject="Swap in use",
    ),
    _builtin(
        "filesystem",
        "mounts.*.percent",
        aggregate=Aggregate.LAST,
        warning=_n(85),
        critical=_n(95),
        clear=83.0,
        for_=60.0,
        subject="Filesystem space in use",
    ),
    _builtin(
        "load",
        "load.load5_per_core",
        aggregate=Aggregate.LAST,
        warning=_n(2),
        critical=_n(4),
        clear=1.5,
        for_=300.0,
        subject="5-minute load average per logical CPU",
    ),
    _builtin(
        "temperature",
        "temps.*.*.celsius",
        window=60.0,
        warning=Threshold(sibling="high"),
        critical=Threshold(sibling="critical"),
        clear_for=60.0,
        subject="Sensor temperature above the sensor's own high or critical mark",
    ),
    _builtin(
        "host_offline",
        HOST_OFFLINE_METRIC,
        aggregate=Aggregate.LAST,
        op=Comparison.AT_LEAST,
        critical=_n(1),
        subject="Host stopped publishing (fleet mode)",
    ),
)


def parse_rule_text(text: str) -> RuleSet:
    """A rule file's text (TOML) to a rule set; a TOML syntax error is a RuleError too."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"not valid TOML: {exc}") from None
    return parse_rules(document)


def parse_rules(document: Mapping[str, Any]) -> RuleSet:
    """The rule set a parsed TOML document describes, merged over the built-ins.

    ``builtin = false`` drops every built-in rule; a ``[rules.NAME]`` table with a built-in's
    name overrides the fields it gives (``enabled = false`` turns it off).
    """
    unknown = sorted(set(document) - {"builtin", "rules", "notify"})
    if unknown:
        raise RuleError(f"unknown top-level key {unknown[0]!r}; expected builtin, rules, notify")
    use_builtin = document.get("builtin", True)
    if not isinstance(use_builtin, bool):
        raise RuleError(f"builtin: expected true or false, got {use_builtin!r}")
    tables = document.get("rules", {})
    if not isinstance(tables, Mapping):
        raise RuleError("rules: expected tables like [rules.cpu]")
    rules: dict[str, Rule] = {r.name: r for r in BUILTIN_RULES} if use_builtin else {}
    for name, table in tables.items():
        if not _NAME.match(name):
            raise RuleError(f"rule {name!r}: expected a name of letters, digits, _ . -")
        if not isinstance(table, Mapping):
            raise RuleError(f"rule {name!r}: expected a table, got {type(table).__name__}")
        rules[name] = _parse_rule(name, table, rules.get(name))
    notify = document.get("notify", [])
    if not isinstance(notify, list) or not all(isinstance(n, Mapping) for n in notify):
        raise RuleError("notify: expected [[notify]] tables")
    destinations = tuple(_parse_destination(n, table) for n, table in enumerate(notify, 1))
    names = [d.name for d in destinations]
    if len(set(names)) != len(names):
        raise RuleError("notify: expected each destination's name once")
    return RuleSet(tuple(r for r in rules.values() if r.enabled), destinations)


_DESTINATION_KEYS = {"url", "webhook", "name", "timeout", "retries", "per_minute", "severities"}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")


def _parse_destination(number: int, table: Mapping[str, Any]) -> Destination:
    def fail(key: str, problem: str) -> RuleError:
        return RuleError(f"notify #{number}, field {key!r}: {problem}")

    unknown = sorted(set(table) - _DESTINATION_KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown field; expected {', '.join(sorted(_DESTINATION_KEYS))}")
    if ("url" in table) == ("webhook" in table):
        raise fail("url", "expected exactly one of url (an Apprise URL) or webhook")
    kind = DestinationKind.APPRISE if "url" in table else DestinationKind.WEBHOOK
    url = table[kind.value]
    if not isinstance(url, str) or not _URL.match(url):
        raise fail(kind.value, f"expected a URL like scheme://..., got {url!r}")
    if kind is DestinationKind.WEBHOOK and not re.match(r"^https?://[^/\s?#]+", url):
        raise fail("webhook", f"expected an http:// or https:// URL with a host, got {url!r}")
    # The URL may hold a secret (a bot token): the default name shows the scheme only.
    name = table.get("name", f"{url.split('://')[0]}#{number}")
    if not isinstance(name, str) or not name:
        raise fail("name", "expected a non-empty string")
    changes: dict[str, Any] = {}
    if "timeout" in table:
        try:
            timeout = parse_duration(table["timeout"])
        except ValueError as exc:
            raise fail("timeout", str(exc)) from None
        if not 0 < timeout <= 120:
            raise fail("timeout", f"expected 0 to 120 seconds, got {timeout:g}")
        changes["timeout"] = timeout
    for key, low, high in (("retries", 0, 10), ("per_minute", 1, 600)):
        if key in table:
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise fail(key, f"expected a whole number from {low} to {high}, got {value!r}")
            changes[key] = value
    if "severities" in table:
        value = table["severities"]
        if not isinstance(value, list) or not value:
            raise fail("severities", "expected a list such as ['critical']")
        changes["severities"] = tuple(
            _choice(Severity, item, partial(fail, "severities")) for item in value
        )
    return replace(Destination(kind, url, name), **changes)


def _parse_rule(name: str, table: Mapping[str, Any], base: Rule | None) -> Rule:
    def fail(key: str, problem: str) -> RuleError:
        return RuleError(f"rule {name!r}, field {key!r}: {problem}")

    unknown = sorted(set(table) - _RULE_KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown field; expected one of {', '.join(sorted(_RULE_KEYS))}")
    metrics = alertable_metrics()
    if "metric" in table:
        metric = table["metric"]
        if not isinstance(metric, str) or metric not in metrics:
            raise fail("metric", f"unknown metric {metric!r}; {_suggest(metric, metrics)}")
        rule = Rule(name, metric, labels=metrics[metric])
    elif base is not None:
        rule = base
    else:
        raise fail("metric", "required (a registry path such as 'cpu' or 'mounts.*.percent')")
    changes: dict[str, Any] = {}
    for key in ("window", "for", "clear_for", "repeat"):
        if key in table:
            try:
                seconds = parse_duration(table[key])
            except ValueError as exc:
                raise fail(key, str(exc)) from None
            if key == "window" and seconds > MAX_WINDOW:
                raise fail(key, f"expected at most {MAX_WINDOW / 86400:g} days, got {seconds:g} s")
            changes["for_" if key == "for" else key] = seconds
    if "aggregate" in table:
        changes["aggregate"] = _choice(Aggregate, table["aggregate"], partial(fail, "aggregate"))
    if "op" in table:
        changes["op"] = _choice(Comparison, table["op"], partial(fail, "op"))
    for key in ("warning", "critical"):
        if key in table:
            changes[key] = _threshold(table[key], rule.metric, partial(fail, key))
    if "clear" in table:
        clear = table["clear"]
        if isinstance(clear, bool) or not isinstance(clear, int | float):
            raise fail("clear", f"expected a number, got {clear!r}")
        if not math.isfinite(clear):
            raise fail("clear", f"expected a number, got {clear!r}")
        changes["clear"] = float(clear)
    for key in ("match", "exclude"):
        if key in table:
            changes[key] = _selectors(table[key], rule.labels, partial(fail, key))
    if "summary" in table:
        if not isinstance(table["summary"], str):
            raise fail("summary", "expected a string")
        changes["summary"] = table["summary"]
    if "enabled" in table:
        if not isinstance(table["enabled"], bool):
            raise fail("enabled", f"expected true or false, got {table['enabled']!r}")
        changes["enabled"] = table["enabled"]
    if "metric" in table and base is not None and base.metric != rule.metric:
        changes.setdefault("summary", "")
    moved = rule is base and "clear" not in table and {"warning", "critical", "op"} & set(table)
    rule = replace(rule, **changes)
    if rule.subject and "summary" not in table:  # a built-in's own words, kept true
        rule = replace(rule, summary=_derived_summary(rule))
    if moved:
        assert base is not None
        rule = replace(rule, clear=_moved_clear(base, rule))
    _check(rule, fail)
    return rule


def _moved_clear(base: Rule, rule: Rule) -> float | None:
    """The clear threshold of ``rule``, an override of ``base`` that moved its thresholds
    and gave no ``clear``: the same margin from the lowest threshold as ``base`` kept
    (`warning = 70` on the built-in cpu rule clears at 65, as 90 cleared at 85), or none
    when there is no margin to carry (no clear, thresholds from the sample, another way)."""
    before, after = _lowest(base), _lowest(rule)
    if base.clear is None or before is None or after is None or base.op.upward != rule.op.upward:
        return None
    return after - (before - base.clear)


def _lowest(rule: Rule) -> float | None:
    """The threshold a rule fires at first (warning, else critical), if a number."""
    threshold = rule.warning if rule.warning is not None else rule.critical
    return threshold.value if threshold is not None else None


def _check(rule: Rule, fail: Callable[[str, str], RuleError]) -> None:
    if not rule.enabled:
        return
    if rule.warning is None and rule.critical is None:
        raise fail("warning", "expected a warning or a critical threshold (or both)")
    warning = rule.warning.value if rule.warning is not None else None
    critical = rule.critical.value if rule.critical is not None else None
    if warning is not None and critical is not None:
        wrong = critical < warning if rule.op.upward else critical > warning
        if wrong:
            side = "above" if rule.op.upward else "below"
            raise fail("critical", f"expected {side} the warning threshold {warning:g}")
    if rule.clear is not None:
        if any(t is not None and t.sibling is not None for t in (rule.warning, rule.critical)):
            raise fail("clear", "needs numeric thresholds; use clear_for with sibling thresholds")
        lowest = _lowest(rule)
        assert lowest is not None
        # The clear threshold must sit on the safe side of the lowest threshold.
        if rule.op.holds(rule.clear, lowest) and rule.clear != lowest:
            raise fail("clear", f"expected a value on the safe side of {lowest:g}")


def _choice(kind: type[enum.StrEnum], value: Any, fail: Callable[[str], RuleError]) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in kind)
        raise fail(f"expected one of {choices}, got {value!r}") from None


def _threshold(value: Any, metric: str, fail: Callable[[str], RuleError]) -> Threshold:
    if isinstance(value, bool):
        raise fail(f"expected a number or a sibling name, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise fail(f"expected a finite number, got {value!r}")
        return Threshold(value=float(value))
    if isinstance(value, str):
        parent = metric.rpartition(".")[0]
        sibling = f"{parent}.{value}" if parent else value
        if not parent or sibling not in alertable_metrics() or sibling == metric:
            raise fail(f"expected a number or a sibling value of {metric!r}, got {value!r}")
        return Threshold(sibling=value)
    raise fail(f"expected a number, got {type(value).__name__}")


def _selectors(
    value: Any, labels: tuple[str, ...], fail: Callable[[str], RuleError]
) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        raise fail("expected a table of label = pattern(s)")
    known = ("host", *labels)
    selectors: dict[str, tuple[str, ...]] = {}
    for label, patterns in value.items():
        if label not in known:
            raise fail(f"unknown label {label!r}; this metric has {', '.join(known)}")
        if isinstance(patterns, str):
            patterns = [patterns]
        if not isinstance(patterns, list) or not patterns:
            raise fail(f"expected a pattern or a list of patterns for {label!r}")
        if not all(isinstance(p, str) and p for p in patterns):
            raise fail(f"expected non-empty pattern strings for {label!r}")
        selectors[label] = tuple(patterns)
    return selectors


def _suggest(metric: Any, metrics: Mapping[str, Any]) -> str:
    if isinstance(metric, str):
        close = [path for path in metrics if path.split(".")[0] == metric.split(".")[0]]
        # Closest first: a group has up to a dozen paths and only four are named, so in
        # registry order 'net.interfaces.tx_bytes_per_s' was offered four others.
        close.sort(key=lambda path: -difflib.SequenceMatcher(None, metric, path).ratio())
        if close:
            return "did you mean " + " or ".join(repr(p) for p in close[:4]) + "?"
    return "see docs/metrics.md (e.g. 'cpu', 'memory', 'mounts.*.percent')"
