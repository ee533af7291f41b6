"""Containers' cgroups on this host: finding them and reading their counters.

A running container is a cgroup directory named after its 64-hex id. They are found by
listing the cgroup root and its children each tick (Docker's cgroupfs driver puts them in
``/docker/<id>``, the systemd driver and Podman in ``system.slice/docker-<id>.scope`` or
``machine.slice/libpod-<id>.scope``); deeper ones (Kubernetes, rootless Podman) are found
through the engine, from the container's init process's ``/proc/<pid>/cgroup``. With no
container running a tick costs a handful of directory listings.

Both layouts are read: cgroup v2 (one hierarchy at the root, ``cgroup.controllers``) and
v1, including the "hybrid" layout where the controllers are v1 hierarchies under the root.
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..sansio import (
    CgroupReading,
    container_id,
    cpu_limit_cores_v1,
    cpu_limit_cores_v2,
    memory_limit,
    memory_usage,
    parse_blkio_v1,
    parse_cgroup_paths,
    parse_io_stat,
    parse_net_dev,
    parse_proc_start_ticks,
    stat_value,
)

__all__ = ["CgroupError", "Cgroups"]

# Limits change only on `docker update`: read them every few ticks, not every tick.
LIMITS_EVERY = 10
# ...but on each of a container's first ticks: runc creates the cgroup, then writes limits.
FIRST_LIMIT_READS = 3
# Counter files held open between ticks (six per container), at most this many and an
# eighth of the open-files limit: the server keeps a reserve beside its clients.
HELD_FILES = 512


class CgroupError(OSError):
    """The cgroup filesystem cannot be read (not mounted, or no permission)."""


def _read(path: str) -> str:
    with open(path, "rb") as file:
        return file.read().decode("ascii", "replace")


@dataclass(slots=True)
class _Known:
    """One incarnation of a container: what stays true (read once), and its counter files
    held open. A tick re-reads each with one ``pread`` at offset 0 (the kernel regenerates
    the text): a tenth of the cost of opening it again, which matters at 50 containers."""

    path: str  # relative to each hierarchy's root, e.g. /docker/<id>
    generation: int
    files: dict[str, int] = field(default_factory=dict)  # path → open descriptor
    net_path: str | None = None  # /proc/<pid>/net/dev of a process inside; "": the host's
    started_at: float | None = None
    memory_limit: int | None = None
    cpu_limit: float | None = None
    limits_read_at: int = -LIMITS_EVERY
    limit_reads: int = 0  # a new cgroup may be listed before the engine has set its limits

    def read(self, path: str, budget: list[int]) -> str:
        """The file's text; held open while ``budget[0]`` (descriptors the reader may
        still hold) allows, else opened for this read only."""
        fd = self.files.get(path)
        if fd is not None:
            return os.pread(fd, 65536, 0).decode("ascii", "replace")
        if budget[0] <= 0:
            return _read(path)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.files[path] = fd
        budget[0] -= 1
        return os.pread(fd, 65536, 0).decode("ascii", "replace")

    def close(self) -> int:
        """Close every held descriptor; returns how many."""
        count = len(self.files)
        for fd in self.files.values():
            os.close(fd)
        self.files.clear()
        return count


class Cgroups:
    """Reads every running container's counters from the cgroup filesystem at ``root``."""

    def __init__(self, root: str = "/sys/fs/cgroup", proc: str = "/proc") -> None:
        self.root = root
        self.proc = proc
        if os.path.exists(os.path.join(root, "cgroup.controllers")):
            self.version = 2
            self._scan_root = root
        elif os.path.isdir(os.path.join(root, "memory")):
            self.version = 1
            self._scan_root = os.path.join(root, "memory")
        else:
            raise CgroupError(f"no cgroup filesystem at {root} (neither v2 nor v1 memory)")
        if not os.access(self._scan_root, os.R_OK | os.X_OK):
            raise CgroupError(f"no permission to read {self._scan_root}")
        self._known: dict[str, _Known] = {}
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        limit = soft if soft != resource.RLIM_INFINITY else HELD_FILES * 8
        self._budget = [min(HELD_FILES, limit // 8)]  # descriptors we may still hold
        self._lock = threading.Lock()
        self._reads = 0
        # /proc/<pid>/stat counts start times on the boot-time clock; /proc/stat's btime
        # is whole seconds, too coarse for a container that just started.
        self._boot_time = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
        self._ticks_per_second = os.sysconf("SC_CLK_TCK")
        self._own_netns = self._netns("self")

    def scan(self, extra: Mapping[str, str] = {}) -> dict[str, tuple[str, int]]:
        """Running containers: id → (cgroup path relative to the root, directory inode).
        ``extra`` adds paths learnt elsewhere (from the engine) for ids not found here."""
        found: dict[str, tuple[str, int]] = {}
        try:
            top = list(os.scandir(self._scan_root))
        except OSError as exc:
            raise CgroupError(f"cannot list {self._scan_root}: {exc.strerror}") from None
        for entry in top:
            if not entry.is_dir(follow_symlinks=False):
                continue
            ident = container_id(entry.name)
            if ident is not None:
                found[ident] = ("/" + entry.name, entry.inode())
                continue
            try:
                children = list(os.scandir(entry.path))
            except OSError:
                continue  # removed meanwhile
            for child in children:
                ident = container_id(child.name)
                if ident is not None and child.is_dir(follow_symlinks=False):
                    found[ident] = (f"/{entry.name}/{child.name}", child.inode())
        for ident, path in extra.items():
            if ident not in found:
                with contextlib.suppress(OSError):  # stopped meanwhile
                    found[ident] = (path, os.stat(self._scan_root + path).st_ino)
        return found

    def path_of_pid(self, pid: int) -> str | None:
        """The cgroup path of process ``pid`` in the hierarchy this reader lists."""
        try:
            paths = parse_cgroup_paths(_read(f"{self.proc}/{pid}/cgroup"))
        except OSError:
            return None
        return paths.get("" if self.version == 2 else "memory")

    def read_all(self, found: Mapping[str, tuple[str, int]]) -> list[CgroupReading]:
        """One reading per container of ``found`` still running."""
        # close() comes from another thread (the source's); never close a descriptor
        # while a read holds it, or twice: its number may be another file's by then.
        with self._lock:
            return self._read_all(found)

    def _read_all(self, found: Mapping[str, tuple[str, int]]) -> list[CgroupReading]:
        self._reads += 1
        known: dict[str, _Known] = {}
        readings = []
        for ident, (path, generation) in found.items():
            state = self._known.pop(ident, None)
            if state is not None and (state.generation != generation or state.path != path):
                self._budget[0] += state.close()
                state = None
            if state is None:
                state = _Known(path, generation)
            try:
                readings.append(self._read_one(ident, state))
            except PermissionError:
                self._budget[0] += state.close()
                raise
            except (OSError, ValueError):
                self._budget[0] += state.close()
                continue  # the container stopped between the listing and the read
            known[ident] = state
        for gone in self._known.values():
            self._budget[0] += gone.close()
        self._known = known
        return readings

    def close(self) -> None:
        """Close the held files; later reads hold none."""
        with self._lock:
            for state in self._known.values():
                self._budget[0] += state.close()
            self._known = {}
            self._budget[0] = -(1 << 30)

    def _read_one(self, ident: str, state: _Known) -> CgroupReading:
        budget = self._budget

        def read(path: str) -> str:
            return state.read(path, budget)

        if self.version == 2:
            base = self.root + state.path
            cpu_ns = (stat_value(read(base + "/cpu.stat"), "usage_usec") or 0) * 1000
            usage = int(read(base + "/memory.current"))
            inactive = stat_value(read(base + "/memory.stat"), "inactive_file")
            block = parse_io_stat(read(base + "/io.stat"))
            pids_file = base + "/pids.current"
            procs = base + "/cgroup.procs"
        else:
            base = self.root + "/{}" + state.path
            cpu_ns = int(read(base.format("cpuacct") + "/cpuacct.usage"))
            usage = int(read(base.format("memory") + "/memory.usage_in_bytes"))
            memory_stat = read(base.format("memory") + "/memory.stat")
            inactive = stat_value(memory_stat, "total_inactive_file")
            block = parse_blkio_v1(
                read(base.format("blkio") + "/blkio.throttle.io_service_bytes_recursive")
            )
            pids_file = base.format("pids") + "/pids.current"
            procs = base.format("memory") + "/cgroup.procs"
        memory = memory_usage(usage, {"inactive_file": inactive or 0})
        try:
            pids: int | None = int(read(pids_file))
        except FileNotFoundError:
            pids = None  # the pids controller is not enabled for this group
        if pids == 0:  # stopped; the engine has not removed the group yet
            raise ProcessLookupError("no process left in the container")
        young = state.limit_reads < FIRST_LIMIT_READS
        if young or self._reads - state.limits_read_at >= LIMITS_EVERY:
            self._read_limits(state)
        net = self._net(state, procs)
        return CgroupReading(
            id=ident,
            generation=state.generation,
            cpu_ns=cpu_ns,
            memory_bytes=memory,
            memory_limit_bytes=state.memory_limit,
            cpu_limit_cores=state.cpu_limit,
            pids=pids,
            block_read_bytes=block[0],
            block_write_bytes=block[1],
            net_rx_bytes=net[0] if net else None,
            net_tx_bytes=net[1] if net else None,
            started_at=state.started_at,
        )

    def _read_limits(self, state: _Known) -> None:
        state.limits_read_at = self._reads
        state.limit_reads += 1
        if self.version == 2:
            base = self.root + state.path
            state.memory_limit = memory_limit(_read(base + "/memory.max"))
            state.cpu_limit = cpu_limit_cores_v2(_read(base + "/cpu.max"))
        else:
            state.memory_limit = memory_limit(
                _read(f"{self.root}/memory{state.path}/memory.limit_in_bytes")
            )
            cpu = f"{self.root}/cpu{state.path}/cpu.cfs_"
            state.cpu_limit = cpu_limit_cores_v1(_read(cpu + "quota_us"), _read(cpu + "period_us"))

    def _net(self, state: _Known, procs: str, retry: bool = True) -> tuple[int, int] | None:
        """Bytes through the container's network namespace, read from a process inside
        it; ``None`` when it shares the host's (the figures would be the host's)."""
        if state.net_path is None:
            for line in _read(procs).split():
                pid = int(line)
                try:
                    start = parse_proc_start_ticks(_read(f"{self.proc}/{pid}/stat"))
                except OSError:
                    continue  # ended meanwhile
                state.started_at = round(self._boot_time + start / self._ticks_per_second, 2)
                host = self._own_netns is not None and self._netns(str(pid)) == self._own_netns
                state.net_path = "" if host else f"{self.proc}/{pid}/net/dev"
                break
            else:
                raise ProcessLookupError("no process left in the container")
        if not state.net_path:
            return None
        try:
            # Held open, the file keeps reading that namespace whichever process ends.
            return parse_net_dev(state.read(state.net_path, self._budget))
        except OSError:
            if retry:
                state.net_path = None  # that process ended (not held open): ask another
                return self._net(state, procs, retry=False)
            raise

    def _netns(self, pid: str) -> str | None:
        try:
            return os.readlink(f"{self.proc}/{pid}/ns/net")
        except OSError:
            return None
