"""Leaf-wise roll-ups and bucketing, with no I/O."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sysstream.sansio._rollup import BucketRollup, Summary, bucket_start, combine, summarize


def test_numbers_summarise_to_avg_min_max() -> None:
    assert summarize([1.0, 2.0, 6.0]) == Summary(3, 3.0, 1.0, 6.0)


def test_nulls_are_skipped_but_counted_as_points() -> None:
    # A rate is null on the first tick; the bucket still had three points.
    assert summarize([None, 2.0, 4.0]) == Summary(3, 3.0, 2.0, 4.0)
    assert summarize([None, None]) == Summary(2, None, None, None)


def test_nested_values_keep_their_shape_and_latest_text() -> None:
    points = [
        {"/": {"device": "/dev/vda1", "percent": 40.0}, "cores": [10.0, 20.0]},
        {"/": {"device": "/dev/vda2", "percent": 50.0}, "cores": [30.0, 0.0]},
    ]
    summary = summarize(points)
    assert summary.avg == {"/": {"device": "/dev/vda2", "percent": 45.0}, "cores": [20.0, 10.0]}
    assert summary.min == {"/": {"device": "/dev/vda2", "percent": 40.0}, "cores": [10.0, 0.0]}
    assert summary.max == {"/": {"device": "/dev/vda2", "percent": 50.0}, "cores": [30.0, 20.0]}


def test_a_key_that_went_away_is_summarised_over_the_points_that_had_it() -> None:
    points = [{"eth0": 1.0, "wlan0": 8.0}, {"eth0": 3.0}]
    summary = summarize(points)
    assert list(summary.avg) == ["eth0", "wlan0"]
    assert summary.avg == {"eth0": 2.0, "wlan0": 8.0}


def test_a_list_that_grew_is_summarised_index_by_index() -> None:
    # A CPU brought online mid-bucket: core 2 exists in the last point only.
    summary = summarize([[10.0, 20.0], [30.0, 40.0, 90.0]])
    assert summary == Summary(2, [20.0, 30.0, 90.0], [10.0, 20.0, 90.0], [30.0, 40.0, 90.0])
    merged = combine(
        [Summary(1, [1.0], [1.0], [1.0]), Summary(3, [5.0, 7.0], [4.0, 6.0], [6.0, 8.0])]
    )
    assert merged == Summary(4, [4.0, 7.0], [1.0, 6.0], [6.0, 8.0])


def test_averages_are_rounded_to_three_decimals() -> None:
    assert summarize([0.0, 0.0, 1.0]).avg == 0.333


def test_combine_weights_averages_by_points() -> None:
    merged = combine([Summary(3, 1.0, 0.0, 2.0), Summary(1, 5.0, 5.0, 5.0)])
    assert merged == Summary(4, 2.0, 0.0, 5.0)


values = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=50)


@given(values, st.data())
def test_combining_parts_equals_summarising_the_whole(
    points: list[float], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(1, len(points) - 1))
    parts = [summarize(points[:cut]), summarize(points[cut:])]
    whole = summarize(points)
    merged = combine(parts)
    assert (merged.n, merged.min, merged.max) == (whole.n, whole.min, whole.max)
    assert math.isclose(merged.avg, whole.avg, abs_tol=2e-3, rel_tol=1e-9)


def test_buckets_are_epoch_aligned() -> None:
    assert bucket_start(1000.5, 60) == 960.0
    assert bucket_start(1800.0, 900) == 1800.0


def test_a_bucket_closes_when_a_point_of_the_next_one_arrives() -> None:
    rollup = BucketRollup(60)
    closed = [rollup.add_values("a", 600.0 + i, {"cpu": float(i)}) for i in range(60)]
    assert not any(closed)
    (bucket,) = rollup.add_values("a", 660.0, {"cpu": 99.0})
    assert (bucket.host, bucket.start) == ("a", 600.0)
    assert bucket.groups["cpu"] == Summary(60, 29.5, 0.0, 59.0)
    partial = rollup.open_summary("a")
    assert partial is not None and partial.groups["cpu"] == Summary(1, 99.0, 99.0, 99.0)


def test_hosts_are_bucketed_apart() -> None:
    rollup = BucketRollup(60)
    rollup.add_values("a", 600.0, {"cpu": 1.0})
    rollup.add_values("b", 630.0, {"cpu": 2.0})
    (bucket,) = rollup.add_values("a", 700.0, {"cpu": 3.0})
    assert bucket.host == "a" and bucket.groups["cpu"].n == 1
    drained = {b.host: b.groups["cpu"].avg for b in rollup.drain()}
    assert drained == {"a": 3.0, "b": 2.0}
    assert rollup.open_summary("a") is None


def test_a_point_older_than_the_open_bucket_is_counted_late() -> None:
    rollup = BucketRollup(60)
    rollup.add_values("a", 700.0, {"cpu": 1.0})
    assert rollup.add_values("a", 650.0, {"cpu": 2.0}) == []
    assert rollup.late == 1


def test_a_rollup_is_fed_one_kind_of_point() -> None:
    rollup = BucketRollup(900)
    rollup.add_summaries("a", 0.0, {"cpu": Summary(60, 1.0, 0.0, 2.0)})
    with pytest.raises(TypeError, match="expected summaries"):
        rollup.add_values("a", 60.0, {"cpu": 1.0})


def test_misuse_says_what_was_expected() -> None:
    with pytest.raises(ValueError, match="expected at least one value"):
        summarize([])
    with pytest.raises(ValueError, match="expected a resolution > 0"):
        BucketRollup(0)
