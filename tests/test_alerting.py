"""The alert state machine and windows, driven by a synthetic clock (sample timestamps)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sysstream.sansio import (
    AlertEngine,
    AlertEvent,
    EventKind,
    Severity,
    parse_rules,
)
from sysstream.sansio._alerting import (
    BUCKETS,
    KEPT_SAMPLES,
    WARM,
    AlertState,
    _calm_bound,
    _calm_check,
    _gate,
    _hold_checks,
    _level,
    _Series,
)
from sysstream.sansio._alerting import window as make_window
from sysstream.sansio._rules import Aggregate, Comparison, Rule, RuleSet, Threshold

T0 = 1_700_000_000.0


def engine(**rule: Any) -> AlertEngine:
    table = {"metric": "cpu", **rule}
    return AlertEngine(parse_rules({"builtin": False, "rules": {"r": table}}))


def feed(alerts: AlertEngine, values: list[float], start: float = T0) -> list[AlertEvent]:
    """One sample per second from ``start``; every event produced."""
    events: list[AlertEvent] = []
    for offset, value in enumerate(values):
        events += alerts.observe("local", start + offset, {"cpu": value})
    return events


def kinds(events: list[AlertEvent]) -> list[tuple[str, str | None, float]]:
    return [(e.kind.value, e.severity.value if e.severity else None, e.at - T0) for e in events]


def test_a_30_second_spike_does_not_fire_a_5_minute_average_rule() -> None:
    alerts = engine(aggregate="avg", window="5m", warning=80)
    values = [20.0] * 400 + [100.0] * 30 + [20.0] * 300
    assert feed(alerts, values) == []


def test_a_sustained_breach_fires_after_for() -> None:
    alerts = engine(aggregate="avg", window="1m", warning=80, critical=95, **{"for": "2m"})
    events = feed(alerts, [20.0] * 100 + [99.0] * 400)
    # The 1-minute average crosses 80 on the 46th second of the breach and 95 on the 57th;
    # the rule fires 2 minutes after the first breach, at its current severity.
    assert kinds(events) == [("pending", "warning", 145.0), ("firing", "critical", 265.0)]
    assert events[1].since == T0 + 265
    assert events[1].value == pytest.approx(99.0)
    assert events[1].threshold == 95.0


def test_a_windowed_rule_decides_once_per_bucket() -> None:
    # A 5-minute window has 5-second buckets: the rule decides when a value opens one
    # (T0 is a multiple of 5), not on every tick. A peak at +302 s fires at +305 s; the
    # repeats and the resolve (the peak's bucket leaves the window at +600 s) come on
    # bucket boundaries too.
    alerts = engine(aggregate="max", window="5m", warning=80, repeat="1m")
    events = feed(alerts, [20.0] * 302 + [90.0] + [20.0] * 400)
    assert kinds(events) == [
        ("firing", "warning", 305.0),
        ("repeat", "warning", 365.0),
        ("repeat", "warning", 425.0),
        ("repeat", "warning", 485.0),
        ("repeat", "warning", 545.0),
        ("resolved", "warning", 600.0),
    ]
    assert events[0].value == 90.0


def test_values_kept_between_decisions_stay_bounded() -> None:
    rules = {
        "now": {"metric": "memory", "aggregate": "last", "warning": 90},
        "avg": {"metric": "cpu", "aggregate": "avg", "window": "5m", "warning": 90},
    }
    alerts = AlertEngine(parse_rules({"builtin": False, "rules": rules}))
    kept = []
    for second in range(400):
        alerts.observe("h", T0 + second, {"cpu": 20.0, "memory": 20.0})
        kept.append([len(feed.buffer) for feed in alerts._hosts["h"].feeds])
    # `last` alone needs nothing kept; a 5-minute average keeps one 5-second bucket's values.
    assert {memory for memory, _ in kept} == {0}
    assert max(cpu for _, cpu in kept) == 4
    for _ in range(5000):  # a host sending samples with one timestamp
        alerts.observe("h", T0 + 402, {"cpu": 20.0, "memory": 20.0})
    assert max(len(feed.buffer) for feed in alerts._hosts["h"].feeds) <= KEPT_SAMPLES


def test_a_breach_shorter_than_for_is_cancelled_not_fired() -> None:
    alerts = engine(aggregate="last", warning=80, **{"for": 60})
    events = feed(alerts, [90.0] * 30 + [10.0] * 10)
    assert kinds(events) == [("pending", "warning", 0.0), ("cancelled", "warning", 30.0)]


def test_hovering_around_the_threshold_does_not_flap_with_a_clear_threshold() -> None:
    alerts = engine(aggregate="last", warning=80, clear=70, repeat=0)
    hover = [81.0, 79.0, 78.0, 82.0, 79.5, 80.5, 75.0] * 20
    events = feed(alerts, [50.0, *hover, 60.0])
    assert kinds(events) == [("firing", "warning", 1.0), ("resolved", "warning", len(hover) + 1.0)]


def test_hovering_does_not_flap_with_a_clear_duration() -> None:
    alerts = engine(aggregate="last", warning=80, clear_for=30, repeat=0)
    hover = [85.0, 75.0] * 50
    events = feed(alerts, [50.0, *hover, *([50.0] * 40)])
    end = 1 + len(hover)
    assert kinds(events) == [("firing", "warning", 1.0), ("resolved", "warning", end + 29.0)]


def test_without_hysteresis_it_does_flap() -> None:
    # The counterpart of the two tests above: they pass because of clear/clear_for.
    alerts = engine(aggregate="last", warning=80, repeat=0)
    events = feed(alerts, [85.0, 75.0] * 3)
    assert [e.kind for e in events] == [EventKind.FIRING, EventKind.RESOLVED] * 3


def test_repeats_arrive_at_the_interval_and_resolve_is_sent_once() -> None:
    alerts = engine(aggregate="last", warning=80, repeat="1m")
    events = feed(alerts, [90.0] * 200 + [10.0] * 100)
    assert kinds(events) == [
        ("firing", "warning", 0.0),
        ("repeat", "warning", 60.0),
        ("repeat", "warning", 120.0),
        ("repeat", "warning", 180.0),
        ("resolved", "warning", 200.0),
    ]


def test_severity_escalates_and_falls_back_with_the_clear_margin() -> None:
    alerts = engine(aggregate="last", warning=80, critical=90, clear=75, repeat=0)
    # margin 5: critical holds down to 85, warning down to 75.
    events = feed(alerts, [85.0, 92.0, 87.0, 84.0, 76.0, 74.0])
    assert kinds(events) == [
        ("firing", "warning", 0.0),
        ("firing", "critical", 1.0),
        ("firing", "warning", 3.0),
        ("resolved", "warning", 5.0),
    ]


def test_below_comparisons() -> None:
    alerts = engine(metric="cpu", aggregate="last", op="<", warning=10, critical=5, clear=15)
    events = feed(alerts, [50.0, 8.0, 4.0, 12.0, 16.0])
    assert kinds(events) == [
        ("firing", "warning", 1.0),
        ("firing", "critical", 2.0),
        ("firing", "warning", 3.0),
        ("resolved", "warning", 4.0),
    ]


def test_nested_series_are_separate_and_selectors_apply() -> None:
    rules = parse_rules(
        {
            "builtin": False,
            "rules": {
                "fs": {
                    "metric": "mounts.*.percent",
                    "aggregate": "last",
                    "warning": 90,
                    "exclude": {"mountpoint": "/boot*"},
                }
            },
        }
    )
    alerts = AlertEngine(rules)
    mounts = {"/": {"percent": 95.0}, "/data": {"percent": 10.0}, "/boot/efi": {"percent": 99.0}}
    events = alerts.observe("web-1", T0, {"mounts": mounts})
    assert [(e.kind, dict(e.labels)) for e in events] == [
        (EventKind.FIRING, {"host": "web-1", "mountpoint": "/"})
    ]
    assert [a["labels"] for a in alerts.active()] == [{"host": "web-1", "mountpoint": "/"}]


def test_temperature_thresholds_come_from_the_sensor() -> None:
    alerts = AlertEngine(parse_rules({}))  # the built-ins
    sensors = {"coretemp": [{"label": "Core 0", "celsius": 0.0, "high": 80.0, "critical": 100.0}]}
    events: list[AlertEvent] = []
    for second in range(120):
        sensors["coretemp"][0]["celsius"] = 50.0 if second < 30 else 101.0
        events += alerts.observe("local", T0 + second, {"temps": sensors})
    fired = [e for e in events if e.rule == "temperature"]
    assert fired[0].kind is EventKind.FIRING
    assert fired[0].labels == {"host": "local", "chip": "coretemp", "sensor": "Core 0"}
    assert fired[0].threshold == 80.0  # the sensor's own `high`
    assert fired[-1].severity is Severity.CRITICAL
    assert fired[-1].threshold == 100.0


def test_a_sensor_without_thresholds_never_alerts() -> None:
    alerts = AlertEngine(parse_rules({}))
    sensors = {"acpitz": [{"label": "temp1", "celsius": 120.0, "high": None, "critical": None}]}
    events = [e for s in range(100) for e in alerts.observe("h", T0 + s, {"temps": sensors})]
    assert events == []


def test_host_offline_is_a_built_in_rule() -> None:
    alerts = AlertEngine(parse_rules({}))
    assert alerts.host_status("web-1", False, T0) == []
    fired = alerts.host_status("web-1", True, T0 + 5)
    assert kinds(fired) == [("firing", "critical", 5.0)]
    assert fired[0].labels == {"host": "web-1"}
    assert kinds(alerts.host_status("web-1", False, T0 + 9)) == [("resolved", "critical", 9.0)]


def test_restored_firing_alerts_are_not_notified_again() -> None:
    alerts = engine(aggregate="last", warning=80, repeat="1h")
    feed(alerts, [90.0] * 5)
    saved = alerts.active()
    again = engine(aggregate="last", warning=80, repeat="1h")
    assert again.restore(saved) == 1
    events = feed(again, [90.0] * 10, start=T0 + 100)
    assert events == []
    assert kinds(feed(again, [10.0], start=T0 + 200)) == [("resolved", "warning", 200.0)]


def test_reloading_rules_keeps_state_and_resolves_removed_rules() -> None:
    alerts = engine(aggregate="last", warning=80, repeat=0)
    assert kinds(feed(alerts, [90.0])) == [("firing", "warning", 0.0)]
    changed = parse_rules({"builtin": False, "rules": {"r": {"metric": "cpu", "warning": 85}}})
    assert alerts.replace_rules(changed) == []
    assert feed(alerts, [90.0], start=T0 + 1) == []  # still firing, not fired again
    events = alerts.replace_rules(parse_rules({"builtin": False}), at=T0 + 2)
    assert kinds(events) == [("resolved", "warning", 2.0)]
    assert alerts.active() == []


def test_a_series_that_disappears_is_resolved() -> None:
    rules = {"fs": {"metric": "mounts.*.percent", "aggregate": "last", "warning": 90}}
    alerts = AlertEngine(parse_rules({"builtin": False, "rules": rules}), stale_after=30)
    alerts.observe("h", T0, {"mounts": {"/usb": {"percent": 95.0}}})
    for second in range(1, 40):
        alerts.observe("h", T0 + second, {"mounts": {}})
    assert kinds(alerts.sweep()) == [("resolved", "warning", 39.0)]


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    [(Aggregate.AVG, 3.0), (Aggregate.MAX, 5.0), (Aggregate.MIN, 1.0)],
)
def test_window_aggregates(aggregate: Aggregate, expected: float) -> None:
    window = make_window(aggregate, 5)
    results = [window.add(T0 + t, v) for t, v in enumerate([9.0, 1.0, 5.0, 4.0, 3.0, 2.0])]
    assert results[:4] == [None] * 4  # filling: under 90 % of 5 s covered
    assert results[5] == pytest.approx(expected)  # 9.0 left the window at +5 s


def test_last_needs_no_window() -> None:
    # `last` over any window is the latest value: the engine keeps no window for it.
    with pytest.raises(ValueError, match="expected avg/max/min over seconds > 0, got last 60"):
        make_window(Aggregate.LAST, 60)


@pytest.mark.parametrize("aggregate", [Aggregate.AVG, Aggregate.MAX, Aggregate.MIN])
def test_a_long_window_keeps_sixty_buckets_and_stays_close_to_exact(aggregate: Aggregate) -> None:
    window = make_window(aggregate, 3600)
    values = [float((second * 7) % 101) for second in range(7200)]
    results = [window.add(T0 + second, value) for second, value in enumerate(values)]
    assert len(getattr(window, "_buckets", getattr(window, "_best", None))) <= 60
    # The aggregate comes once per one-minute bucket, when a value opens it.
    decided = [second for second, result in enumerate(results) if result is not None]
    assert [(T0 + second) % 60 for second in decided] == [0.0] * len(decided)
    assert [b - a for a, b in itertools.pairwise(decided)] == [60] * (len(decided) - 1)
    last = decided[-1]
    span = values[last - 3599 : last + 1]
    exact = {Aggregate.AVG: sum(span) / 3600, Aggregate.MAX: max(span), Aggregate.MIN: min(span)}
    assert results[last] == pytest.approx(exact[aggregate], rel=0.02)


def naive_window(
    aggregate: Aggregate, seconds: float, points: list[tuple[float, float]]
) -> list[float | None]:
    """The window's contract, spelled out with every point kept: each value goes in the
    ``seconds / BUCKETS``-wide bucket open when it arrives; opening a bucket drops the
    buckets that start ``seconds`` or more before; the aggregate is reported when a value
    opens a bucket (the rule's decision), once ``WARM`` of the span has passed since the
    first value."""
    width = seconds / BUCKETS
    kept: list[tuple[float, float]] = []  # (bucket start, value)
    start, end, ready = 0.0, -math.inf, math.inf
    results: list[float | None] = []
    for at, value in points:
        opens = at >= end
        if opens:
            if ready == math.inf:
                ready = at + seconds * WARM
            kept = [(bucket, v) for bucket, v in kept if bucket > at - seconds]
            start = at - at % width
            end = start + width
        kept.append((start, value))
        values = [v for _, v in kept]
        if at < ready or not opens:
            results.append(None)
        elif aggregate is Aggregate.AVG:
            results.append(sum(values) / len(values))
        else:
            results.append(max(values) if aggregate is Aggregate.MAX else min(values))
    return results


window_runs = st.tuples(
    st.sampled_from([Aggregate.AVG, Aggregate.MAX, Aggregate.MIN]),
    st.sampled_from([1.0, 5.0, 60.0, 300.0, 7.5]),
    st.lists(
        st.tuples(
            st.one_of(st.sampled_from([0.0, 0.25, 1.0, 1.0, 1.0]), st.floats(0, 400)),
            st.floats(-1e6, 1e6, allow_nan=False),
            st.booleans(),  # kept aside and folded in later, when it falls in the open bucket
        ),
        max_size=400,
    ),
)


@settings(max_examples=300, deadline=None)
@given(window_runs)
def test_windows_match_the_naive_aggregate_over_every_point(
    run: tuple[Aggregate, float, list[tuple[float, float]]],
) -> None:
    # The monotonic deque (max, min) and the running sums (avg) against all points kept;
    # values of the open bucket are sometimes kept aside and folded in at once, as the
    # engine does between decisions.
    aggregate, seconds, steps = run
    points, at = [], T0
    window = make_window(aggregate, seconds)
    got: list[float | None] = []
    aside: list[float] = []
    for gap, value, later in steps:
        at += gap
        points.append((at, value))
        if later and at < window.end:
            aside.append(value)
            got.append(None)
            continue
        if aside:
            window.fold(aside)
            aside = []
        got.append(window.add(at, value))
    expected = naive_window(aggregate, seconds, points)
    assert [g is None for g in got] == [e is None for e in expected]
    for g, e in zip(got, expected, strict=True):
        if aggregate is Aggregate.AVG and e is not None:
            assert g == pytest.approx(e, rel=1e-9, abs=1e-6)
        else:
            assert g == e  # exact: max and min are chosen, not computed


levels = st.one_of(st.none(), st.floats(-100, 100, allow_nan=False))


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(list(Comparison)),
    levels,
    levels,
    st.one_of(st.none(), st.floats(-100, 100, allow_nan=False)),
    st.lists(st.floats(-150, 150), min_size=1, max_size=20),
)
def test_the_one_comparison_shortcuts_agree_with_the_state_machine(
    op: Comparison,
    warning: float | None,
    critical: float | None,
    clear: float | None,
    values: list[float],
) -> None:
    # The calm check (ok, nothing to decide) and the hold checks (firing, severity kept)
    # skip `_level` on the hot path: they must say exactly what it says.
    if warning is None and critical is None:
        return
    rule = Rule(
        "r",
        "cpu",
        op=op,
        warning=None if warning is None else Threshold(warning),
        critical=None if critical is None else Threshold(critical),
        clear=clear,
    )
    calm, holds = _calm_check(_calm_bound(rule)), _hold_checks(rule)
    expected = {Severity.WARNING} if critical is None else {Severity.CRITICAL}
    if warning is not None and critical is not None:
        expected.add(Severity.WARNING)
    assert set(holds) == expected
    for value in [*values, *(t for t in (warning, critical, clear) if t is not None)]:
        assert calm(value) == (_level(rule, value, warning, critical, None) is None)
        for severity, hold in holds.items():
            level = _level(rule, value, warning, critical, severity)
            assert hold(value) == (level is severity), (severity, value)


def reference_events(
    rule: Rule, points: list[tuple[float, float]]
) -> tuple[list[AlertEvent], list[tuple[str, str | None, float | None]]]:
    """The engine's state machine fed the naive window's aggregates: decided at every
    value that opens a bucket (every value for `last`), nothing kept aside or skipped.
    Returns the events and, after each point, the series' state, severity and value."""
    decider = AlertEngine(RuleSet((rule,)))
    series = _Series(rule, {"host": "local"})
    if rule.aggregate is Aggregate.LAST or rule.window <= 0:
        aggregates: list[float | None] = [value for _, value in points]
    else:
        aggregates = naive_window(rule.aggregate, rule.window, points)
    events: list[AlertEvent] = []
    states = []
    for (at, _), aggregate in zip(points, aggregates, strict=True):
        if aggregate is not None and not (series.state is AlertState.OK and series.calm(aggregate)):
            decider._decide(series, at, aggregate, None, events)
        severity = None if series.severity is None else series.severity.value
        states.append((series.state.value, severity, series.value))
    return events, states


def engine_rules(draw: Any) -> list[dict[str, Any]]:
    tables = []
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from([">", ">=", "<", "<="]))
        levels = sorted(draw(st.lists(st.integers(10, 90), min_size=2, max_size=2)))
        warning, critical = levels if op in (">", ">=") else levels[::-1]
        margin = draw(st.sampled_from([0, 5, 15]))
        table: dict[str, Any] = {
            "metric": "cpu",
            "aggregate": draw(st.sampled_from(["avg", "max", "min", "last"])),
            "window": draw(st.sampled_from([0, 1, 7.5, 30, 60, 300])),
            "op": op,
            "warning": warning,
            "critical": draw(st.sampled_from([critical, None])),
            "clear": warning - margin if op in (">", ">=") else warning + margin,
            "for": draw(st.sampled_from([0, 3, 20])),
            "clear_for": draw(st.sampled_from([0, 4])),
            "repeat": draw(st.sampled_from([0, 15])),
        }
        tables.append({k: v for k, v in table.items() if v is not None})
    return tables


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_the_engine_matches_the_state_machine_fed_every_naive_aggregate(data: Any) -> None:
    # What the engine does to be cheap (values kept aside between buckets and folded in
    # at once, a calm max/min window that forgets its values until one breaches, the
    # rules of one metric skipped together while calm) must not change a single event.
    # Whole numbers: the naive average sums exactly as the running one does.
    tables = engine_rules(data.draw)
    rules = parse_rules({"builtin": False, "rules": {f"r{n}": t for n, t in enumerate(tables)}})
    # Runs of one value (a level that lasts), with irregular gaps now and then.
    runs = data.draw(
        st.lists(
            st.tuples(
                st.one_of(st.integers(0, 100), st.sampled_from([5, 50, 95])),
                st.integers(1, 60),
                st.sampled_from([1.0, 1.0, 1.0, 1.0, 0.5, 2.0, 7.0, 100.0]),
            ),
            min_size=1,
            max_size=30,
        )
    )
    points, at = [], T0 + data.draw(st.sampled_from([0.0, 0.3, 2.5]))
    for value, length, gap in runs:
        for _ in range(length):
            at += gap if _ == 0 else 1.0
            points.append((at, float(value)))
    references = {rule.name: reference_events(rule, points) for rule in rules.rules}
    alerts = AlertEngine(rules)
    got = []
    for index, (at, value) in enumerate(points):
        got += alerts.observe("local", at, {"cpu": value})
        active = {a["rule"]: (a["state"], a["severity"], a["value"]) for a in alerts.active()}
        expected_active = {
            name: states[index]
            for name, (_, states) in references.items()
            if states[index][0] != "ok"
        }
        assert active == expected_active, at - T0
    expected = sorted(
        (e for events, _ in references.values() for e in events),
        key=lambda e: (e.at, e.rule),  # the engine: by sample, then in rule order
    )
    assert [e.to_json() for e in got] == [e.to_json() for e in expected]


PATHS = ("cpu", "memory", "swap.percent")
LEVELS = st.one_of(st.integers(0, 100), st.sampled_from([5, 50, 95]))


def drawn_samples(
    draw: Any, keys: tuple[str, ...], value: Any, gaps: list[float], start: float = T0
) -> list[tuple[float, dict[str, Any]]]:
    """Runs of samples that keep each key's drawn value a while, with irregular gaps
    between runs: (taken at, {key: value})."""
    runs = draw(
        st.lists(
            st.tuples(
                st.fixed_dictionaries(dict.fromkeys(keys, value)),
                st.integers(1, 40),
                st.sampled_from(gaps),
            ),
            min_size=1,
            max_size=20,
        )
    )
    samples, at = [], start
    for numbers, length, gap in runs:
        for step in range(length):
            at += gap if step == 0 else 1.0
            samples.append(
                (at, {k: float(n) if isinstance(n, int) else n for k, n in numbers.items()})
            )
    return samples


References = dict[Any, tuple[list[tuple[float, float]], list[AlertEvent], list[Any]]]


def expected_active(references: References, at: float) -> dict[Any, Any]:
    """Each reference series not ok after its latest point up to ``at``: its state."""
    active = {}
    for key, (points, _, states) in references.items():
        seen = [index for index, (t, _) in enumerate(points) if t <= at]
        if seen and states[seen[-1]][0] != "ok":
            active[key] = states[seen[-1]]
    return active


def sample_values(numbers: dict[str, float | str | None]) -> dict[str, Any]:
    """A sample with each path's number; None is a null (a rate's first tick), "-" leaves
    the path out, "x" puts a string there and "o" an object in place of the path's parent."""
    values: dict[str, Any] = {}
    for path, number in numbers.items():
        head, *rest = path.split(".")
        if number == "-":
            continue
        if number == "o" and rest:
            values[head] = ["not", "an", "object"]
            continue
        if rest:
            values.setdefault(head, {"total_bytes": 1})[rest[0]] = number
        else:
            values[head] = number
    return values


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_rules_on_several_paths_each_match_the_state_machine(data: Any) -> None:
    # Rules on several paths, top-level and nested, with samples where a path is absent,
    # null, not a number or under something that is not an object: each rule must see
    # exactly its own path's numbers, with the events of the state machine fed them.
    tables = []
    for table in engine_rules(data.draw):
        tables.append({**table, "metric": data.draw(st.sampled_from(PATHS))})
    rules = parse_rules({"builtin": False, "rules": {f"r{n}": t for n, t in enumerate(tables)}})
    odd = st.sampled_from([None, "-", "x", "o"])
    value = st.one_of(LEVELS, LEVELS, LEVELS, odd)
    start = T0 + data.draw(st.sampled_from([0.0, 0.3, 2.5]))
    samples = drawn_samples(data.draw, PATHS, value, [1.0, 1.0, 1.0, 0.5, 7.0, 100.0], start)
    references: References = {}
    for rule in rules.rules:
        points = [(t, n[rule.metric]) for t, n in samples if isinstance(n[rule.metric], float)]
        references[rule.name] = (points, *reference_events(rule, points))
    alerts = AlertEngine(rules)
    got = []
    for at, numbers in samples:
        got += alerts.observe("local", at, sample_values(numbers))
        active = {a["rule"]: (a["state"], a["severity"], a["value"]) for a in alerts.active()}
        assert active == expected_active(references, at), at - T0
    expected = sorted(
        (e for _, events, _ in references.values() for e in events),
        key=lambda e: (e.at, int(e.rule[1:])),  # by sample, then in rule order
    )
    assert [e.to_json() for e in got] == [e.to_json() for e in expected]


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_each_mount_of_each_rule_matches_the_state_machine(data: Any) -> None:
    # A rule over `mounts.*.percent` is one series per mount: with mounts that come and go,
    # values that are null, a mount the selectors leave out and every aggregate, each
    # (rule, mount) series must give exactly the events of the state machine fed that
    # mount's numbers, and the active set must agree after every sample.
    tables = []
    for table in engine_rules(data.draw):
        # mostly `last` rules: a `last` series that is ok and calm takes the engine's
        # shortest way (no window, nothing to decide)
        aggregate = data.draw(st.sampled_from(["last", "last", "last", table["aggregate"]]))
        table = {**table, "metric": "mounts.*.percent", "aggregate": aggregate}
        if data.draw(st.booleans()):
            table["exclude"] = {"mountpoint": "/tmp"}
        tables.append(table)
    rules = parse_rules({"builtin": False, "rules": {f"r{n}": t for n, t in enumerate(tables)}})
    mounts = ("/", "/data", "/tmp")
    value = st.one_of(*[LEVELS] * 7, st.sampled_from([None, "-"]))
    samples = [
        (at, {m: {"percent": n} for m, n in numbers.items() if n != "-"})
        for at, numbers in drawn_samples(data.draw, mounts, value, [1.0, 1.0, 1.0, 0.5, 7.0])
    ]
    references: References = {}
    for rule in rules.rules:
        for mount in mounts:
            if not rule.selects({"host": "local", "mountpoint": mount}):
                continue
            points = [
                (t, group[mount]["percent"])
                for t, group in samples
                if mount in group and group[mount]["percent"] is not None
            ]
            references[rule.name, mount] = (points, *reference_events(rule, points))
    alerts = AlertEngine(rules)
    got = []
    for at, group in samples:
        got += alerts.observe("local", at, {"mounts": group})
        active = {
            (a["rule"], a["labels"]["mountpoint"]): (a["state"], a["severity"], a["value"])
            for a in alerts.active()
        }
        assert active == expected_active(references, at), at - T0
    # by sample, then in rule order, then mount by mount as the sample lists them
    place = {(at, mount): n for at, group in samples for n, mount in enumerate(group)}
    expected = sorted(
        ((e, mount) for (_, mount), (_, events, _) in references.items() for e in events),
        key=lambda pair: (pair[0].at, int(pair[0].rule[1:]), place[pair[0].at, pair[1]]),
    )

    def brief(event: AlertEvent, mount: str) -> tuple[Any, ...]:
        return (event.kind, event.rule, mount, event.severity, event.at, event.value)

    assert [brief(e, e.labels["mountpoint"]) for e in got] == [brief(e, m) for e, m in expected]


@pytest.mark.parametrize(
    ("aggregate", "op", "calm", "breach"), [("max", ">", 20.0, 90.0), ("min", "<", 80.0, 10.0)]
)
def test_a_calm_max_or_min_window_that_skipped_its_values_reports_exact_ones(
    aggregate: str, op: str, calm: float, breach: float
) -> None:
    # While calm, the window keeps nothing; the first breach restarts it from that value.
    alerts = engine(aggregate=aggregate, window="30s", op=op, warning=50, repeat="2s")
    rule = alerts.rules.rules[0]
    values = [calm] * 40 + [breach - 1, breach, breach + 1, breach - 2] + [calm] * 40
    points = [(T0 + second, value) for second, value in enumerate(values)]
    expected_events, states = reference_events(rule, points)
    events = []
    for (at, value), (state, severity, reported) in zip(points, states, strict=True):
        events += alerts.observe("local", at, {"cpu": value})
        active = [(a["state"], a["severity"], a["value"]) for a in alerts.active()]
        assert active == ([] if state == "ok" else [(state, severity, reported)]), at - T0
    assert [e.to_json() for e in events] == [e.to_json() for e in expected_events]
    fired = [e for e in events if e.kind is EventKind.FIRING]
    assert len(fired) == 1 and fired[0].value == breach - 1
    assert events[-1].kind is EventKind.RESOLVED


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(list(Comparison)), st.integers(-5, 5)), min_size=1, max_size=4
    ),
    st.lists(st.integers(-7, 7), min_size=1, max_size=20),
)
def test_a_path_gate_is_calm_exactly_when_every_rule_on_it_is(
    bounds: list[tuple[Comparison, int]], values: list[int]
) -> None:
    checks = []
    for op, level in bounds:
        rule = Rule("r", "cpu", op=op, warning=Threshold(float(level)))
        checks.append(_calm_check(_calm_bound(rule)))
    gate = _gate(
        tuple(
            (op.upward, op in (Comparison.AT_LEAST, Comparison.AT_MOST), float(level))
            for op, level in bounds
        )
    )
    for value in values:
        assert gate(float(value)) == all(check(float(value)) for check in checks)


def sensor_engine(**rule: Any) -> AlertEngine:
    table = {"metric": "temps.*.*.celsius", "aggregate": "last", "warning": "high", **rule}
    return AlertEngine(parse_rules({"builtin": False, "rules": {"r": table}}))


def feed_sensor(alerts: AlertEngine, celsius: list[float]) -> list[AlertEvent]:
    """One reading a second from T0 of a sensor whose own marks are high 80, critical 100."""
    events: list[AlertEvent] = []
    for offset, value in enumerate(celsius):
        reading = {"label": "Core 0", "celsius": value, "high": 80.0, "critical": 100.0}
        events += alerts.observe("local", T0 + offset, {"temps": {"coretemp": [reading]}})
    return events


def test_repeat_0_notifies_a_sensor_alert_once() -> None:
    events = feed_sensor(sensor_engine(repeat=0), [90.0] * 30)
    assert kinds(events) == [("firing", "warning", 0.0)]


def test_a_sensor_back_over_its_mark_restarts_the_clear_duration() -> None:
    alerts = sensor_engine(clear_for=60, repeat=0)
    # Below the mark from +1 s to +30 s, over it at +31 s, then below from +32 s: the
    # clear duration counts from +32 s, not from the first dip at +1 s.
    events = feed_sensor(alerts, [90.0] + [70.0] * 30 + [90.0] + [70.0] * 80)
    assert kinds(events) == [("firing", "warning", 0.0), ("resolved", "warning", 92.0)]


def test_an_escalation_restarts_the_repeat_interval() -> None:
    alerts = engine(aggregate="last", warning=80, critical=90, repeat=100)
    events = feed(alerts, [85.0] * 90 + [95.0] * 110)
    assert kinds(events) == [
        ("firing", "warning", 0.0),
        ("firing", "critical", 90.0),
        ("repeat", "critical", 190.0),
    ]
