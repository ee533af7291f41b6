from __future__ import annotations

import struct

import orjson
import pytest

from sysstream._sample import Sample
from sysstream.sansio._messages import encode_error, encode_sample, format_timestamp, text_frame

STAMP = 1762777845.123456  # 2025-11-10T12:30:45.123456Z


def test_timestamp_is_utc_with_z() -> None:
    assert format_timestamp(STAMP) == "2025-11-10T12:30:45.123456Z"


def test_default_message_has_exactly_the_seed_keys() -> None:
    sample = Sample(1, STAMP, {"cpu": 25.5, "memory": 60.2, "disk": 45.3})
    assert orjson.loads(encode_sample(sample, ("cpu", "memory", "disk"))) == {
        "cpu": 25.5,
        "memory": 60.2,
        "disk": 45.3,
        "timestamp": "2025-11-10T12:30:45.123456Z",
    }


def test_partial_failure_sends_what_worked_and_names_what_failed() -> None:
    sample = Sample(1, STAMP, {"cpu": 1.0, "memory": 2.0}, {"disk": "FileNotFoundError: gone"})
    message = orjson.loads(encode_sample(sample, ("cpu", "memory", "disk")))
    assert message["disk"] is None
    assert message["errors"] == {"disk": "Metric collection failed: FileNotFoundError: gone"}


def test_a_group_that_worked_in_part_carries_its_value_and_reason() -> None:
    value = {"5e5e5e5e5e5e": {"name": "5e5e5e5e5e5e", "cpu_percent": 99.0}}
    sample = Sample(1, STAMP, {"containers": value}, {"containers": "no Docker daemon"})
    message = orjson.loads(encode_sample(sample, ("containers",)))
    assert message["containers"] == value  # not the all-failed error shape
    assert message["errors"] == {"containers": "Metric collection failed: no Docker daemon"}


def test_total_failure_is_the_seed_error_shape() -> None:
    sample = Sample(1, STAMP, {}, {"cpu": "a", "memory": "b", "disk": "c"})
    assert orjson.loads(encode_sample(sample, ("cpu", "memory", "disk"))) == {
        "error": "Metric collection failed: cpu: a; memory: b; disk: c",
        "timestamp": "2025-11-10T12:30:45.123456Z",
    }


def test_error_reply_shape() -> None:
    assert orjson.loads(encode_error("bad", STAMP)) == {
        "error": "bad",
        "timestamp": "2025-11-10T12:30:45.123456Z",
    }


@pytest.mark.parametrize(("size", "header"), [(5, 2), (200, 4), (70000, 10)])
def test_text_frame_lengths(size: int, header: int) -> None:
    frame = text_frame(b"x" * size)
    assert frame[0] == 0x81  # FIN, text, RSV bits clear
    assert len(frame) == size + header
    if header == 2:
        assert frame[1] == size
    elif header == 4:
        assert frame[1] == 126 and struct.unpack("!H", frame[2:4])[0] == size
    else:
        assert frame[1] == 127 and struct.unpack("!Q", frame[2:10])[0] == size
