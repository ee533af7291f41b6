"""Rule files: the built-ins, overrides, and one clear line for every mistake."""

from __future__ import annotations

from typing import Any

import pytest

from sysstream.sansio import (
    AlertEngine,
    AlertEvent,
    EventKind,
    RuleError,
    Severity,
    Silence,
    SilenceError,
    Silences,
    notification_text,
    parse_duration,
    parse_rules,
    parse_silence,
    webhook_body,
)
from sysstream.sansio._rules import Rule, Threshold, alertable_metrics
from sysstream.sansio._silences import MAX_MATCHERS, MAX_SILENCES


def test_builtins_cover_the_defaults_the_issue_names() -> None:
    rules = {r.name: r for r in parse_rules({}).rules}
    assert sorted(rules) == [
        "cpu", "filesystem", "host_offline", "load", "memory", "swap", "temperature",
    ]  # fmt: skip
    assert rules["filesystem"].metric == "mounts.*.percent"
    assert rules["filesystem"].labels == ("mountpoint",)
    assert rules["load"].metric == "load.load5_per_core"
    assert str(rules["temperature"].warning) == "high"
    assert rules["cpu"].window == 300


def test_a_rule_overrides_or_disables_a_builtin() -> None:
    rules = parse_rules(
        {"rules": {"cpu": {"warning": 70, "clear": 60, "for": "10m"}, "swap": {"enabled": False}}}
    )
    by_name = {r.name: r for r in rules.rules}
    assert "swap" not in by_name
    cpu = by_name["cpu"]
    assert (cpu.metric, cpu.window, cpu.warning, cpu.for_) == ("cpu", 300, cpu.warning, 600)
    assert cpu.warning is not None and cpu.warning.value == 70
    assert parse_rules({"builtin": False}).rules == ()


def test_an_override_that_moves_the_thresholds_keeps_the_builtin_clear_margin() -> None:
    # `warning = 70` alone on cpu (built in: warning 90, clear 85) must not be refused for
    # a clear of 85 the user never wrote: it clears 5 below, as the built-in does.
    def override(**fields: Any) -> Rule:
        (cpu,) = [r for r in parse_rules({"rules": {"cpu": fields}}).rules if r.name == "cpu"]
        return cpu

    assert override(warning=70).clear == 65
    assert override(critical=99).clear == 85  # the warning, 90, still fires first
    assert override(warning=70, clear=50).clear == 50  # given: kept as written
    assert override(op="<", warning=10, critical=5).clear is None  # no margin the other way
    with pytest.raises(RuleError, match="field 'clear': expected a value on the safe side"):
        override(warning=70, clear=75)


def test_an_override_of_a_builtins_aggregate_or_window_keeps_its_summary_true() -> None:
    def summary(name: str, **fields: Any) -> str:
        [rule] = [r for r in parse_rules({"rules": {name: fields}}).rules if r.name == name]
        return rule.summary

    # The built-ins as docs/alerts.md describes them.
    assert summary("cpu") == "CPU busy on average over 5 minutes"
    assert summary("filesystem") == "Filesystem space in use"
    assert summary("cpu", aggregate="last") == "CPU busy"
    assert summary("cpu", window="0") == "CPU busy"
    assert summary("cpu", window="10m") == "CPU busy on average over 10 minutes"
    assert (
        summary("memory", aggregate="max", window="1h")
        == "Memory in use at its highest over 1 hour"
    )
    assert (
        summary("swap", aggregate="min", window=90) == "Swap in use at its lowest over 90 seconds"
    )
    assert summary("filesystem", aggregate="avg", window="1m") == (
        "Filesystem space in use on average over 1 minute"
    )
    assert summary("cpu", warning=70) == "CPU busy on average over 5 minutes"  # untouched
    assert summary("cpu", aggregate="last", summary="Busy now") == "Busy now"  # as written
    assert summary("cpu", metric="memory", warning=90) == ""  # another metric: no built-in words


def test_a_notification_of_an_overridden_builtin_says_what_fired() -> None:
    rules = parse_rules({"builtin": True, "rules": {"cpu": {"aggregate": "last"}}})
    engine = AlertEngine(rules)
    events = [
        event
        for second in range(3)
        for event in engine.observe("local", 1_700_000_000.0 + second, {"cpu": 99.0})
        if event.rule == "cpu"
    ]
    assert [e.kind for e in events] == [EventKind.FIRING]
    _title, text = notification_text(events[0])
    assert text.startswith("CPU busy: 99 (threshold 98)"), text


def test_durations() -> None:
    assert [parse_duration(v) for v in (30, 1.5, "90s", "5m", "2h", "1d", "250ms")] == [
        30, 1.5, 90, 300, 7200, 86400, 0.25,
    ]  # fmt: skip
    for bad in ("5 minutes", -1, True, "m"):
        with pytest.raises(ValueError, match="expected a duration"):
            parse_duration(bad)


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"x": {"metric": "cpu_load"}}, "rule 'x', field 'metric': unknown metric 'cpu_load'"),
        ({"x": {"metric": "mounts.percent"}}, "did you mean 'mounts.*.percent' or"),
        (
            {"x": {"metric": "net.interfaces.tx_bytes_per_s"}},
            "did you mean 'net.interfaces.*.tx_bytes_per_s' or",
        ),
        ({"x": {"metric": "cpu"}}, "rule 'x', field 'warning': expected a warning or a critical"),
        ({"x": {"metric": "cpu", "warning": "high"}}, "field 'warning': expected a number or a"),
        ({"x": {"metric": "cpu", "warning": 90, "critical": 80}}, "expected above the warning"),
        ({"x": {"metric": "cpu", "warning": 90, "window": "5 min"}}, "field 'window': expected"),
        ({"x": {"metric": "cpu", "warning": 90, "window": "30d"}}, "expected at most 7 days"),
        ({"x": {"metric": "cpu", "warning": 90, "op": "=>"}}, "field 'op': expected one of"),
        ({"x": {"metric": "cpu", "warning": 90, "aggregate": "p95"}}, "field 'aggregate'"),
        ({"x": {"metric": "cpu", "warning": 90, "clear": 95}}, "field 'clear': expected a value"),
        ({"x": {"metric": "cpu", "warning": 90, "treshold": 1}}, "field 'treshold': unknown"),
        ({"x": {"metric": "cpu", "warning": 9, "match": {"disk": "/"}}}, "unknown label 'disk'"),
        ({"x": {"metric": "mounts.*.device", "warning": 1}}, "unknown metric"),
        ({"x y": {"metric": "cpu", "warning": 1}}, "rule 'x y': expected a name"),
        ({"x": "cpu > 90"}, "rule 'x': expected a table"),
        (
            {"x": {"metric": "temps.*.*.celsius", "warning": "celsius"}},
            "field 'warning': expected a number or a sibling value of 'temps.*.*.celsius'",
        ),
        ({"x": {"metric": "processes.count", "warning": 1}}, "unknown metric"),
    ],
)
def test_bad_rules_get_one_line_naming_rule_and_field(rules: Any, message: str) -> None:
    with pytest.raises(RuleError) as raised:
        parse_rules({"rules": rules})
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_unknown_top_level_keys_are_refused() -> None:
    with pytest.raises(RuleError, match="unknown top-level key 'rule'"):
        parse_rules({"rule": {}})


def test_notify_destinations_are_checked_and_named_without_their_secret() -> None:
    def destinations(*tables: dict[str, Any]) -> list[tuple[str, str, float]]:
        rules = parse_rules({"builtin": False, "notify": list(tables)})
        return [(d.name, d.url, d.timeout) for d in rules.notify]

    token = "tgram://123456:SECRET-bot-token/42"
    assert destinations({"url": token}, {"webhook": "http://h/x", "timeout": 120}) == [
        ("tgram#1", token, 5.0),
        ("http#2", "http://h/x", 120.0),
    ]
    refused = [
        ({"webhook": "http://h/x", "timeout": 121}, "field 'timeout': expected 0 to 120 seconds"),
        ({"webhook": "http://h/x", "timeout": 0}, "field 'timeout': expected 0 to 120 seconds"),
    ]
    for table, message in refused:
        with pytest.raises(RuleError, match=message):
            destinations(table)
    with pytest.raises(RuleError, match="expected each destination's name once"):
        destinations({"webhook": "http://a/", "name": "ops"}, {"url": "json://b", "name": "ops"})


def test_an_override_naming_another_metric_drops_the_builtin_summary() -> None:
    moved = {"cpu": {"metric": "memory", "warning": 50}}
    rules = {r.name: r for r in parse_rules({"rules": moved}).rules}
    assert (rules["cpu"].metric, rules["cpu"].summary) == ("memory", "")
    kept = {r.name: r for r in parse_rules({"rules": {"cpu": {"warning": 70}}}).rules}
    assert kept["cpu"].summary == "CPU busy on average over 5 minutes"


def test_a_sibling_threshold_applies_only_when_the_sensor_gives_a_positive_one() -> None:
    high = Threshold(sibling="high")
    assert high.resolve({"high": 80.0}) == 80.0
    assert [high.resolve(s) for s in ({"high": 0.0}, {"high": None}, {}, None)] == [None] * 4
    assert Threshold(value=5.0).resolve(None) == 5.0


def test_match_needs_the_label_and_exclude_ignores_a_missing_one() -> None:
    rule = Rule("fs", "mounts.*.percent", match={"host": ("web-*",)}, exclude={"dev": ("x",)})
    assert rule.selects({"host": "web-1", "mountpoint": "/"})
    assert not rule.selects({"host": "db-1", "mountpoint": "/"})
    assert not rule.selects({"mountpoint": "/"})  # no host label: not selected


def test_alertable_metrics_leave_out_groups_without_history() -> None:
    paths = alertable_metrics()
    assert paths["mounts.*.percent"] == ("mountpoint",)
    assert paths["temps.*.*.celsius"] == ("chip", "sensor")
    assert not [path for path in paths if path.startswith("processes.")]


def test_silences_match_labels_rule_and_severity_until_they_end() -> None:
    silence = parse_silence(
        {"matchers": {"rule": "filesystem", "mountpoint": "/data*"}, "duration": 60}, "s1", 100.0
    )
    silences = Silences()
    silences.add(silence, 100.0)
    assert silences.silenced("filesystem", "warning", {"host": "h", "mountpoint": "/data2"}, 150)
    assert not silences.silenced("filesystem", "warning", {"host": "h", "mountpoint": "/"}, 150)
    assert not silences.silenced("cpu", "warning", {"host": "h", "mountpoint": "/data"}, 150)
    assert not silences.silenced("filesystem", "warning", {"mountpoint": "/data"}, 160)
    assert silences.list(160.0) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "expected a JSON object, got list"),
        ({"duration": 60}, "expected matchers as a non-empty object"),
        ({"matchers": {"rule": ""}, "duration": 60}, "expected matcher 'rule' as a pattern"),
        ({"matchers": {"rule": "cpu"}}, "expected exactly one of duration"),
        ({"matchers": {"rule": "cpu"}, "duration": -5}, "expected duration above 0"),
        ({"matchers": {"rule": "cpu"}, "duration": "1h"}, "expected duration as a number"),
        ({"matchers": {"rule": "cpu"}, "ends": 50}, "expected ends in the future"),
        ({"matchers": {"rule": "cpu"}, "duration": 1e9}, "shorter than a year"),
        ({"matchers": {"rule": "cpu"}, "duration": 9, "by": "me"}, "unknown key 'by'"),
        (
            {"matchers": {f"l{n}": "x" for n in range(MAX_MATCHERS + 1)}, "duration": 9},
            f"expected at most {MAX_MATCHERS} matchers, got {MAX_MATCHERS + 1}",
        ),
        ({"matchers": {"rule": "x" * 257}, "duration": 9}, "expected matcher 'rule' as a pattern"),
        ({"matchers": {"": "cpu"}, "duration": 9}, "expected a label name, got ''"),
        ({"matchers": {"n" * 65: "cpu"}, "duration": 9}, "expected a label name"),
        ({"matchers": {"rule": "cpu"}, "duration": 9, "comment": "c" * 257}, "expected comment"),
        ({"matchers": {"rule": "cpu"}, "duration": 9, "comment": 5}, "expected comment"),
    ],
)
def test_bad_silences_are_refused_with_one_line(body: Any, message: str) -> None:
    with pytest.raises(SilenceError) as raised:
        parse_silence(body, "id", 100.0)
    assert message in str(raised.value)


def test_silences_are_bounded_expired_ones_make_room_and_they_list_oldest_first() -> None:
    silences = Silences()

    def silence(n: int, now: float, duration: float) -> Any:
        body = {"matchers": {"rule": f"r{n}"}, "duration": duration}
        return parse_silence(body, f"s{n}", now)

    for n in range(MAX_SILENCES - 1):
        silences.add(silence(n, 100.0, 50.0), 100.0)  # ends at 150
    silences.add(silence(MAX_SILENCES - 1, 90.0, 1000.0), 100.0)  # the oldest start
    with pytest.raises(SilenceError, match=f"expected at most {MAX_SILENCES} silences"):
        silences.add(silence(MAX_SILENCES, 100.0, 50.0), 100.0)
    # At 200 all but one have ended: adding expires them first, so there is room.
    silences.add(silence(MAX_SILENCES, 200.0, 50.0), 200.0)
    silences.add(silence(MAX_SILENCES + 1, 190.0, 50.0), 200.0)  # added last, started earlier
    assert [s.id for s in silences.list(200.0)] == [
        f"s{MAX_SILENCES - 1}", f"s{MAX_SILENCES + 1}", f"s{MAX_SILENCES}",
    ]  # fmt: skip


def test_webhook_body_follows_alertmanager_v4() -> None:
    event = AlertEvent(
        EventKind.FIRING, "filesystem", {"host": "web-1", "mountpoint": "/"},
        Severity.CRITICAL, 96.5, 95.0, 1_700_000_060.0, 1_700_000_000.0, "Disk full",
    )  # fmt: skip
    body = webhook_body(event)
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "sysstream"
    [alert] = body["alerts"]
    assert alert["labels"] == {
        "alertname": "filesystem", "host": "web-1", "mountpoint": "/", "severity": "critical",
    }  # fmt: skip
    assert alert["startsAt"] == "2023-11-14T22:13:20.000000Z"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["annotations"]["value"] == "96.5"
    assert alert["annotations"]["threshold"] == "95"
    assert body["groupKey"] == '{}:{alertname="filesystem"}'
    assert body["groupLabels"] == {"alertname": "filesystem"}
    assert len(alert["fingerprint"]) == 16
    title, text = notification_text(event)
    assert title == "[CRITICAL] filesystem on host=web-1, mountpoint=/"
    assert text.startswith("Disk full: 96.5 (threshold 95)")


def test_a_silenced_verdict_is_kept_until_the_silences_change_or_one_starts_or_ends() -> None:
    # Every GET /api/alerts and alert subscription asks about every active alert: with a
    # fleet agent's 4 KiB labels and 1,000 silences, ~90 ms of event loop per alert.
    now = 1000.0
    silences = Silences(
        parse_silence({"matchers": {"host": f"*x{n}*y*"}, "duration": 600}, f"s{n}", now)
        for n in range(999)
    )
    labels = {"host": "h" * 4096}
    for _ in range(3):
        assert not silences.silenced("cpu", "warning", labels, now + 1)
    assert silences.verdicts_computed == 1
    assert not silences.silenced("cpu", "critical", labels, now + 1)  # another alert
    assert silences.verdicts_computed == 2
    mute = parse_silence({"matchers": {"host": "h*"}, "duration": 60}, "mute", now + 2)
    silences.add(mute, now + 2)  # a change: asked again
    assert silences.silenced("cpu", "warning", labels, now + 3)
    assert silences.silenced("cpu", "warning", labels, now + 4)
    assert silences.verdicts_computed == 3
    # It ends at now + 62 with no call in between: the verdict is not carried past it.
    assert not silences.silenced("cpu", "warning", labels, now + 62)
    assert silences.verdicts_computed == 4
    # Nor past the start of one that starts later (another hub's, in fleet mode).
    later = Silence("later", {"host": "h*"}, now + 100, now + 200)
    silences.replace([*silences.list(now + 62), later])
    assert not silences.silenced("cpu", "warning", labels, now + 70)
    assert silences.silenced("cpu", "warning", labels, now + 100)
    computed = silences.verdicts_computed
    silences.replace(silences.list(now + 101))  # the same ones, read again: verdicts kept
    assert silences.silenced("cpu", "warning", labels, now + 101)
    assert silences.verdicts_computed == computed
    assert silences.remove("later")
    assert not silences.silenced("cpu", "warning", labels, now + 101)


def test_a_repeat_says_still_firing_and_a_resolve_says_when() -> None:
    labels = {"host": "web-1"}
    repeat = AlertEvent(
        EventKind.REPEAT, "cpu", labels, Severity.WARNING, 91.0, 90.0, 1_700_003_600.0,
        1_700_000_000.0, "CPU busy",
    )  # fmt: skip
    assert notification_text(repeat)[0] == "[WARNING] cpu on host=web-1 (still firing)"
    resolved = AlertEvent(
        EventKind.RESOLVED, "cpu", labels, Severity.WARNING, 80.0, 90.0, 1_700_000_060.0,
        1_700_000_000.0, "CPU busy",
    )  # fmt: skip
    body = webhook_body(resolved)
    assert (body["status"], body["alerts"][0]["endsAt"]) == (
        "resolved", "2023-11-14T22:14:20.000000Z",
    )  # fmt: skip
    assert notification_text(resolved) == (
        "[RESOLVED] cpu on host=web-1",
        "CPU busy: resolved at 2023-11-14T22:14:20.000000Z (since 2023-11-14T22:13:20.000000Z)",
    )
