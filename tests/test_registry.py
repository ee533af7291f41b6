"""Invariants of the metric registry: the facts every consumer relies on."""

from __future__ import annotations

import re

import pytest

from sysstream._registry import ALWAYS_FIELDS, DEFAULT_FIELDS, GROUPS, Kind, group

METRICS = [metric for g in GROUPS.values() for metric in g.metrics]


def test_paths_are_unique_and_start_with_their_group() -> None:
    paths = [metric.path for metric in METRICS]
    assert len(paths) == len(set(paths))
    for g in GROUPS.values():
        assert all(m.path.split(".")[0] == g.name for m in g.metrics)


@pytest.mark.parametrize("metric", [m for m in METRICS if m.prometheus], ids=lambda m: m.path)
def test_prometheus_names_follow_the_naming_guide(metric: object) -> None:
    name = metric.prometheus  # type: ignore[attr-defined]
    assert re.fullmatch(r"sysstream_[a-z0-9_]+", name)
    if metric.kind is Kind.COUNTER:  # type: ignore[attr-defined]
        assert name.endswith("_total")
    if metric.unit == "percent":  # type: ignore[attr-defined]
        assert name.endswith("_ratio"), "percentages are exported as ratios"
    # One label name per per-item key in the path.
    assert metric.path.count("*") == len(metric.labels)  # type: ignore[attr-defined]


def test_every_metric_is_described_with_a_unit() -> None:
    for metric in METRICS:
        assert metric.description.endswith(".")
        assert metric.unit


def test_default_and_always_sampled_groups() -> None:
    assert DEFAULT_FIELDS == ("cpu", "memory", "disk")
    assert set(DEFAULT_FIELDS) <= set(ALWAYS_FIELDS)
    assert "processes" not in ALWAYS_FIELDS


def test_unknown_group_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="expected one of cpu, memory"):
        group("gpu")
