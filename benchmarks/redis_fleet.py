"""Fleet mode under load: simulated agents on a real Redis, one hub then two, with clients.

Run (about a minute; needs Debian's redis-server)::

    .venv/bin/python benchmarks/redis_fleet.py            # prints the results table
    .venv/bin/python benchmarks/redis_fleet.py --write-docs  # and updates docs/benchmarks.md

Owns: the fleet benchmark end to end. One process simulates ``--hosts`` agents (each
publishes a realistic full tick, taken from this machine's sampler and varied per host,
once per second, spread over the second, with the agent's own PUBLISH + XADD + ZADD
pipeline). Hubs are ``sysstream serve --redis`` processes; ``--per-host`` WebSocket
clients watch every host, split evenly over the hubs. CPU comes from /proc/<pid>/stat
over the measuring window; host-ticks from Redis's PUBLISH call count over the same window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from procstat import cpu_seconds
from servers import HOST, PYTHON, SYSSTREAM, free_port

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Fleet"
INTERVAL = 1.0


# The simulated agents (a child process)


def realistic_values() -> dict[str, Any]:
    """One full tick of this machine's history-kept groups, as a real agent sends it."""
    from sysstream.fleet._agent import published_groups
    from sysstream.sampling._collectors import build_collectors
    from sysstream.sampling._source import LocalSource

    async def sample_twice() -> dict[str, Any]:
        source = LocalSource(build_collectors(disk_path="/"), interval=0.2)
        groups = published_groups(source.groups)
        await source.next_sample(groups)  # the second tick has rates, not nulls
        values = (await source.next_sample(groups)).values
        source.close()
        return values

    return asyncio.run(sample_twice())


def simulate_agents(url: str, hosts: int) -> None:
    from sysstream._sample import Sample
    from sysstream.sansio._wire import HOSTS_KEY, backlog_key, encode_tick, ticks_channel

    values = realistic_values()
    client = redis.Redis.from_url(url)
    names = [f"host-{index:02d}" for index in range(hosts)]
    start = time.monotonic()
    tick = 0
    while True:
        tick += 1
        for index, host in enumerate(names):
            due = start + tick * INTERVAL + index * INTERVAL / hosts
            time.sleep(max(0.0, due - time.monotonic()))
            varied = dict(values)
            for name in ("cpu", "memory", "disk"):
                varied[name] = round(random.uniform(1, 99), 1)
            payload = encode_tick(host, INTERVAL, Sample(tick, time.time(), varied))
            pipe = client.pipeline(transaction=False)
            pipe.publish(ticks_channel(host), payload)
            pipe.xadd(backlog_key(host), {"tick": payload}, maxlen=600)
            pipe.zadd(HOSTS_KEY, {host: time.time()})
            pipe.execute()


# The WebSocket clients (a child process)


async def watch_all(urls: list[str]) -> None:
    from websockets.asyncio.client import connect

    counts = {"messages": 0, "errors": 0}

    async def one(url: str) -> None:
        async with connect(url, open_timeout=30, max_size=2**20) as websocket:
            async for message in websocket:
                counts["errors" if '"error"' in str(message)[:10] else "messages"] += 1

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    tasks = [asyncio.create_task(one(url)) for url in urls]
    print(json.dumps({"connected": len(urls)}), flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()
    print(json.dumps(counts), flush=True)


# Orchestration


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    name: str

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> bytes:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            out, _ = self.popen.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            out, _ = self.popen.communicate()
        return out or b""


def start_redis() -> tuple[Process, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not found: apt-get install redis-server")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    popen = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://{HOST}:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return Process(popen, "redis"), url


def start_hub(url: str | None) -> tuple[Process, int]:
    fleet = ["--redis", url] if url else []
    popen = subprocess.Popen(
        [SYSSTREAM, "serve", "--port", "0", *fleet, "--interval", str(INTERVAL), "--no-store"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "SYSSTREAM_MAX_CLIENTS": "10000"},
    )
    assert popen.stderr is not None
    port = 0
    deadline = time.monotonic() + 30
    while not port:
        line = popen.stderr.readline().decode()
        if not line or time.monotonic() > deadline:
            raise RuntimeError("hub exited before listening")
        if match := re.search(r"serving on http://[\d.]+:(\d+)", line):
            port = int(match[1])
    stderr = popen.stderr
    threading.Thread(target=lambda: [None for _ in stderr], daemon=True).start()  # drain
    return Process(popen, f"hub:{port}"), port


def baseline(args: argparse.Namespace) -> float:
    """CPU percent of a hub with no fleet: its own host's sampler, to subtract."""
    process, _port = start_hub(None)
    try:
        time.sleep(args.warmup)
        before, wall_before = cpu_seconds(process.pid), time.monotonic()
        time.sleep(args.seconds)
        return 100 * (cpu_seconds(process.pid) - before) / (time.monotonic() - wall_before)
    finally:
        process.stop()


def publishes(client: redis.Redis) -> int:
    stats: dict[str, Any] = client.info("commandstats")  # type: ignore[assignment]
    return int(stats.get("cmdstat_publish", {}).get("calls", 0))


def measure(
    args: argparse.Namespace, url: str, redis_pid: int, hubs: int, idle: float
) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    started = [start_hub(url) for _ in range(hubs)]
    processes = [process for process, _ in started]
    ports = [port for _, port in started]
    path = "/api/hosts/host-{:02d}/metrics"
    urls = [
        f"ws://{HOST}:{ports[(index * args.per_host + k) % hubs]}" + path.format(index)
        for index in range(args.hosts)
        for k in range(args.per_host)
    ]
    # Hubs learn the hosts from Redis at start; wait until each lists them all.
    for port in ports:
        deadline = time.monotonic() + 30
        while len(_hosts(port)) < args.hosts:
            if time.monotonic() > deadline:
                raise TimeoutError(f"hub on {port} does not list {args.hosts} hosts")
            time.sleep(0.2)
    watcher = subprocess.Popen(
        [PYTHON, __file__, "--watch", *urls], stdout=subprocess.PIPE, cwd=Path(__file__).parent
    )
    assert watcher.stdout is not None
    json.loads(watcher.stdout.readline())  # all connected
    time.sleep(args.warmup)
    pids = {"redis": redis_pid, **{process.name: process.pid for process in processes}}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    ticks_before, wall_before = publishes(client), time.monotonic()
    time.sleep(args.seconds)
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    ticks = publishes(client) - ticks_before
    wall = time.monotonic() - wall_before
    watcher.send_signal(signal.SIGTERM)
    out, _ = watcher.communicate(timeout=15)
    counts = json.loads(out.decode().strip().splitlines()[-1])
    for process in processes:
        process.stop()
    used = {name: after[name] - before[name] for name in pids}
    hub_cpu = [used[process.name] for process in processes]
    return {
        "hubs": hubs,
        "clients": len(urls),
        "seconds": round(wall, 2),
        "host_ticks": ticks,
        "redis_cpu_percent": round(100 * used["redis"] / wall, 2),
        "redis_us_per_host_tick": round(1e6 * used["redis"] / ticks, 1),
        "hub_cpu_percent": [round(100 * cpu / wall, 2) for cpu in hub_cpu],
        # Net of the hub's own sampler (``idle`` percent), so this is the fleet's cost.
        "hub_us_per_host_tick": [
            round(1e6 * (cpu - idle / 100 * wall) / ticks, 1) for cpu in hub_cpu
        ],
        "messages_per_second": round(counts["messages"] / (wall + args.warmup), 1),
        "errors": counts["errors"],
    }


def _hosts(port: int) -> list[Any]:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/api/hosts", timeout=5) as response:
            hosts: list[Any] = json.load(response)["hosts"]
    except OSError:
        return []
    return hosts


def markdown(results: list[dict[str, Any]], args: argparse.Namespace, idle: float) -> str:
    one, two = results
    ratio_busiest = max(two["hub_cpu_percent"]) / one["hub_cpu_percent"][0]
    ratio_total = sum(two["hub_cpu_percent"]) / one["hub_cpu_percent"][0]
    rows = [
        "| hubs | clients | host-ticks/s | Redis CPU | Redis µs/host-tick | hub CPU (each) "
        "| hub µs/host-tick, net (each) | messages/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        rows.append(
            f"| {result['hubs']} | {result['clients']} "
            f"| {result['host_ticks'] / result['seconds']:.1f} "
            f"| {result['redis_cpu_percent']:.2f} % | {result['redis_us_per_host_tick']:.0f} "
            f"| {' / '.join(f'{c:.1f} %' for c in result['hub_cpu_percent'])} "
            f"| {' / '.join(f'{c:.0f}' for c in result['hub_us_per_host_tick'])} "
            f"| {result['messages_per_second']:.0f} |"
        )
    return "\n".join(
        [
            SECTION,
            "",
            f"{args.hosts} simulated agents (one process, full catalogue ticks of this machine, "
            f"1 s interval), {args.per_host} WebSocket clients per host split evenly over the "
            f"hubs, {args.seconds:g} s window after {args.warmup:g} s warm-up; CPU from "
            "/proc/<pid>/stat (user + system). Each hub also samples its own host: "
            f"{idle:.1f} % CPU for a plain `serve`, subtracted in the µs/host-tick column. "
            "Reproduce: `.venv/bin/python benchmarks/redis_fleet.py --write-docs`.",
            "",
            *rows,
            "",
            f"Scale-out: with two hubs the busiest hub carries {ratio_busiest:.2f}× the CPU of "
            f"one hub serving every client; both together use {ratio_total:.2f}×, since each "
            "hub receives and decodes every host's tick once and only the fan-out is divided. "
            "Adding hubs adds client capacity; the per-tick ingest is the fixed cost per hub.",
            "",
        ]
    )


def write_section(text: str) -> None:
    existing = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    head, found, rest = existing.partition(SECTION + "\n")
    tail = ""
    if found:
        # Keep whatever follows this section (the next "## " heading on).
        match = re.search(r"^## ", rest, flags=re.MULTILINE)
        tail = rest[match.start() :] if match else ""
    head = head.rstrip("\n") + "\n\n" if head.strip() else ""
    DOC.write_text(head + text + ("\n" + tail if tail else ""), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--per-host", type=int, default=2, help="clients per host")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--simulate", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--watch", nargs="+", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.simulate:
        simulate_agents(args.simulate, args.hosts)
        return
    if args.watch:
        asyncio.run(watch_all(args.watch))
        return

    redis_process, url = start_redis()
    agents = Process(
        subprocess.Popen(
            [PYTHON, __file__, "--simulate", url, "--hosts", str(args.hosts)],
            cwd=Path(__file__).parent,
        ),
        "agents",
    )
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 30
        while client.zcard("sysstream:hosts") < args.hosts:
            if time.monotonic() > deadline:
                raise TimeoutError("the simulated agents did not all publish")
            time.sleep(0.1)
        idle = baseline(args)
        results = [measure(args, url, redis_process.pid, hubs, idle) for hubs in (1, 2)]
    finally:
        agents.stop()
        redis_process.stop()
    print(json.dumps({"idle_hub_cpu_percent": round(idle, 2), "runs": results}, indent=2))
    text = markdown(results, args, idle)
    print(text)
    if args.write_docs:
        write_section(text)


if __name__ == "__main__":
    main()
