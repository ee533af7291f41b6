"""The fleet's Redis wire format: keys, host ids, URLs, and tick encode/decode."""

from __future__ import annotations

import orjson
import pytest

from sysstream._sample import Sample
from sysstream.sampling import LocalSource, build_collectors
from sysstream.sansio._wire import (
    MAX_TICK_BYTES,
    WireError,
    backlog_key,
    check_host_id,
    check_redis_url,
    decode_tick,
    encode_tick,
    host_of_channel,
    redact_url,
    ticks_channel,
)

SAMPLE = Sample(
    tick=7,
    timestamp=1762777845.25,
    values={"cpu": 25.5, "memory": 60.2, "net": {"rx_bytes_per_s": 10.0, "interfaces": {}}},
    errors={"disk": "OSError: gone"},
)


def _nested_load(depth: int) -> bytes:
    """A tick whose ``load`` nests ``depth`` objects deep (orjson will not write one)."""
    message = orjson.dumps(tick_dict(values={"load": "HERE"}))
    return message.replace(b'"HERE"', b'{"x":' * depth + b"1" + b"}" * depth)


def tick_dict(**changes: object) -> dict[str, object]:
    message: dict[str, object] = orjson.loads(encode_tick("web1", 1.0, SAMPLE))
    message.update(changes)
    return message


def test_a_tick_survives_the_round_trip() -> None:
    tick = decode_tick(encode_tick("web1", 0.5, SAMPLE), host="web1")
    assert (tick.host, tick.interval) == ("web1", 0.5)
    assert tick.sample == SAMPLE


def test_groups_unknown_to_this_hub_are_dropped_not_refused() -> None:
    data = orjson.dumps(tick_dict(values={"cpu": 1.0, "gpu": 99}, errors={"gpu": "x"}))
    sample = decode_tick(data).sample
    assert sample.values == {"cpu": 1.0} and sample.errors == {}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"not json", "expected a JSON object, got invalid JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (orjson.dumps(tick_dict(v=2)), "expected wire version 1, got 2"),
        (orjson.dumps(tick_dict(host=3)), "expected 'host' to be a string, got 3"),
        (orjson.dumps(tick_dict(host="a:b")), "bad 'host': expected a host id of"),
        (orjson.dumps(tick_dict(host="web2")), "expected host 'web1' on its own channel"),
        (
            orjson.dumps(tick_dict(interval=0)),
            "expected an 'interval' from 0.05 to 3600 s, got 0.0",
        ),
        # Issue 13's lies: each once stopped ingest or hid a real host.
        (orjson.dumps(tick_dict(interval=1e-20)), "expected an 'interval' from 0.05 to 3600 s"),
        (orjson.dumps(tick_dict(interval=1e6)), "expected an 'interval' from 0.05 to 3600 s"),
        (orjson.dumps(tick_dict(tick=2**60)), "expected 'tick' to be a non-negative integer"),
        (_nested_load(300), "expected a number, string or null at values.load.x, got {'x'"),
        (orjson.dumps(tick_dict(values={"cpu": {"a": 1}})), "at values.cpu, got {'a': 1}"),
        (orjson.dumps(tick_dict(values={"cpu": [1]})), "at values.cpu, got [1]"),
        (orjson.dumps(tick_dict(values={"memory": "x" * 5000})), "at most 4096 characters"),
        (orjson.dumps(tick_dict(values={"cpu": 1e300})), "expected a finite number at values.cpu"),
        (b'{"v":1,"host":"web1","interval":1,"tick":1,"timestamp":1e400}', "invalid JSON"),
        (orjson.dumps(tick_dict(errors={"cpu": "x" * 5000})), "'errors.cpu' to be a string of"),
        (orjson.dumps(tick_dict(interval="1")), "expected 'interval' to be a finite number"),
        (orjson.dumps(tick_dict(tick=-1)), "expected 'tick' to be a non-negative integer"),
        (orjson.dumps(tick_dict(tick=True)), "expected 'tick' to be a non-negative integer"),
        (orjson.dumps(tick_dict(timestamp=None)), "expected 'timestamp' to be a finite number"),
        (orjson.dumps(tick_dict(values=[])), "expected 'values' to be an object, got []"),
        (orjson.dumps(tick_dict(errors={"cpu": 1})), "expected 'errors.cpu' to be a string"),
        (b"{" + b" " * MAX_TICK_BYTES + b"}", f"expected a tick of at most {MAX_TICK_BYTES}"),
    ],
)
def test_malformed_ticks_are_refused_with_the_reason(data: bytes, expected: str) -> None:
    with pytest.raises(WireError) as refused:
        decode_tick(data, host="web1")
    assert expected in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (1e12, "expected 'timestamp' at most 300 s ahead of this hub's clock, got 1000000000000.0"),
        (SAMPLE.timestamp + 10 * 365 * 86400, "at most 300 s ahead of this hub's clock"),
        (SAMPLE.timestamp - 8 * 86400, "expected 'timestamp' at most 604800 s old"),
        (SAMPLE.timestamp + 301, "expected 'timestamp' at most 300 s ahead of this hub's clock"),
    ],
)
def test_a_timestamp_far_from_the_hubs_clock_is_refused(timestamp: float, expected: str) -> None:
    data = orjson.dumps(tick_dict(timestamp=timestamp))
    with pytest.raises(WireError, match=expected.replace("(", r"\(")):
        decode_tick(data, host="web1", now=SAMPLE.timestamp)
    # A clock a little ahead, or a backlog a day old, is normal.
    for near in (SAMPLE.timestamp + 60, SAMPLE.timestamp - 86400):
        assert decode_tick(orjson.dumps(tick_dict(timestamp=near)), now=SAMPLE.timestamp)


async def test_a_real_full_catalogue_tick_passes_the_checks() -> None:
    # Every group this machine's collectors read, as they shape it, decodes unchanged.
    source = LocalSource(build_collectors(disk_path="/"), interval=0.1, collect_timeout=5)
    try:
        for _ in range(6):  # past the first tick of the slower groups (processes)
            full = await source.next_sample(source.groups)
    finally:
        source.close()
    assert {"cpu", "net", "mounts", "processes"} <= full.values.keys()
    tick = decode_tick(encode_tick("web1", 1.0, full), host="web1", now=full.timestamp)
    assert tick.sample.values == full.values


def test_channels_and_keys_name_the_host() -> None:
    assert ticks_channel("web-1.eu") == "sysstream:web-1.eu:ticks"
    assert backlog_key("web1") == "sysstream:web1:backlog"
    assert host_of_channel(b"sysstream:web-1.eu:ticks") == "web-1.eu"
    with pytest.raises(WireError, match="expected a channel sysstream:"):
        host_of_channel("sysstream:web1:backlog")
    with pytest.raises(WireError, match="bad channel"):
        host_of_channel("sysstream:a:b:ticks")


@pytest.mark.parametrize("host", ["web1", "db-2.eu_west", "A", "x" * 64])
def test_valid_host_ids(host: str) -> None:
    assert check_host_id(host) == host


@pytest.mark.parametrize("host", ["", "-web", "a b", "a:b", "a/b", "a*", "x" * 65, "é"])
def test_invalid_host_ids(host: str) -> None:
    with pytest.raises(ValueError, match="expected a host id of 1-64 letters"):
        check_host_id(host)


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost",
        "redis://:s3cret@10.0.0.5:6380/2",
        "redis://user:pw@redis.internal:6379",
        "rediss://:pw@redis.example.com:6380/0",
        "unix:///run/redis.sock",
    ],
)
def test_valid_redis_urls(url: str) -> None:
    assert check_redis_url(url) == url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://localhost", "expected a redis://, rediss:// or unix:// URL, got 'http://"),
        ("localhost:6379", "expected a redis://, rediss:// or unix:// URL"),
        ("redis://", "expected a host in the Redis URL"),
        ("redis://localhost:http", "expected a redis:// or rediss:// URL"),
        ("redis://localhost:70000", "expected a redis:// or rediss:// URL"),
        ("redis://localhost:0", "expected a port between 1 and 65535"),
        ("redis://localhost/cache", "expected a database number as the URL path"),
        ("unix://", "expected a socket path"),
    ],
)
def test_invalid_redis_urls(url: str, expected: str) -> None:
    with pytest.raises(ValueError) as refused:
        check_redis_url(url)
    assert expected in str(refused.value)


def test_passwords_are_redacted_in_messages() -> None:
    assert redact_url("redis://:s3cret@h:1/0") == "redis://:***@h:1/0"
    assert redact_url("rediss://me:s3cret@h") == "rediss://me:***@h"
    assert redact_url("redis://h:1") == "redis://h:1"
    with pytest.raises(ValueError) as refused:
        check_redis_url("http://:s3cret@h")
    assert "s3cret" not in str(refused.value)


def test_the_local_host_id_is_reserved_for_the_hub_itself() -> None:
    from sysstream.sansio._wire import check_host_id

    with pytest.raises(ValueError, match="other than 'local'"):
        check_host_id("local")
