"""The cgroup filesystem's file formats, parsed from their text: container ids from
directory names, CPU and memory limits, memory usage the way ``docker stats`` counts it,
block I/O and network byte counts. Covers cgroup v1 (and the v1 "hybrid" layout) and v2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "container_id",
    "cpu_limit_cores_v1",
    "cpu_limit_cores_v2",
    "memory_limit",
    "memory_usage",
    "parse_blkio_v1",
    "parse_cgroup_paths",
    "parse_io_stat",
    "parse_keyed",
    "parse_net_dev",
    "parse_proc_start_ticks",
    "stat_value",
]

# Docker's cgroupfs driver names the directory by the id (…/docker/<id>); the systemd
# driver, Podman, containerd and CRI-O wrap it in a scope (system.slice/docker-<id>.scope).
_CONTAINER_DIR = re.compile(r"(?:docker-|libpod-|cri-containerd-|crio-)?([0-9a-f]{64})(?:\.scope)?")

# cgroup v1 says "no limit" with the largest page-aligned signed 64-bit value; anything
# this large is no limit (the exact figure depends on the page size).
_V1_UNLIMITED = 1 << 60


def container_id(name: str) -> str | None:
    """The 64-hex container id a cgroup directory is named after, or ``None``."""
    match = _CONTAINER_DIR.fullmatch(name)
    return match.group(1) if match else None


def parse_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (``memory.stat``, ``cpu.stat``) as a dict; other lines skipped."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.isdigit():
            values[key] = int(value)
    return values


def stat_value(text: str, key: str) -> int | None:
    """One ``key value`` line of a flat-keyed file, found without parsing the others (a
    v1 ``memory.stat`` has some 40 lines; a tick needs one of them)."""
    start = 0 if text.startswith(key + " ") else text.find("\n" + key + " ") + 1
    if start == 0 and not text.startswith(key + " "):
        return None
    end = text.find("\n", start)
    return int(text[start + len(key) + 1 : end if end >= 0 else None])


def memory_usage(usage: int, stat: Mapping[str, int]) -> int:
    """Usage minus inactive page cache, as ``docker stats`` shows it: ``total_inactive_file``
    on cgroup v1, ``inactive_file`` on v2 (the docker CLI's ``calculateMemUsageUnixNoCache``).
    Cache that is still active stays counted: the kernel would not reclaim it first."""
    inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
    return usage - inactive if inactive < usage else usage


def memory_limit(text: str) -> int | None:
    """``memory.limit_in_bytes`` (v1) or ``memory.max`` (v2); ``None`` when unlimited."""
    value = text.strip()
    if value == "max":
        return None
    limit = int(value)
    return None if limit >= _V1_UNLIMITED else limit


def cpu_limit_cores_v1(quota_us: str, period_us: str) -> float | None:
    """Cores a v1 CFS quota allows (``--cpus 0.5`` is 50000/100000); ``None`` when -1."""
    quota, period = int(quota_us), int(period_us)
    return quota / period if quota > 0 and period > 0 else None


def cpu_limit_cores_v2(cpu_max: str) -> float | None:
    """Cores a v2 ``cpu.max`` (``"50000 100000"`` or ``"max 100000"``) allows."""
    quota, _, period = cpu_max.strip().partition(" ")
    if quota == "max" or not period:
        return None
    return cpu_limit_cores_v1(quota, period)


def parse_blkio_v1(text: str) -> tuple[int, int]:
    """Bytes read and written, summed over devices, from v1
    ``blkio.throttle.io_service_bytes_recursive`` (``8:0 Read 4096`` lines)."""
    read = written = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3:
            if fields[1] == "Read":
                read += int(fields[2])
            elif fields[1] == "Write":
                written += int(fields[2])
    return read, written


def parse_io_stat(text: str) -> tuple[int, int]:
    """Bytes read and written, summed over devices, from v2 ``io.stat``
    (``8:0 rbytes=4096 wbytes=0 rios=1 …`` lines)."""
    read = written = 0
    for line in text.splitlines():
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if key == "rbytes":
                read += int(value)
            elif key == "wbytes":
                written += int(value)
    return read, written


def parse_net_dev(text: str) -> tuple[int, int]:
    """Bytes received and transmitted by every interface but loopback, from a network
    namespace's ``/proc/<pid>/net/dev`` (two header lines, then ``name: rx … tx …``)."""
    received = transmitted = 0
    for line in text.splitlines()[2:]:
        name, _, counters = line.partition(":")
        if name.strip() == "lo":
            continue
        fields = counters.split()
        if len(fields) >= 9:
            received += int(fields[0])
            transmitted += int(fields[8])
    return received, transmitted


def parse_proc_start_ticks(stat: str) -> int:
    """A process's start time in clock ticks since boot: field 22 of ``/proc/<pid>/stat``,
    counted after the command name, which may itself hold spaces and parentheses."""
    after_name = stat[stat.rindex(")") + 2 :].split()
    return int(after_name[19])  # field 3 is after_name[0]


def parse_cgroup_paths(text: str) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` as controller → path; the v2 hierarchy's key is ``""``.
    A v1 line names one or more controllers (``4:cpu,cpuacct:/docker/…``)."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                paths[controller] = parts[2]
    return paths
