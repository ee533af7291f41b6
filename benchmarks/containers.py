"""What the ``containers`` group costs per tick: with no container, and with 50 running.

    flock /tmp/bench.lock .venv/bin/python benchmarks/containers.py            # 50 containers
    flock /tmp/bench.lock .venv/bin/python benchmarks/containers.py --containers 10 --runs 3

Starts its own dockerd (as the tests do: tests/docker_daemon.py, root needed), then, for
each count of running containers (0, then N), makes a fresh collector the way the server
does (engine watcher included) and times ``collect()`` on the process CPU clock (every
thread: the sampling read and the watcher) over ``--ticks`` ticks, ``--runs`` times. The
figure is the median per-tick CPU of each run; the table gives the median and range of the
runs. Results go to stdout (markdown, for docs/benchmarks.md) and
benchmarks/results/containers.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.docker_daemon import IMAGE, DockerDaemon  # noqa: E402

from sysstream._sample import Partial  # noqa: E402
from sysstream.sampling._containers import ContainersCollector  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "containers.json"


def per_tick_cpu(host: str, ticks: int, expect: int) -> list[float]:
    """CPU seconds of each ``collect()`` after a warm-up, on the process clock."""
    collector = ContainersCollector(docker_host=host)
    try:
        deadline = time.monotonic() + 30
        while True:  # warm up: cgroups found, names known, limits read
            value = collector.collect(time.monotonic())
            entries = value.value if isinstance(value, Partial) else value
            named = [e for e in entries.values() if e["image"] == IMAGE]
            if len(entries) == expect and len(named) == expect:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {expect} named containers, got {len(named)}")
            time.sleep(0.1)
        costs = []
        for _ in range(ticks):
            start = time.process_time()
            collector.collect(time.monotonic())
            costs.append(time.process_time() - start)
            time.sleep(0.02)  # ticks apart, as in a server (not back to back in cache)
        return costs
    finally:
        collector.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    daemon = DockerDaemon()
    daemon.start()
    results: dict[str, Any] = {"ticks": args.ticks, "runs": args.runs, "counts": {}}
    try:
        for count in (0, args.containers):
            for index in range(count):
                daemon.run(
                    "run", "-d", "--network", "none", "--memory", "32m", "--cpus", "0.1",
                    "--name", f"bench{index}", IMAGE, "sleep", "3600",
                )  # fmt: skip
            medians = []
            for _ in range(args.runs):
                costs = per_tick_cpu(daemon.host, args.ticks, count)
                medians.append(statistics.median(costs))
            results["counts"][count] = medians
    finally:
        daemon.stop()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print("| running containers | CPU per tick, median of runs | range over runs |")
    print("| --- | --- | --- |")
    for count, medians in results["counts"].items():
        ms = [m * 1000 for m in medians]
        print(f"| {count} | {statistics.median(ms):.3f} ms | {min(ms):.3f}–{max(ms):.3f} ms |")


if __name__ == "__main__":
    main()
