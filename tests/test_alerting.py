"""The alert state machine and windows, driven by a synthetic clock (sample timestamps)."""

from __future__ import annotations

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
from sysstream.sansio._alerting import BUCKETS, WARM, _calm_check, _hold_checks, _level
from sysstream.sansio._alerting import window as make_window
from sysstream.sansio._rules import Aggregate, Comparison, Rule, Threshold

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
    for second, value in enumerate(values):
        result = window.add(T0 + second, value)
    assert len(getattr(window, "_buckets", getattr(window, "_best", None))) <= 60
    exact = {
        Aggregate.AVG: sum(values[-3600:]) / 3600,
        Aggregate.MAX: max(values[-3600:]),
        Aggregate.MIN: min(values[-3600:]),
    }[aggregate]
    assert result == pytest.approx(exact, rel=0.02)


def naive_window(
    aggregate: Aggregate, seconds: float, points: list[tuple[float, float]]
) -> list[float | None]:
    """The window's contract, spelled out with every point kept: each value goes in the
    ``seconds / BUCKETS``-wide bucket open when it arrives; opening a bucket drops the
    buckets that start ``seconds`` or more before; nothing is reported until
    ``WARM`` of the span has passed since the first value."""
    width = seconds / BUCKETS
    kept: list[tuple[float, float]] = []  # (bucket start, value)
    start, end, ready = 0.0, -math.inf, math.inf
    results: list[float | None] = []
    for at, value in points:
        if at >= end:
            if ready == math.inf:
                ready = at + seconds * WARM
            kept = [(bucket, v) for bucket, v in kept if bucket > at - seconds]
            start = at - at % width
            end = start + width
        kept.append((start, value))
        values = [v for _, v in kept]
        if at < ready:
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
        ),
        max_size=400,
    ),
)


@settings(max_examples=300, deadline=None)
@given(window_runs)
def test_windows_match_the_naive_aggregate_over_every_point(
    run: tuple[Aggregate, float, list[tuple[float, float]]],
) -> None:
    # The monotonic deque (max, min) and the running sums (avg) against all points kept.
    aggregate, seconds, steps = run
    points, at = [], T0
    for gap, value in steps:
        at += gap
        points.append((at, value))
    window = make_window(aggregate, seconds)
    got = [window.add(at, value) for at, value in points]
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
    calm, holds = _calm_check(rule), _hold_checks(rule)
    expected = {Severity.WARNING} if critical is None else {Severity.CRITICAL}
    if warning is not None and critical is not None:
        expected.add(Severity.WARNING)
    assert set(holds) == expected
    for value in [*values, *(t for t in (warning, critical, clear) if t is not None)]:
        assert calm(value) == (_level(rule, value, warning, critical, None) is None)
        for severity, hold in holds.items():
            level = _level(rule, value, warning, critical, severity)
            assert hold(value) == (level is severity), (severity, value)
