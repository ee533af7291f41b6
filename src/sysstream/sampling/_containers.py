"""The ``containers`` collector: cgroup counters each tick, names from the engine's cache.

Figures come from the cgroup filesystem (:mod:`._cgroups`), so a tick costs file reads and
no daemon round-trip; names, images, state, health and restart counts come from the
:class:`~._docker.DockerWatcher`'s snapshot, kept current on the engine's events. Without
a daemon the figures still go out, keyed by id, with the reason under ``errors``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import psutil

from .._sample import Partial
from ..sansio import ContainerInfo, ContainerMeter, parse_docker_host
from ._cgroups import CgroupError, Cgroups
from ._docker import DockerWatcher

__all__ = ["ContainersCollector"]

LIST_EVERY = 5  # ticks between cgroup listings while no container runs
LIVE_STATES = frozenset({"running", "paused", "restarting", "created"})


class ContainersCollector:
    """One entry per running container (docs/containers.md).

    ``docker_host`` is a ``DOCKER_HOST`` value (``unix:///run/podman/podman.sock``);
    ``None`` reads the ``DOCKER_HOST`` variable, then the default socket (whose absence is
    not worth a warning: :class:`DockerWatcher`). ``watch=False`` reads cgroups only.
    """

    def __init__(
        self,
        *,
        docker_host: str | None = None,
        cgroup_root: str = "/sys/fs/cgroup",
        proc: str = "/proc",
        watch: bool = True,
    ) -> None:
        self._meter = ContainerMeter(psutil.virtual_memory().total)
        self._cgroups: Cgroups | None = None
        self._cgroup_error = ""
        try:
            self._cgroups = Cgroups(cgroup_root, proc)
        except CgroupError as exc:
            self._cgroup_error = str(exc)
        self._watcher: DockerWatcher | None = None
        self._docker_error: str | None = None
        if watch:
            try:
                configured = docker_host or os.environ.get("DOCKER_HOST")
                socket = parse_docker_host(configured)
                self._watcher = DockerWatcher(socket, configured=bool(configured))
            except ValueError as exc:
                self._docker_error = str(exc)
        # Cgroup paths the engine told us of (through the init pid), for containers deeper
        # than the listing reaches: id → (pid, path).
        self._paths: dict[str, tuple[int, str | None]] = {}
        self._found: dict[str, tuple[str, int]] = {}
        self._ticks = -1

    def collect(self, now: float) -> dict[str, Any] | Partial:
        if self._cgroups is None:
            raise CgroupError(self._cgroup_error)
        infos: Mapping[str, ContainerInfo] = {}
        reason = self._docker_error
        if self._watcher is not None:
            self._watcher.start()  # here, not at construction: only a sampled group watches
            infos, reason = self._watcher.snapshot()
        extra: dict[str, str] = {}
        paths: dict[str, tuple[int, str | None]] = {}
        for ident, info in infos.items():
            known = self._paths.get(ident)
            if known is None or known[0] != info.pid:
                known = (info.pid, self._cgroups.path_of_pid(info.pid) if info.pid else None)
            paths[ident] = known
            if known[1] is not None:
                extra[ident] = known[1]
        self._paths = paths
        self._ticks += 1
        # Nothing running that we or the engine know of: list the cgroups every few ticks
        # only. The engine's start event makes the next tick list them again, so its
        # containers still appear within two ticks; ones of an engine we cannot ask
        # (no socket) within LIST_EVERY.
        engine_idle = not any(info.state in LIVE_STATES for info in infos.values())
        if not self._found and engine_idle and self._ticks % LIST_EVERY:
            return Partial({}, reason) if reason else {}
        found = self._found = self._cgroups.scan(extra)
        readings = self._cgroups.read_all(found)
        value = self._meter.update(readings, infos, now=now, wall=time.time())
        return Partial(value, reason) if reason else value

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
        if self._cgroups is not None:
            self._cgroups.close()
