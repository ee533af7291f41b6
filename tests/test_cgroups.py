"""Containers from the cgroup filesystem alone (sysstream.sampling._cgroups), no daemon.

The first test makes a real container-shaped cgroup on this machine, puts a process that
burns CPU and fills memory in it, and reads it back through the collector with no Docker
daemon to ask: figures from the cgroup, the reason for the missing names under errors.
The second reads a cgroup v2 tree laid out in a temporary directory, for the layout this
machine may not have.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sysstream._sample import Partial
from sysstream.sampling import _cgroups
from sysstream.sampling._cgroups import LIMITS_EVERY, CgroupError, Cgroups
from sysstream.sampling._containers import ContainersCollector
from sysstream.sansio import memory_usage, parse_keyed

ROOT = Path("/sys/fs/cgroup")
ID = "5e" * 32
V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "blkio", "pids")
# Waits for a line, then touches 64 MiB and burns CPU: the memory is charged to the cgroup
# it was moved into, not to the one it started in.
HOG = "import sys; sys.stdin.readline(); b = b'x' * (64 << 20)\nwhile True: pass"


def v2() -> bool:
    return (ROOT / "cgroup.controllers").exists()


@pytest.fixture
def container_cgroup() -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Path]]]:
    """A cgroup named like a container's, holding a CPU- and memory-hungry process."""
    if os.geteuid() != 0:
        pytest.skip("making a cgroup needs root")
    parent = f"sysstream-test-{os.getpid()}"
    if v2():
        top = ROOT / parent
        top.mkdir()
        (top / "cgroup.subtree_control").write_text("+cpu +memory +io +pids")
        dirs = dict.fromkeys(("cpu", "memory", "pids"), top / ID)
        dirs[""] = top / ID
        dirs[""].mkdir()
        made = [dirs[""], top]
    else:
        dirs = {name: ROOT / name / parent / ID for name in V1_CONTROLLERS}
        for path in dirs.values():
            path.mkdir(parents=True)
        made = [p for path in dirs.values() for p in (path, path.parent)]
    hog = subprocess.Popen([sys.executable, "-c", HOG], stdin=subprocess.PIPE)
    for path in set(dirs.values()):
        (path / "cgroup.procs").write_text(str(hog.pid))
    assert hog.stdin is not None
    hog.stdin.write(b"go\n")
    hog.stdin.flush()
    try:
        yield hog, dirs
    finally:
        hog.kill()
        hog.wait(timeout=10)
        for path in made:
            for _ in range(50):  # the kernel frees a group shortly after its last task
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


def cpu_ns(dirs: dict[str, Path]) -> int:
    if v2():
        return parse_keyed((dirs["cpu"] / "cpu.stat").read_text())["usage_usec"] * 1000
    return int((dirs["cpuacct"] / "cpuacct.usage").read_text())


def memory_direct(dirs: dict[str, Path]) -> int:
    memory = dirs["memory"]
    if v2():
        usage = int((memory / "memory.current").read_text())
    else:
        usage = int((memory / "memory.usage_in_bytes").read_text())
    return memory_usage(usage, parse_keyed((memory / "memory.stat").read_text()))


def test_a_cgroup_without_daemon(
    container_cgroup: tuple[subprocess.Popen[bytes], dict[str, Path]], tmp_path: Path
) -> None:
    hog, dirs = container_cgroup
    collector = ContainersCollector(docker_host=f"unix://{tmp_path}/docker.sock")
    try:
        deadline = time.monotonic() + 10
        while memory_direct(dirs) < 64 << 20:  # the hog has touched its memory
            assert time.monotonic() < deadline and hog.poll() is None
            time.sleep(0.05)
        result = collector.collect(time.monotonic())
        for _ in range(40):  # the watcher's first attempt to connect takes a moment
            if isinstance(result, Partial):
                break
            time.sleep(0.05)
            result = collector.collect(time.monotonic())
        # One measured interval, the cgroup's own counter read at the same moments.
        before, start = cpu_ns(dirs), time.monotonic()
        collector.collect(start)
        time.sleep(1.0)
        end = time.monotonic()
        result = collector.collect(end)
        direct = (cpu_ns(dirs) - before) / (end - start) / 1e7
    finally:
        collector.close()
    assert isinstance(result, Partial)
    assert result.reason == (
        f"no Docker daemon: {tmp_path}/docker.sock does not exist"
        " (set DOCKER_HOST or --docker-host)"
    )
    entry = result.value[ID[:12]]
    assert (entry["id"], entry["name"], entry["image"]) == (ID, ID[:12], None)
    assert entry["pids"] == 1
    assert entry["memory_bytes"] == pytest.approx(memory_direct(dirs), rel=0.02)
    assert entry["memory_bytes"] >= 64 << 20
    # A busy loop: one core, or what a shared machine leaves of it, never more.
    assert entry["cpu_percent"] == pytest.approx(direct, abs=8)
    assert 0 < entry["cpu_percent"] <= 105
    assert entry["uptime_seconds"] >= 1.0


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_cgroup_v2_layout(tmp_path: Path) -> None:
    """A systemd-driver container on cgroup v2; its process is this test's own, so its
    network is the host's and is not reported as the container's."""
    group = f"system.slice/docker-{ID}.scope"
    files = {
        "cgroup.controllers": "cpuset cpu io memory pids\n",
        f"{group}/cpu.stat": "usage_usec 2000000\nuser_usec 1500000\nsystem_usec 500000\n",
        f"{group}/memory.current": "104857600\n",
        f"{group}/memory.stat": "anon 73400320\nfile 31457280\ninactive_file 20971520\n",
        f"{group}/memory.max": "209715200\n",
        f"{group}/cpu.max": "150000 100000\n",
        f"{group}/io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
        f"{group}/pids.current": "4\n",
        f"{group}/cgroup.procs": f"{os.getpid()}\n",
        "system.slice/ssh.service/cgroup.procs": "",
        "user.slice/cgroup.procs": "",
    }
    write_tree(tmp_path, files)
    cgroups = Cgroups(str(tmp_path))
    assert cgroups.version == 2
    found = cgroups.scan()
    assert list(found) == [ID]
    assert found[ID][0] == "/" + group
    [reading] = cgroups.read_all(found)
    assert reading.cpu_ns == 2 * 10**9
    assert reading.memory_bytes == 104857600 - 20971520
    assert (reading.memory_limit_bytes, reading.cpu_limit_cores) == (209715200, 1.5)
    assert (reading.block_read_bytes, reading.block_write_bytes, reading.pids) == (4096, 8192, 4)
    assert reading.net_rx_bytes is None  # the host's network namespace
    assert reading.started_at is not None and reading.started_at <= time.time()


def test_no_cgroup_filesystem_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CgroupError, match=f"no cgroup filesystem at {tmp_path}"):
        Cgroups(str(tmp_path))
    collector = ContainersCollector(cgroup_root=str(tmp_path), watch=False)
    with pytest.raises(CgroupError, match="neither v2 nor v1 memory"):
        collector.collect(time.monotonic())


def test_idle_hosts_list_the_cgroups_every_fifth_tick(tmp_path: Path) -> None:
    """With nothing running the hierarchy is listed every LIST_EVERY ticks, not every tick;
    once a container is found, every tick again."""
    write_tree(tmp_path, {"cgroup.controllers": "cpu io memory pids\n"})
    collector = ContainersCollector(cgroup_root=str(tmp_path), watch=False)
    assert collector.collect(0.0) == {}  # tick 0 lists: nothing
    group = f"system.slice/docker-{ID}.scope"
    write_tree(
        tmp_path,
        {
            f"{group}/cpu.stat": "usage_usec 1000\n",
            f"{group}/memory.current": "4096\n",
            f"{group}/memory.stat": "inactive_file 0\n",
            f"{group}/memory.max": "max\n",
            f"{group}/cpu.max": "max 100000\n",
            f"{group}/io.stat": "",
            f"{group}/pids.current": "1\n",
            f"{group}/cgroup.procs": f"{os.getpid()}\n",
        },
    )
    seen = [bool(collector.collect(float(tick))) for tick in range(1, 8)]
    assert seen == [False, False, False, False, True, True, True]
    collector.close()


def v2_container(root: Path, group: str, **changes: str) -> None:
    """A v2 container group under ``root`` (a cgroup v2 tree): 1 ms of CPU, 4 KiB of
    memory, no limits, one process (this test's own); ``changes`` replace files."""
    files = {
        "cpu.stat": "usage_usec 1000\n",
        "memory.current": "4096\n",
        "memory.stat": "inactive_file 0\n",
        "memory.max": "max\n",
        "cpu.max": "max 100000\n",
        "io.stat": "",
        "pids.current": "1\n",
        "cgroup.procs": f"{os.getpid()}\n",
    }
    files.update({name.replace("_", "."): text for name, text in changes.items()})
    write_tree(root, {"cgroup.controllers": "cpu io memory pids\n"})
    write_tree(root, {f"{group}/{name}": text for name, text in files.items()})


def test_limits_written_after_the_cgroup_appears_and_docker_update_are_read(
    tmp_path: Path,
) -> None:
    group = f"system.slice/docker-{ID}.scope"
    v2_container(tmp_path, group)
    cgroups = Cgroups(str(tmp_path))
    found = cgroups.scan()
    [first] = cgroups.read_all(found)
    assert (first.memory_limit_bytes, first.cpu_limit_cores) == (None, None)
    # runc creates the group, then writes its limits: the next tick has them.
    (tmp_path / group / "memory.max").write_text("209715200\n")
    [second] = cgroups.read_all(found)
    assert second.memory_limit_bytes == 209715200
    cgroups.read_all(found)
    # `docker update --cpus 0.5` later on: seen within LIMITS_EVERY ticks.
    (tmp_path / group / "cpu.max").write_text("50000 100000\n")
    later = [cgroups.read_all(found)[0].cpu_limit_cores for _ in range(LIMITS_EVERY)]
    assert later[-1] == 0.5
    cgroups.close()


def test_a_restarted_container_is_read_from_its_new_cgroup(tmp_path: Path) -> None:
    group = f"system.slice/docker-{ID}.scope"
    v2_container(tmp_path, group, cpu_stat="usage_usec 5000000\n", memory_current="8192\n")
    cgroups = Cgroups(str(tmp_path))
    [before] = cgroups.read_all(cgroups.scan())
    assert (before.cpu_ns, before.memory_bytes) == (5 * 10**9, 8192)
    # A restart: the engine removes the group and makes a new one of the same name.
    (tmp_path / group).rename(tmp_path / "old")
    v2_container(tmp_path, group, cpu_stat="usage_usec 2000\n", memory_current="4096\n")
    shutil.rmtree(tmp_path / "old")
    found = cgroups.scan()
    [after] = cgroups.read_all(found)
    assert after.generation == (tmp_path / group).stat().st_ino != before.generation
    assert (after.cpu_ns, after.memory_bytes) == (2 * 10**6, 4096)
    cgroups.close()


def test_a_group_with_no_process_left_is_not_a_running_container(tmp_path: Path) -> None:
    group = f"system.slice/docker-{ID}.scope"
    v2_container(tmp_path, group, pids_current="0\n")
    cgroups = Cgroups(str(tmp_path))
    assert cgroups.read_all(cgroups.scan()) == []


def test_containers_deeper_than_the_listing_come_from_the_engine(tmp_path: Path) -> None:
    deep = f"/kubepods/burstable/pod1/{ID}"
    v2_container(tmp_path, deep.lstrip("/"), cpu_stat="usage_usec 3000\n")
    cgroups = Cgroups(str(tmp_path))
    assert cgroups.scan() == {}
    found = cgroups.scan({ID: deep})
    assert found == {ID: (deep, (tmp_path / deep.lstrip("/")).stat().st_ino)}
    assert [r.cpu_ns for r in cgroups.read_all(found)] == [3 * 10**6]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_counter_files_held_open_stay_within_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_cgroups, "HELD_FILES", 3)
    group = f"system.slice/docker-{ID}.scope"
    v2_container(tmp_path, group)
    cgroups = Cgroups(str(tmp_path))
    before = open_fds()
    found = cgroups.scan()
    cgroups.read_all(found)
    assert open_fds() == before + 3  # of the five counter files read each tick
    (tmp_path / group / "pids.current").write_text("7\n")  # one of those not held
    assert cgroups.read_all(found)[0].pids == 7
    assert open_fds() == before + 3
    cgroups.close()
    assert open_fds() == before


def test_cgroup_v1_layout(tmp_path: Path) -> None:
    """Docker's cgroupfs driver on cgroup v1: one hierarchy per controller. Memory leaves
    out the inactive cache of the whole group (total_inactive_file), as docker stats."""
    group = f"docker/{ID}"
    write_tree(
        tmp_path,
        {
            f"memory/{group}/memory.usage_in_bytes": "104857600\n",
            f"memory/{group}/memory.stat": "inactive_file 4096\ntotal_inactive_file 20971520\n",
            f"memory/{group}/memory.limit_in_bytes": "9223372036854771712\n",
            f"memory/{group}/cgroup.procs": f"{os.getpid()}\n",
            f"cpuacct/{group}/cpuacct.usage": "2000000000\n",
            f"cpu/{group}/cpu.cfs_quota_us": "50000\n",
            f"cpu/{group}/cpu.cfs_period_us": "100000\n",
            f"blkio/{group}/blkio.throttle.io_service_bytes_recursive": (
                "8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\nTotal 12288\n"
            ),
            f"pids/{group}/pids.current": "3\n",
        },
    )
    cgroups = Cgroups(str(tmp_path))
    assert cgroups.version == 1
    found = cgroups.scan()
    assert found == {ID: ("/" + group, (tmp_path / "memory" / group).stat().st_ino)}
    [reading] = cgroups.read_all(found)
    assert reading.cpu_ns == 2 * 10**9
    assert reading.memory_bytes == 104857600 - 20971520
    assert (reading.memory_limit_bytes, reading.cpu_limit_cores) == (None, 0.5)
    assert (reading.block_read_bytes, reading.block_write_bytes, reading.pids) == (4096, 8192, 3)
    cgroups.close()
