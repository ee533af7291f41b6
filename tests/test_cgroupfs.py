"""cgroup file formats (sysstream.sansio._cgroupfs), fed the kernel's own text."""

from __future__ import annotations

import pytest

from sysstream.sansio import (
    container_id,
    cpu_limit_cores_v1,
    cpu_limit_cores_v2,
    memory_limit,
    memory_usage,
    parse_blkio_v1,
    parse_cgroup_paths,
    parse_io_stat,
    parse_keyed,
    parse_net_dev,
    parse_proc_start_ticks,
    stat_value,
)

ID = "ecefc20367c202342fb00615c29ccfacde7d94c2656a27ed610f3ce175fd8391"


@pytest.mark.parametrize(
    "name",
    [ID, f"docker-{ID}.scope", f"libpod-{ID}.scope", f"cri-containerd-{ID}.scope", f"crio-{ID}"],
)
def test_container_directories_of_each_engine(name: str) -> None:
    assert container_id(name) == ID


@pytest.mark.parametrize(
    "name", ["docker", "system.slice", ID[:32], f"{ID}0", f"docker-{ID}.mount", ID.upper()]
)
def test_other_directories_are_not_containers(name: str) -> None:
    assert container_id(name) is None


V1_MEMORY_STAT = """cache 167936
rss 57344
inactive_file 4096
active_file 163840
hierarchical_memory_limit 67108864
total_cache 167936
total_inactive_file 131072
total_active_file 36864
"""


def test_stat_value_finds_the_whole_key_only() -> None:
    # v1's memory.stat has inactive_file (this group) and total_inactive_file (its tree).
    assert stat_value(V1_MEMORY_STAT, "total_inactive_file") == 131072
    assert stat_value(V1_MEMORY_STAT, "inactive_file") == 4096
    assert stat_value("total_inactive_file 131072\ninactive_file 4096\n", "inactive_file") == 4096
    assert stat_value(V1_MEMORY_STAT, "cache") == 167936
    assert stat_value(V1_MEMORY_STAT, "file") is None


def test_memory_usage_leaves_out_inactive_cache_as_docker_stats_does() -> None:
    # v1: the hierarchy's total_inactive_file, not the group's own inactive_file.
    assert memory_usage(876544, parse_keyed(V1_MEMORY_STAT)) == 876544 - 131072
    v2 = parse_keyed("anon 1048576\nfile 2097152\ninactive_file 1048576\nactive_file 1048576\n")
    assert memory_usage(4194304, v2) == 4194304 - 1048576
    # Never below zero: a stat read after a usage drop is not subtracted.
    assert memory_usage(1000, {"inactive_file": 5000}) == 1000


def test_memory_limits_and_unlimited() -> None:
    assert memory_limit("67108864\n") == 64 << 20
    assert memory_limit("9223372036854771712\n") is None  # v1, 4 KiB pages
    assert memory_limit("max\n") is None  # v2


def test_cpu_limits() -> None:
    assert cpu_limit_cores_v1("50000\n", "100000\n") == 0.5
    assert cpu_limit_cores_v1("-1\n", "100000\n") is None
    assert cpu_limit_cores_v2("150000 100000\n") == 1.5
    assert cpu_limit_cores_v2("max 100000\n") is None


def test_block_io_v1_and_v2() -> None:
    v1 = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Total 12288\n8:16 Read 1\nTotal 12289\n"
    assert parse_blkio_v1(v1) == (4097, 8192)
    v2 = "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=1 wbytes=0\n"
    assert parse_io_stat(v2) == (4097, 8192)
    assert parse_io_stat("") == (0, 0)


def test_net_dev_sums_interfaces_but_loopback() -> None:
    text = (
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets\n"
        "    lo: 218082884  252556    0    0    0     0          0         0 218082884  252556"
        "    0    0    0     0       0          0\n"
        "  eth0:    1000      10    0    0    0     0          0         0     2000      20"
        "    0    0    0     0       0          0\n"
        "  eth1:      24       1    0    0    0     0          0         0       48       1"
        "    0    0    0     0       0          0\n"
    )
    assert parse_net_dev(text) == (1024, 2048)


def test_proc_start_time_survives_odd_command_names() -> None:
    fields = " ".join(str(n) for n in range(3, 30))  # field 22 holds "22"
    assert parse_proc_start_ticks(f"1234 (a) b (c)) {fields}") == 22


def test_proc_cgroup_paths_v1_and_v2() -> None:
    v1 = "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n"
    assert parse_cgroup_paths(v1) == {
        "memory": "/docker/abc",
        "cpu": "/docker/abc",
        "cpuacct": "/docker/abc",
        "": "/",
    }
    assert parse_cgroup_paths("0::/system.slice/docker-x.scope\n") == {
        "": "/system.slice/docker-x.scope"
    }
