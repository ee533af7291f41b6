"""The containers meter (sysstream.sansio._containers): rates, limits, names, baselines."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sysstream.sansio import CgroupReading, ContainerInfo, ContainerMeter

ID = "a" * 64
GIB = 1 << 30


def reading(**changes: object) -> CgroupReading:
    base = CgroupReading(
        id=ID,
        generation=7,
        cpu_ns=0,
        memory_bytes=256 << 20,
        memory_limit_bytes=None,
        cpu_limit_cores=None,
        pids=3,
        block_read_bytes=0,
        block_write_bytes=0,
        net_rx_bytes=0,
        net_tx_bytes=0,
        started_at=1000.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


INFO = ContainerInfo(
    id=ID,
    name="web",
    image="nginx:1.27",
    state="running",
    health="healthy",
    restarts=2,
    started_at=1000.5,
    pid=42,
)


def test_first_sample_has_figures_but_no_rates() -> None:
    meter = ContainerMeter(4 * GIB)
    [entry] = meter.update([reading(cpu_ns=10**12)], {}, now=1.0, wall=1010.0).values()
    assert entry["cpu_percent"] is None and entry["net_rx_bytes_per_s"] is None
    assert entry["cpu_seconds"] == 1000.0
    assert entry["memory_bytes"] == 256 << 20
    assert entry["memory_percent"] == 6.25  # of the host's 4 GiB: no limit
    assert (entry["name"], entry["image"], entry["state"]) == (ID[:12], None, None)
    assert entry["uptime_seconds"] == 10.0  # from the cgroup's own start without an engine


def test_rates_over_the_interval_and_names_from_the_engine() -> None:
    meter = ContainerMeter(4 * GIB)
    meter.update([reading()], {ID: INFO}, now=1.0, wall=1010.0)
    second = reading(
        cpu_ns=500_000_000, net_rx_bytes=4096, net_tx_bytes=1024, block_write_bytes=1 << 20
    )
    value = meter.update([second], {ID: INFO}, now=1.5, wall=1010.5)
    entry = value[ID[:12]]
    assert entry["cpu_percent"] == 100.0  # 0.5 s of CPU in 0.5 s: one core
    assert entry["net_rx_bytes_per_s"] == 8192.0 and entry["net_tx_bytes_per_s"] == 2048.0
    assert entry["block_write_bytes_per_s"] == 2 << 20
    assert (entry["name"], entry["image"], entry["health"], entry["restarts"]) == (
        "web",
        "nginx:1.27",
        "healthy",
        2,
    )
    assert entry["uptime_seconds"] == 10.0  # the engine's start is the exact one


def test_percent_of_limits() -> None:
    meter = ContainerMeter(4 * GIB)
    limited = reading(cpu_limit_cores=0.5, memory_limit_bytes=512 << 20)
    meter.update([limited], {}, now=1.0, wall=1.0)
    [entry] = meter.update([replace(limited, cpu_ns=250_000_000)], {}, now=1.5, wall=1.5).values()
    assert entry["cpu_percent"] == 50.0
    assert entry["cpu_limit_percent"] == 100.0
    assert entry["memory_percent"] == 50.0
    # A limit above the host's memory is no limit at all: percent of the host, as docker.
    meter.update([reading(memory_limit_bytes=64 * GIB)], {}, now=2.0, wall=2.0)
    [entry] = meter.update([reading(memory_limit_bytes=64 * GIB)], {}, now=3.0, wall=3.0).values()
    assert entry["memory_percent"] == 6.25


def test_restart_or_reused_id_starts_a_fresh_baseline() -> None:
    meter = ContainerMeter(4 * GIB)
    meter.update([reading(cpu_ns=10**12, net_rx_bytes=10**9)], {}, now=1.0, wall=1.0)
    # Same id, new cgroup (a restart): counters restarted from near zero.
    restarted = reading(generation=8, cpu_ns=10**6, net_rx_bytes=10)
    [entry] = meter.update([restarted], {}, now=2.0, wall=2.0).values()
    assert entry["cpu_percent"] is None and entry["net_rx_bytes_per_s"] is None
    [entry] = meter.update(
        [replace(restarted, cpu_ns=10**6 + 10**8)], {}, now=3.0, wall=3.0
    ).values()
    assert entry["cpu_percent"] == 10.0


def test_counters_that_go_down_give_no_rate() -> None:
    meter = ContainerMeter(4 * GIB)
    meter.update([reading(net_rx_bytes=5000)], {}, now=1.0, wall=1.0)
    [entry] = meter.update([reading(net_rx_bytes=10)], {}, now=2.0, wall=2.0).values()
    assert entry["net_rx_bytes_per_s"] is None


def test_a_container_that_vanished_and_returns_starts_over() -> None:
    meter = ContainerMeter(4 * GIB)
    meter.update([reading(cpu_ns=0)], {}, now=1.0, wall=1.0)
    assert meter.update([], {}, now=2.0, wall=2.0) == {}
    [entry] = meter.update([reading(cpu_ns=10**9)], {}, now=3.0, wall=3.0).values()
    assert entry["cpu_percent"] is None  # not 1 s of CPU over 2 s of which it was gone


def test_host_network_and_stale_engine_start() -> None:
    meter = ContainerMeter(4 * GIB)
    host_net = reading(net_rx_bytes=None, net_tx_bytes=None, started_at=2000.0)
    # The engine still tells of the run before a restart: the cgroup's start wins.
    [entry] = meter.update([host_net], {ID: INFO}, now=1.0, wall=2005.0).values()
    assert entry["net_rx_bytes"] is None and entry["net_rx_bytes_per_s"] is None
    assert entry["uptime_seconds"] == 5.0


def test_an_engine_start_just_before_the_process_start_is_the_exact_one() -> None:
    # The engine stamps StartedAt around the init process's own start, which /proc gives
    # in clock ticks: under STALE_START (1 s) apart, the engine's figure is this run's.
    meter = ContainerMeter(4 * GIB)
    info = replace(INFO, started_at=999.5)
    [entry] = meter.update([reading(started_at=1000.0)], {ID: info}, now=1.0, wall=1010.0).values()
    assert entry["uptime_seconds"] == 10.5


def test_a_start_in_the_future_is_no_negative_uptime() -> None:
    # The wall clock stepped back (NTP) since the container started.
    meter = ContainerMeter(4 * GIB)
    [entry] = meter.update([reading(started_at=1000.0)], {}, now=1.0, wall=990.0).values()
    assert entry["uptime_seconds"] == 0.0


def test_two_readings_at_the_same_moment_give_no_rate() -> None:
    meter = ContainerMeter(4 * GIB)
    meter.update([reading()], {}, now=1.0, wall=1.0)
    [entry] = meter.update([reading(cpu_ns=10**9)], {}, now=1.0, wall=1.0).values()
    assert entry["cpu_percent"] is None and entry["net_rx_bytes_per_s"] is None
    [entry] = meter.update([reading(cpu_ns=2 * 10**9)], {}, now=2.0, wall=2.0).values()
    assert entry["cpu_percent"] == 100.0


def test_host_memory_must_be_positive() -> None:
    with pytest.raises(ValueError, match="expected a positive host memory size, got 0"):
        ContainerMeter(0)
