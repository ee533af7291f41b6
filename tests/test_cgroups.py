"""Containers from the cgroup filesystem alone (sysstream.sampling._cgroups), no daemon.

The first test makes a real container-shaped cgroup on this machine, puts a process that
burns CPU and fills memory in it, and reads it back through the collector with no Docker
daemon to ask: figures from the cgroup, the reason for the missing names under errors.
The second reads a cgroup v2 tree laid out in a temporary directory, for the layout this
machine may not have.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sysstream._sample import Partial
from sysstream.sampling._cgroups import CgroupError, Cgroups
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
