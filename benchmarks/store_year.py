"""A simulated year of 1-second samples through the history store: ingest, query, file size.

    .venv/bin/python benchmarks/store_year.py            # a year, the full catalogue
    .venv/bin/python benchmarks/store_year.py --days 7   # a quick look
    .venv/bin/python benchmarks/store_year.py --fields cpu,memory,disk  # the default view

The store runs its real code path (record → flush → roll-ups → prune) on a simulated clock:
one sample per simulated second, a flush per simulated hour (a flush per 5 s in a real
server writes the same rows in smaller transactions), pruning every simulated hour. The
samples are this machine's real catalogue (every group kept in history), with numeric
leaves varied per tick so averages, minima and maxima are real work. Results go to stdout
(markdown, for docs/benchmarks.md) and benchmarks/results/store_year.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sysstream._registry import ALWAYS_FIELDS, GROUPS
from sysstream._sample import Sample
from sysstream.sampling._collectors import build_collectors
from sysstream.sampling._source import LocalSource
from sysstream.store._store import FILE_NAME, HistoryStore

DAY = 86400
RESULTS = Path(__file__).parent / "results" / "store_year.json"


async def real_sample(fields: list[str] | None) -> dict[str, Any]:
    """One sample of ``fields`` (default: every always-sampled group kept in history)."""
    kept = [name for name in ALWAYS_FIELDS if GROUPS[name].history]
    groups = frozenset(fields or kept)
    source = LocalSource(build_collectors(disk_path="/"), interval=0.2)
    try:
        for _ in range(2):  # the second tick has rates
            sample = await source.next_sample(groups)
    finally:
        source.close()
    return sample.values


def varied(value: Any, rng: random.Random) -> Any:
    """``value`` with every number scaled by a random factor, same shape."""
    if isinstance(value, dict):
        return {key: varied(item, rng) for key, item in value.items()}
    if isinstance(value, list):
        return [varied(item, rng) for item in value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return round(value * rng.uniform(0.5, 1.5) + rng.uniform(0, 10), 1)


def run(days: float, directory: Path, fields: list[str] | None) -> dict[str, Any]:
    template = asyncio.run(real_sample(fields))
    rng = random.Random(8)
    # A pool of distinct values, cycled: generating 31 M nested values would time the
    # generator, not the store.
    pool = [varied(template, rng) for _ in range(97)]
    seconds = int(days * DAY)
    end = float(int(time.time()) // 900 * 900)
    start = end - seconds
    now = [start]
    store = HistoryStore(
        directory, interval=1.0, flush_interval=3600, prune_interval=3600, clock=lambda: now[0]
    )
    store.open()
    flushes: list[float] = []
    began = time.perf_counter()
    for hour in range(0, seconds, 3600):
        for i in range(hour, min(hour + 3600, seconds)):
            store.record(Sample(i, start + i, pool[i % len(pool)]))
        now[0] = start + min(hour + 3600, seconds)
        flushed = time.perf_counter()
        store.flush()
        flushes.append(time.perf_counter() - flushed)
    store.close()
    ingest = time.perf_counter() - began

    store = HistoryStore(directory, interval=1.0, clock=lambda: now[0])
    opened = time.perf_counter()
    store.open()
    open_seconds = time.perf_counter() - opened
    everything = list(template)
    cases = {
        "last hour, cpu (raw)": (end - 3600, ["cpu"], None),
        "7 days, cpu (1m)": (end - 7 * DAY, ["cpu"], None),
        "7 days, cpu, step 600": (end - 7 * DAY, ["cpu"], 600.0),
        "7 days, every group (1m)": (end - 7 * DAY, everything, None),
        "90 days, every group (15m)": (end - 90 * DAY, everything, None),
    }
    queries = {}
    for name, (since, fields, step) in cases.items():
        timings = []
        for _ in range(5):
            t = time.perf_counter()
            result = store.query(since, end, fields, step)
            timings.append(time.perf_counter() - t)
        body = len(json.dumps(result))
        queries[name] = {
            "median_ms": round(statistics.median(timings) * 1000, 1),
            "points": len(result["timestamps"]),
            "body_bytes": body,
        }
    store.close()
    files = {p.name: p.stat().st_size for p in directory.iterdir()}
    return {
        "days": days,
        "samples": seconds,
        "groups": sorted(template),
        "sample_json_bytes": len(json.dumps(template, separators=(",", ":"))),
        "ingest_seconds": round(ingest, 1),
        "ingest_samples_per_s": round(seconds / ingest),
        "flush_ms_per_hour_median": round(statistics.median(flushes) * 1000, 1),
        "open_seconds": round(open_seconds, 3),
        "queries": queries,
        "file_bytes": files.get(FILE_NAME, 0),
        "all_files_bytes": sum(files.values()),
        "cpu_count": os.cpu_count(),
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"{result['days']:g} simulated days of 1 s samples ({result['samples']:,} samples of "
        f"{len(result['groups'])} groups, {result['sample_json_bytes']:,} bytes of JSON each):",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| ingest | {result['ingest_samples_per_s']:,} samples/s "
        f"({result['ingest_seconds']:g} s in all) |",
        f"| one flush of an hour of samples | {result['flush_ms_per_hour_median']:g} ms |",
        f"| open (quick_check, rebuild open buckets) | {result['open_seconds'] * 1000:.0f} ms |",
        f"| file size at the end | {result['file_bytes'] / 1e6:.1f} MB |",
    ]
    for name, query in result["queries"].items():
        lines.append(
            f"| query: {name} | {query['median_ms']:g} ms, {query['points']:,} points, "
            f"{query['body_bytes'] / 1e3:,.0f} KB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=float, default=365, help="simulated days (365)")
    parser.add_argument("--fields", help="comma-separated groups (default: all kept)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args()
    fields = args.fields.split(",") if args.fields else None
    with tempfile.TemporaryDirectory(prefix="sysstream-store-") as directory:
        result = run(args.days, Path(directory), fields)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
