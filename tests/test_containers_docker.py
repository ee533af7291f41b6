"""The ``containers`` group against a real dockerd (the tests' own) and a real server.

Figures are checked against the container's cgroup files read here directly and against
``docker stats --no-stream``; names, images, appearance and disappearance against what
the test itself did with the docker CLI.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from statistics import mean
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sysstream.sansio import memory_usage, parse_cgroup_paths, parse_keyed

from .conftest import RunningServer, receive_json, ws_client
from .docker_daemon import IMAGE, DockerDaemon
from .test_stream import parse_timestamp

INTERVAL = 0.5
FIELDS = "?fields=containers,cpu"
Containers = dict[str, dict[str, Any]]


@pytest.fixture
def server(server_factory: Callable[..., RunningServer], docker: DockerDaemon) -> RunningServer:
    return server_factory(interval=INTERVAL, docker_host=docker.host)


def cgroup_file(pid: int, controller: str, name: str) -> str:
    """A container's cgroup file, found from its init process as the kernel sees it."""
    with open(f"/proc/{pid}/cgroup") as file:
        paths = parse_cgroup_paths(file.read())
    if "" in paths and controller not in paths:  # cgroup v2: one hierarchy
        return f"/sys/fs/cgroup{paths['']}/{name}"
    return f"/sys/fs/cgroup/{controller}{paths[controller]}/{name}"


def read(path: str) -> str:
    with open(path) as file:
        return file.read()


def cpu_ns(pid: int) -> int:
    try:
        return int(read(cgroup_file(pid, "cpuacct", "cpuacct.usage")))
    except FileNotFoundError:  # v2
        return parse_keyed(read(cgroup_file(pid, "cpu", "cpu.stat")))["usage_usec"] * 1000


def throttled_periods(pid: int) -> tuple[int, int]:
    """CFS periods the container was runnable in, and those it hit its quota in."""
    stat = parse_keyed(read(cgroup_file(pid, "cpu", "cpu.stat")))
    return stat["nr_periods"], stat["nr_throttled"]


def memory_direct(pid: int) -> int:
    try:
        usage = int(read(cgroup_file(pid, "memory", "memory.usage_in_bytes")))
    except FileNotFoundError:  # v2
        usage = int(read(cgroup_file(pid, "memory", "memory.current")))
    return memory_usage(usage, parse_keyed(read(cgroup_file(pid, "memory", "memory.stat"))))


def docker_stats(docker: DockerDaemon, name: str) -> dict[str, Any]:
    line = docker.output("stats", "--no-stream", "--format", "{{json .}}", name)
    return dict(json.loads(line))


UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "kB": 1000, "MB": 10**6}


def parse_size(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)\s*([A-Za-z]+)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * UNITS[unit]


async def next_containers(websocket: Any) -> tuple[Containers, dict[str, Any]]:
    message = await receive_json(websocket)
    assert "containers" in message, message
    return message["containers"], message


async def within(websocket: Any, ticks: int, predicate: Callable[[Containers], bool]) -> Containers:
    """The first of the next ``ticks`` ticks sampled from now on whose containers satisfy
    ``predicate``. Messages sampled earlier (queued in the client while the test ran a
    docker command) do not count."""
    now = time.time()
    seen: Containers = {}
    message: dict[str, Any] = {}
    while ticks:
        seen, message = await next_containers(websocket)
        if parse_timestamp(message["timestamp"]).timestamp() < now:
            continue
        if predicate(seen):
            return seen
        ticks -= 1
    raise AssertionError(f"not seen within the ticks asked for; last: {message}")


def by_name(containers: Containers, name: str) -> dict[str, Any] | None:
    return next((c for c in containers.values() if c["name"] == name), None)


def start(docker: DockerDaemon, name: str, command: str, *options: str) -> tuple[str, int]:
    """Run ``command`` in a new container; its id and init pid."""
    ident = docker.output("run", "-d", "--network", "none", "--name", name, *options, IMAGE,
                          "sh", "-c", command)  # fmt: skip
    return ident, int(docker.output("inspect", "-f", "{{.State.Pid}}", ident))


def runqueue_wait_ns(pid: int) -> int:
    """Time the container's processes spent runnable but waiting for a CPU (schedstat)."""
    total = 0
    for task in read(cgroup_file(pid, "cpuacct", "cgroup.procs")).split():
        try:
            total += int(read(f"/proc/{task}/schedstat").split()[1])
        except FileNotFoundError:
            continue
    return total


async def steady_cpu(
    websocket: Any, pid: int, name: str, ticks: int = 6
) -> tuple[float, float, float]:
    """Over ``ticks`` ticks: the mean of our CPU figures, the cgroup's own rate read
    directly, and the percent of the time its processes waited for a CPU: on a shared
    machine a burner gets less than a core, and what it got plus what it waited for is
    what it asked for."""
    await within(websocket, 4, lambda c: (by_name(c, name) or {}).get("cpu_percent") is not None)
    before, waited, started = cpu_ns(pid), runqueue_wait_ns(pid), time.monotonic()
    since = time.time()
    ours = []
    while len(ours) < ticks:
        containers, message = await next_containers(websocket)
        if parse_timestamp(message["timestamp"]).timestamp() < since:
            continue  # queued in the client before the window
        entry = by_name(containers, name)
        assert entry is not None
        ours.append(entry)
    elapsed = time.monotonic() - started
    direct = (cpu_ns(pid) - before) / elapsed / 1e7
    wait = (runqueue_wait_ns(pid) - waited) / elapsed / 1e7
    return mean(e["cpu_percent"] for e in ours), direct, wait


async def test_cpu_burner_reads_one_core(server: RunningServer, docker: DockerDaemon) -> None:
    async with ws_client(server.ws_url() + FIELDS) as websocket:
        ident, pid = start(docker, "burner", "yes > /dev/null")
        ours, direct, wait = await steady_cpu(websocket, pid, "burner")
        # docker stats samples its own second, during which the cgroup is read again: on a
        # busy machine a burner's share moves from one second to the next.
        before, started = cpu_ns(pid), time.monotonic()
        stats = float(docker_stats(docker, "burner")["CPUPerc"].rstrip("%"))
        during_stats = (cpu_ns(pid) - before) / (time.monotonic() - started) / 1e7
        containers, message = await next_containers(websocket)
    entry = containers[ident[:12]]
    assert entry["id"] == ident
    assert entry["cpu_limit_cores"] is None and entry["cpu_limit_percent"] is None
    assert ours == pytest.approx(direct, abs=8)
    assert stats == pytest.approx(during_stats, abs=15)
    # One core's worth: what it ran plus what it waited for a busy machine's CPUs.
    assert ours + wait == pytest.approx(100, abs=10)
    assert "errors" not in message


async def test_cpu_limit_reads_its_share(server: RunningServer, docker: DockerDaemon) -> None:
    async with ws_client(server.ws_url() + FIELDS) as websocket:
        _ident, pid = start(docker, "halved", "yes > /dev/null", "--cpus", "0.5")
        periods_before = throttled_periods(pid)
        ours, direct, _wait = await steady_cpu(websocket, pid, "halved")
        periods_after = throttled_periods(pid)
        periods, throttled = (b - a for a, b in zip(periods_before, periods_after, strict=True))
        containers, _message = await next_containers(websocket)
    entry = by_name(containers, "halved")
    assert entry is not None
    assert entry["cpu_limit_cores"] == 0.5
    assert ours == pytest.approx(direct, abs=6)
    # In each CFS period where the kernel throttled it, it ran its whole quota: ~100% of
    # its limit when throttled throughout (a quiet machine), less only when a busy one
    # could not give it half a core; never more than its limit.
    share = throttled / periods
    assert 50 * share - 6 <= ours <= 53, (ours, share)
    limited = [entry["cpu_limit_percent"], entry["cpu_percent"]]
    assert limited[0] == pytest.approx(limited[1] / 0.5, abs=0.2)


async def test_memory_matches_cgroup_and_docker_stats(
    server: RunningServer, docker: DockerDaemon
) -> None:
    # 48 MiB in the container's tmpfs /dev/shm: memory charged to it, not reclaimable cache.
    command = "dd if=/dev/zero of=/dev/shm/blob bs=1M count=48 && sleep 3600"
    async with ws_client(server.ws_url() + FIELDS) as websocket:
        _ident, pid = start(docker, "hog", command, "--memory", "128m")
        containers = await within(
            websocket, 20, lambda c: (by_name(c, "hog") or {}).get("memory_bytes", 0) > 48 << 20
        )
        direct = memory_direct(pid)
        stats = docker_stats(docker, "hog")
    entry = by_name(containers, "hog")
    assert entry is not None
    assert entry["memory_limit_bytes"] == 128 << 20
    assert entry["memory_bytes"] == pytest.approx(direct, rel=0.03)
    used, limit = (parse_size(part) for part in stats["MemUsage"].split("/"))
    assert limit == 128 << 20
    assert entry["memory_bytes"] == pytest.approx(used, rel=0.05)
    percent = entry["memory_bytes"] / (128 << 20) * 100
    assert entry["memory_percent"] == pytest.approx(percent, abs=0.01)
    assert entry["pids"] == 1  # busybox sh execs its last command: sleep alone


async def test_start_stop_restart_within_two_ticks(
    server: RunningServer, docker: DockerDaemon
) -> None:
    async with ws_client(server.ws_url() + FIELDS) as websocket:
        await next_containers(websocket)
        ident, _pid = start(docker, "web", "sleep 3600")
        containers = await within(
            websocket, 2, lambda c: (by_name(c, "web") or {}).get("state") == "running"
        )
        entry = containers[ident[:12]]
        assert (entry["name"], entry["image"], entry["state"]) == ("web", IMAGE, "running")
        assert entry["restarts"] == 0 and entry["health"] is None
        first_start = time.time() - entry["uptime_seconds"]

        await asyncio.sleep(1.5)  # so a restart's uptime is clearly new
        docker.run("restart", "-t", "0", "web")
        restarted_after = time.time()

        def restarted(c: Containers) -> bool:
            entry = c.get(ident[:12])
            return entry is not None and time.time() - entry["uptime_seconds"] > first_start + 1

        containers = await within(websocket, 2, restarted)
        entry = containers[ident[:12]]
        assert time.time() - entry["uptime_seconds"] == pytest.approx(restarted_after, abs=1.5)
        # A restart is a new cgroup: the first figures after it start a fresh baseline.
        assert entry["cpu_percent"] is None or entry["cpu_percent"] < 50

        docker.run("stop", "-t", "0", "web")
        await within(websocket, 2, lambda c: ident[:12] not in c)


async def test_restart_policy_counts_restarts_and_health_shows(
    server: RunningServer, docker: DockerDaemon
) -> None:
    health = ["--health-cmd", "true", "--health-interval", "1s"]
    async with ws_client(server.ws_url() + FIELDS) as websocket:
        start(docker, "flaky", "sleep 1; exit 1", "--restart", "on-failure:5")
        start(docker, "checked", "sleep 3600", *health)
        containers = await within(
            websocket,
            30,
            lambda c: (
                (by_name(c, "flaky") or {}).get("restarts", 0) >= 1
                and (by_name(c, "checked") or {}).get("health") == "healthy"
            ),
        )
    flaky = by_name(containers, "flaky")
    assert flaky is not None
    assert flaky["restarts"] == int(docker.output("inspect", "-f", "{{.RestartCount}}", "flaky"))


async def test_prometheus_labels_containers_by_id_name_and_image(
    server: RunningServer, docker: DockerDaemon
) -> None:
    ident, _pid = start(docker, "labelled", "sleep 3600", "--memory", "64m")

    def named() -> bool:
        sample = server.hub.latest
        entry = sample.values.get("containers", {}).get(ident[:12]) if sample else None
        return entry is not None and entry["name"] == "labelled"

    await server.wait_until(named)
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
        text = (await client.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    limit = families["sysstream_container_memory_limit_bytes"]
    assert limit.documentation.startswith("Memory limit (--memory)")
    [sample] = [s for s in limit.samples if s.labels["name"] == "labelled"]
    assert sample.labels == {"id": ident[:12], "name": "labelled", "image": IMAGE}
    assert sample.value == 64 << 20
    assert families["sysstream_container_cpu_usage_seconds"].type == "counter"


async def test_no_daemon_keeps_cgroup_figures_and_says_why(
    server_factory: Callable[..., RunningServer], docker: DockerDaemon, tmp_path: Any
) -> None:
    missing = tmp_path / "docker.sock"
    server = server_factory(interval=INTERVAL, docker_host=f"unix://{missing}")
    ident, _pid = start(docker, "anonymous", "sleep 3600")
    async with ws_client(server.ws_url() + FIELDS) as websocket:
        # Without an engine to say a container started, the cgroups are listed every 5th
        # tick while none runs; and the first ticks come before the attempt to connect.
        for _ in range(8):
            containers, message = await next_containers(websocket)
            if ident[:12] in containers and "errors" in message:
                break
    entry = containers[ident[:12]]
    assert entry["name"] == ident[:12] and entry["image"] is None and entry["state"] is None
    assert entry["pids"] == 1
    assert message["errors"] == {
        "containers": f"Metric collection failed: no Docker daemon: {missing} does not exist"
        " (set DOCKER_HOST or --docker-host)"
    }
    assert message["cpu"] is not None  # everything else keeps working


async def test_history_and_store_keep_containers(
    server_factory: Callable[..., RunningServer], docker: DockerDaemon, tmp_path: Any
) -> None:
    options = {"no_store": False, "data_dir": str(tmp_path), "flush_interval": 0.5}
    server = server_factory(interval=INTERVAL, docker_host=docker.host, **options)
    ident, _pid = start(docker, "kept", "sleep 3600", "--memory", "32m")
    await server.wait_until(lambda: server.hub.stats.ticks >= 4)
    params = {"seconds": "60", "fields": "containers"}
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        ring = (await client.get("/api/system/metrics/history", params=params)).json()
        # Minute roll-ups come from the store: min/avg/max per container, text kept.
        minutes = await client.get("/api/system/metrics/history", params={**params, "step": "60"})
    kept = [point[ident[:12]] for point in ring["values"]["containers"] if ident[:12] in point]
    assert kept and kept[-1]["name"] == "kept" and kept[-1]["memory_limit_bytes"] == 32 << 20
    assert minutes.status_code == 200
    rolled = minutes.json()["max"]["containers"][-1][ident[:12]]
    assert rolled["memory_limit_bytes"] == 32 << 20 and rolled["image"] == IMAGE
