"""Collectors against the machine itself: values compared with /proc, statvfs and traffic
the test makes."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from sysstream._registry import GROUPS
from sysstream.sampling._collectors import (
    DiskIoCollector,
    LoadCollector,
    MemoryDetailCollector,
    MountsCollector,
    NetCollector,
    ProcessesCollector,
    build_collectors,
)
from sysstream.sampling._processes import CMDLINE_MAX, ProcessTable


def test_there_is_a_collector_for_every_registry_group() -> None:
    assert set(build_collectors(disk_path="/")) == set(GROUPS)


def test_net_rates_match_known_loopback_traffic() -> None:
    collector = NetCollector()
    payload = b"x" * 65536
    total = 20 * 1024 * 1024
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def drain() -> None:
        conn, _ = server.accept()
        with conn:
            while conn.recv(1 << 20):
                pass

    reader = threading.Thread(target=drain)
    reader.start()
    start = time.monotonic()
    collector.collect(start)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        for _ in range(total // len(payload)):
            client.sendall(payload)
    reader.join(timeout=10)
    server.close()
    end = time.monotonic()
    value = collector.collect(end)
    lo = value["interfaces"]["lo"]
    moved = lo["rx_bytes_per_s"] * (end - start)
    # Our 20 MiB plus TCP/IP headers and whatever else used loopback meanwhile.
    assert total <= moved < total * 1.5
    assert lo["rx_packets_per_s"] > 0
    external = [c["rx_bytes"] for name, c in value["interfaces"].items() if name != "lo"]
    assert value["rx_bytes"] == sum(external)  # the total leaves loopback out


def test_first_reading_has_no_rate() -> None:
    value = NetCollector().collect(time.monotonic())
    assert value["rx_bytes_per_s"] is None
    assert isinstance(value["rx_bytes"], int)


def test_disk_io_rates_see_an_fsynced_write(tmp_path: os.PathLike[str]) -> None:
    collector = DiskIoCollector()
    start = time.monotonic()
    collector.collect(start)
    size = 16 * 1024 * 1024
    path = os.path.join(tmp_path, "blob")
    with open(path, "wb") as handle:
        handle.write(os.urandom(size))
        handle.flush()
        os.fsync(handle.fileno())
    end = time.monotonic()
    value = collector.collect(end)
    written = value["write_bytes_per_s"] * (end - start)
    if written == 0:
        pytest.skip("the temporary directory is not on a block device (tmpfs)")
    assert written >= size * 0.9
    assert value["write_ops_per_s"] > 0


def test_mounts_agree_with_statvfs() -> None:
    mounts = MountsCollector().collect(0)
    assert "/" in mounts
    root = mounts["/"]
    stat = os.statvfs("/")
    assert root["total_bytes"] == stat.f_blocks * stat.f_frsize
    assert abs(root["free_bytes"] - stat.f_bavail * stat.f_frsize) < 64 * 1024 * 1024


def test_load_matches_getloadavg() -> None:
    value = LoadCollector().collect(0)
    assert value["load1"] == pytest.approx(os.getloadavg()[0], abs=0.5)
    assert value["load1_per_core"] == pytest.approx(value["load1"] / psutil.cpu_count(), abs=0.01)


def test_processes_counts_and_ranks() -> None:
    value = ProcessesCollector().collect(0)
    assert abs(value["count"] - len(psutil.pids())) <= 5
    rss = [row["rss_bytes"] for row in value["top_memory"]]
    assert rss == sorted(rss, reverse=True)
    assert len(value["top_cpu"]) <= 10


def test_processes_carry_their_command_line_bounded() -> None:
    marker = "sysstream-cmdline-marker"
    long_argument = "x" * 400
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", marker, long_argument],
        stdin=subprocess.PIPE,
    )
    try:
        rows = {row["pid"]: row for row in ProcessTable().snapshot(max_age=0).rows}
    finally:
        child.communicate(timeout=10)
    row = rows[child.pid]
    assert row["cmdline"].startswith(f"{sys.executable} -c import sys; sys.stdin.read() {marker} x")
    assert len(row["cmdline"]) == CMDLINE_MAX and row["cmdline"].endswith("x…")
    own = " ".join(psutil.Process().cmdline())
    cut = own if len(own) <= CMDLINE_MAX else own[: CMDLINE_MAX - 1] + "…"
    assert rows[os.getpid()]["cmdline"] == cut


def test_process_table_walks_again_only_when_older_than_asked() -> None:
    table = ProcessTable()
    first = table.snapshot(max_age=60)
    assert table.snapshot(max_age=60) is first
    assert table.snapshot(max_age=0) is not first
    value = ProcessesCollector(table).collect(0)
    assert value["cpus"] == psutil.cpu_count()
    assert set(value["top_cpu"][0]) == {
        "pid", "name", "user", "cmdline", "cpu_percent", "memory_percent", "rss_bytes"
    }  # fmt: skip


def test_memory_detail_in_bytes_matches_virtual_memory() -> None:
    value = MemoryDetailCollector().collect(0)
    memory = psutil.virtual_memory()
    assert value["total_bytes"] == memory.total
    assert value["used_bytes"] == pytest.approx(memory.used, rel=0.1)
    assert value["cached_bytes"] == pytest.approx(memory.cached + memory.buffers, rel=0.1)
    assert value["available_bytes"] == pytest.approx(memory.available, rel=0.1)


def sysfs_sensors(kind: str) -> dict[str, list[float]]:
    """Readings straight from sysfs, as the kernel exposes them: chip name to values
    (``temp``: degrees Celsius from hwmon, else thermal zones; ``fan``: RPM from hwmon)."""
    chips: dict[str, list[float]] = {}
    scale = 1000 if kind == "temp" else 1
    for chip in sorted(Path("/sys/class/hwmon").glob("hwmon*")):
        name = (chip / "name").read_text().strip() if (chip / "name").exists() else chip.name
        for reading in sorted(chip.glob(f"{kind}*_input")):
            with contextlib.suppress(OSError, ValueError):  # a sensor that cannot be read
                chips.setdefault(name, []).append(int(reading.read_text()) / scale)
    if kind == "temp" and not chips:  # psutil's fallback, and so ours
        for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*")):
            with contextlib.suppress(OSError, ValueError):
                value = int((zone / "temp").read_text()) / 1000
                chips.setdefault((zone / "type").read_text().strip(), []).append(value)
    return chips


@pytest.mark.parametrize(("group", "kind", "unit", "tolerance"), [
    ("temps", "temp", "celsius", 3.0), ("fans", "fan", "rpm", 200.0),
])  # fmt: skip
def test_sensors_match_sysfs_and_are_empty_without_hardware(
    group: str, kind: str, unit: str, tolerance: float
) -> None:
    value = build_collectors(disk_path="/")[group].collect(0)
    expected = sysfs_sensors(kind)
    assert sorted(value) == sorted(expected)  # {} on a VM without sensors, not an error
    for chip, readings in expected.items():
        got = sorted(entry[unit] for entry in value[chip])
        assert len(got) == len(readings), chip
        assert all(abs(a - b) <= tolerance for a, b in zip(got, sorted(readings), strict=True))


def command_numbers(*argv: str) -> list[list[str]]:
    lines = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [line.split() for line in lines.splitlines()]


def test_memory_and_swap_match_free() -> None:
    collectors = build_collectors(disk_path="/")
    memory, swap = collectors["memory"].collect(0), collectors["swap"].collect(0)
    rows = {row[0].rstrip(":"): row[1:] for row in command_numbers("free", "-b")[1:]}
    total, available = int(rows["Mem"][0]), int(rows["Mem"][5])
    assert memory == pytest.approx((total - available) / total * 100, abs=1.0)
    swap_total, swap_used = map(int, rows["Swap"][:2])
    assert swap["total_bytes"] == swap_total
    assert swap["used_bytes"] == pytest.approx(swap_used, abs=32 * 1024 * 1024)
    expected = swap_used / swap_total * 100 if swap_total else 0.0
    assert swap["percent"] == pytest.approx(expected, abs=1.0)


def test_disk_matches_df() -> None:
    value = build_collectors(disk_path="/")["disk"].collect(0)
    used, available = map(int, command_numbers("df", "-B1", "--output=used,avail", "/")[1])
    assert value == pytest.approx(used / (used + available) * 100, abs=0.5)  # df's Use%


def test_uptime_matches_proc_uptime() -> None:
    value = build_collectors(disk_path="/")["uptime"].collect(0)
    with open("/proc/uptime") as uptime:
        assert value == pytest.approx(float(uptime.read().split()[0]), abs=2.0)


def test_per_core_has_one_figure_per_logical_cpu() -> None:
    collector = build_collectors(disk_path="/")["cpu_per_core"]
    time.sleep(0.05)  # let some CPU time pass so the figures are not None
    assert len(collector.collect(0)) == psutil.cpu_count()


def proc_stat_modes() -> dict[str, list[int]]:
    """Clock ticks per mode from /proc/stat: ``cpu`` (all) and ``cpu0``… (each core)."""
    with open("/proc/stat") as stat:
        return {
            fields[0]: [int(value) for value in fields[1:11]]
            for fields in (line.split() for line in stat)
            if fields[0].startswith("cpu")
        }


def busy_percent(before: list[int], after: list[int]) -> float:
    """Busy share of one /proc/stat line's delta: all but idle and iowait, guest (inside
    user) left out of the total."""
    delta = [b - a for a, b in zip(before, after, strict=True)][:8]
    return (sum(delta) - delta[3] - delta[4]) / sum(delta) * 100


def spin(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def test_cpu_times_split_matches_proc_stat() -> None:
    collector = build_collectors(disk_path="/")["cpu_times"]
    before = proc_stat_modes()["cpu"]
    spin(0.5)
    after = proc_stat_modes()["cpu"]
    value = collector.collect(0)
    modes = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    delta = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(delta[:8])
    for index, mode in enumerate(modes):
        assert value[mode] == pytest.approx(delta[index] / total * 100, abs=5), mode
    assert sum(value[mode] for mode in modes) == pytest.approx(100, abs=0.5)


def test_per_core_busy_matches_proc_stat() -> None:
    collector = build_collectors(disk_path="/")["cpu_per_core"]
    before = proc_stat_modes()
    spin(0.5)  # one core busy for most of the window, whichever it is
    after = proc_stat_modes()
    value = collector.collect(0)
    expected = [busy_percent(before[f"cpu{n}"], after[f"cpu{n}"]) for n in range(len(value))]
    assert value == pytest.approx(expected, abs=10)
    assert max(value) >= 50


def meminfo_cache() -> int:
    """free's buff/cache: Buffers + Cached + SReclaimable, in bytes."""
    with open("/proc/meminfo") as meminfo:
        kib = {line.split(":")[0]: int(line.split()[1]) for line in meminfo}
    return (kib["Buffers"] + kib["Cached"] + kib.get("SReclaimable", 0)) * 1024


def test_memory_detail_cache_is_frees_buff_cache() -> None:
    collector = MemoryDetailCollector()
    before = meminfo_cache()
    value = collector.collect(0)
    after = meminfo_cache()
    slack = 4 * 1024 * 1024  # what the page cache may move between the three reads
    assert min(before, after) - slack <= value["cached_bytes"] <= max(before, after) + slack


def test_disk_io_total_counts_whole_disks_only() -> None:
    value = DiskIoCollector().collect(time.monotonic())
    assert not [name for name in value["devices"] if name.startswith(("loop", "ram"))]
    disks = [name for name in value["devices"] if name in os.listdir("/sys/block")]
    assert disks  # the machine has a disk
    for name in ("read_bytes", "write_bytes", "read_ops", "write_ops"):
        # /sys/block lists whole disks: a partition's I/O is also counted on its disk.
        assert value[name] == sum(value["devices"][disk][name] for disk in disks)


@pytest.mark.parametrize("path", ["/", "/dev/shm"])  # --disk-path: any filesystem
def test_disk_path_matches_df(path: str) -> None:
    value = build_collectors(disk_path=path)["disk"].collect(0)
    used, available = map(int, command_numbers("df", "-B1", "--output=used,avail", path)[1])
    assert value == pytest.approx(used / (used + available) * 100, abs=0.5)  # df's Use%


def test_mounts_match_df() -> None:
    root = MountsCollector().collect(0)["/"]
    size, used, available = map(
        int, command_numbers("df", "-B1", "--output=size,used,avail", "/")[1]
    )
    assert root["total_bytes"] == size
    # used leaves out the blocks reserved for root, as df does.
    assert root["used_bytes"] == pytest.approx(used, abs=64 * 1024 * 1024)
    assert root["free_bytes"] == pytest.approx(available, abs=64 * 1024 * 1024)
    assert root["percent"] == pytest.approx(used / (used + available) * 100, abs=0.5)
