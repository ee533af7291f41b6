"""Alert evaluation cost: the default rules on one host against the tick's own CPU, and a
fleet hub's 1,000 hosts × 10 rules per second of ticks.

Usage (from the repository root)::

    flock /tmp/bench.lock .venv/bin/python benchmarks/alerts.py [--runs 5]

Prints a markdown table (median and range of ``--runs`` runs); docs/benchmarks.md keeps the
last one. Everything runs in this process, measured with ``time.process_time`` (CPU, not
wall clock, so other processes on the machine count less).

1. One host: a real ``LocalSource`` + ``MetricsHub`` (the server's sampler and fan-out,
   no clients) ticks ``TICKS`` times per run; the median CPU per tick is the baseline. The
   samples it made are then fed through the real ``AlertEvaluator`` (recorder → queue →
   engine, the built-in rules, windows filled first), 2,000 per run, and its CPU per
   sample is compared with it.
2. A hub: 1,000 synthetic hosts shaped like that real sample (values varied per host),
   10 rules (the 6 built-ins that apply to a host's samples plus 4 more), windows filled
   with 15 minutes of ticks first; then ``SECONDS`` seconds of ticks (1,000 samples each)
   go through the real evaluator, and the CPU per second of ticks is reported. Windowed
   rules decide when a bucket opens, so some seconds cost more than others: ``SECONDS``
   spans a whole number of every rule's buckets. The same 1,000 sample objects are
   evaluated every second; ``--fresh`` decodes each second's samples from JSON instead
   (untimed, and kept until the next second's are in), as a hub decodes every host's
   tick: closer to a hub, and dearer (new objects every second).
3. The floor, in the same run: after each run of the engine, the same seconds of the
   same hosts' samples through ``alerts_floor.observe``, the ten rules' arithmetic
   written out by hand with nothing in between (no state machine, no events): the least
   a Python evaluator of these rules spends. The engine's CPU is reported as a multiple
   of it, run by run.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import orjson  # noqa: E402

from alerts_floor import RULES as FLOOR_RULES  # noqa: E402
from alerts_floor import FloorHost  # noqa: E402
from alerts_floor import observe as floor_observe  # noqa: E402
from sysstream._registry import ALWAYS_FIELDS  # noqa: E402
from sysstream._sample import Sample  # noqa: E402
from sysstream.alerts import AlertEvaluator  # noqa: E402
from sysstream.sampling import LocalSource, build_collectors  # noqa: E402
from sysstream.sansio import RuleSet, parse_rules  # noqa: E402
from sysstream.stream import MetricsHub  # noqa: E402

TICKS = 100
TICK_INTERVAL = 0.05  # the sampler's CPU per tick does not depend on the interval
HOSTS = 1000
SECONDS = 30  # whole buckets of every rule here (1 s, 5 s, 15 s): rules decide per bucket
WARM_SECONDS = 900  # the longest window (15 min) is trusted from 90 % full

EXTRA_RULES = {
    "cpu_peak": {"metric": "cpu", "aggregate": "max", "window": "1m", "warning": 99},
    "memory_now": {"metric": "memory", "aggregate": "last", "warning": 97, "for": "2m"},
    "rx_quiet": {
        "metric": "net.rx_bytes_per_s", "aggregate": "avg", "window": "15m", "op": "<",
        "warning": 1,
    },
    "writes_heavy": {
        "metric": "disk_io.write_bytes_per_s", "aggregate": "avg", "window": "5m",
        "warning": 5e8,
    },
}  # fmt: skip


async def sample_ticks() -> tuple[float, list[Sample]]:
    """CPU seconds per tick of the real sampler and hub, and the samples it made."""
    source = LocalSource(build_collectors(disk_path="/"), interval=TICK_INTERVAL)
    samples: list[Sample] = []

    class Keep:
        def record(self, sample: Sample) -> None:
            samples.append(sample)

    hub = MetricsHub(source, always=ALWAYS_FIELDS, recorders=[Keep()])
    await hub.start()
    await hub.wait_for_tick(5)  # rates need a previous tick; start-up is not the steady state
    first = len(samples)
    started = time.process_time()
    await hub.wait_for_tick(samples[-1].tick + TICKS)
    cpu = time.process_time() - started
    ticks = len(samples) - first
    await hub.stop()
    return cpu / ticks, samples[first:]


def restamped(samples: list[Sample], start: float, count: int) -> list[Sample]:
    """``count`` samples cycling through ``samples``, one second apart from ``start``."""
    return [Sample(n, start + n, samples[n % len(samples)].values) for n in range(count)]


async def evaluate(
    evaluator: AlertEvaluator, feed: list[tuple[str, Sample]], recorders: dict[str, Any]
) -> float:
    """CPU seconds to push ``feed`` through the evaluator (recorder, queue, engine);
    ``recorders`` keeps one recorder per host across calls, as a hub does."""
    started = time.process_time()
    for host, sample in feed:
        recorder = recorders.get(host)
        if recorder is None:
            recorder = recorders[host] = evaluator.recorder(host)
        recorder.record(sample)
        if len(feed) > 2000 and sample.tick % 500 == 0:
            await evaluator.wait_processed()  # keep the queue under its bound
    await evaluator.wait_processed()
    return time.process_time() - started


async def one_host(tick_cpu: float, samples: list[Sample], runs: int) -> list[float]:
    """The evaluator's CPU per sample over ``runs`` batches, as a share of ``tick_cpu``."""
    evaluator = AlertEvaluator(parse_rules({}))
    await evaluator.start()
    shares = []
    try:
        recorders: dict[str, Any] = {}
        warm = restamped(samples, 1e9, WARM_SECONDS)
        await evaluate(evaluator, [("local", s) for s in warm], recorders)
        count = 2000
        for run in range(runs):
            batch = restamped(samples, 1e9 + WARM_SECONDS + run * count, count)
            cpu = await evaluate(evaluator, [("local", s) for s in batch], recorders)
            shares.append(cpu / count / tick_cpu)
    finally:
        await evaluator.stop()
    return shares


def host_values(template: dict[str, Any], host: int) -> dict[str, Any]:
    values = copy.deepcopy(template)
    values["cpu"] = float(host % 100)
    values["memory"] = float(30 + host % 60)
    for mount in values.get("mounts", {}).values():
        mount["percent"] = float(40 + host % 50)
    return values


class Fleet:
    """The hub's 1,000 hosts, each shaped like the real sample: one second of their
    samples at a time, the same objects every second or (``fresh``) decoded anew."""

    def __init__(self, samples: list[Sample], fresh: bool) -> None:
        self.per_host = [host_values(samples[-1].values, n) for n in range(HOSTS)]
        self.encoded = [orjson.dumps(values) for values in self.per_host]
        self.fresh = fresh

    def second(self, at: float) -> list[tuple[str, Sample]]:
        """Every host's sample of the second starting at ``at`` (hosts spread over it)."""
        return [
            (
                f"h{n}",
                Sample(int(at), at + n / HOSTS, orjson.loads(data) if self.fresh else values),
            )
            for n, (data, values) in enumerate(zip(self.encoded, self.per_host, strict=True))
        ]


def check_floor_rules(rules: RuleSet) -> None:
    """The floor implements exactly these rules (metric, aggregate, window, op, warning)."""
    ours = {
        (
            r.name, r.metric, r.aggregate.value, r.window, r.op.value,
            None if r.warning is None else r.warning.value,
        )
        for r in rules.rules
        if r.metric != "host.offline"
    }  # fmt: skip
    assert ours == FLOOR_RULES, ours ^ FLOOR_RULES


class FloorFleet:
    """The floor's state for every host, fed the same seconds as the engine."""

    def __init__(self) -> None:
        self.hosts = {f"h{n}": FloorHost() for n in range(HOSTS)}

    def evaluate(self, feed: list[tuple[str, Sample]]) -> float:
        """CPU seconds to push ``feed`` through the floor."""
        hosts = self.hosts
        started = time.process_time()
        for host, sample in feed:
            floor_observe(hosts[host], sample.timestamp, sample.values)
        return time.process_time() - started


async def fleet(hosts: Fleet, runs: int) -> tuple[list[float], list[float], int]:
    """CPU per second of ticks of 1,000 hosts × 10 rules through the engine and through
    the floor, for ``runs`` runs of ``SECONDS`` seconds each (the engine's, then the
    floor's on the same seconds, run by run), after one warm-up that fills every window;
    and the engine's series count."""
    rules = parse_rules({"rules": EXTRA_RULES})
    assert len([r for r in rules.rules if r.metric != "host.offline"]) == 10, rules.rules
    check_floor_rules(rules)
    second = hosts.second
    bare = FloorFleet()
    evaluator = AlertEvaluator(rules)
    await evaluator.start()
    engine_cpus, floor_cpus = [], []
    try:
        recorders: dict[str, Any] = {}
        # Each second's samples are held until the next second's are in, as a hub holds
        # each host's latest sample: the previous ones are freed at `held = feed`,
        # untimed, not in the evaluator (it drops its references first).
        for offset in range(WARM_SECONDS):
            feed = second(1e9 + offset)
            await evaluate(evaluator, feed, recorders)
            bare.evaluate(feed)
            held = feed
        clock = 1e9 + WARM_SECONDS
        for _ in range(runs):
            engine_cpu = floor_cpu = 0.0
            for offset in range(SECONDS):
                feed = second(clock + offset)
                engine_cpu += await evaluate(evaluator, feed, recorders)
                held = feed
            for offset in range(SECONDS):
                feed = second(clock + offset)
                floor_cpu += bare.evaluate(feed)
                held = feed  # noqa: F841  (kept for the reference it holds)
            engine_cpus.append(engine_cpu / SECONDS)
            floor_cpus.append(floor_cpu / SECONDS)
            clock += SECONDS
        series = evaluator.engine.series_count()
    finally:
        await evaluator.stop()
    return engine_cpus, floor_cpus, series


def summary(values: list[float], scale: float, digits: int) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid * scale:.{digits}f} ({low * scale:.{digits}f}–{high * scale:.{digits}f})"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--fresh", action="store_true", help="decode each second's samples anew, as a hub does"
    )
    args = parser.parse_args()
    tick_cpus = []
    for _ in range(args.runs):
        tick_cpu, samples = await sample_ticks()
        tick_cpus.append(tick_cpu)
    ratios = await one_host(statistics.median(tick_cpus), samples, args.runs)
    hosts = Fleet(samples, args.fresh)
    fleet_cpus, floor_cpus, series = await fleet(hosts, args.runs)
    over_floor = [ours / bare for ours, bare in zip(fleet_cpus, floor_cpus, strict=True)]
    print(
        f"ticks {tick_cpus}, shares {ratios}, fleet {fleet_cpus}, floor {floor_cpus}",
        file=sys.stderr,
    )
    print(f"| figure (median and range of {args.runs} runs) | measured | target |")
    print("|---|---|---|")
    print(
        f"| the sampler's and hub's CPU per tick (one host) | {summary(tick_cpus, 1e3, 3)} ms | |"
    )
    print(f"| default rules' CPU, share of the tick's | {summary(ratios, 100, 2)} % | < 2 % |")
    print(
        f"| 1,000 hosts × 10 rules ({series:,} series), CPU per second of ticks"
        f"{', each second decoded anew' if args.fresh else ''}"
        f" | {summary(fleet_cpus, 1e3, 2)} ms | < 10 ms |"
    )
    print(f"| the floor, the same seconds | {summary(floor_cpus, 1e3, 2)} ms | |")
    print(f"| 1,000 hosts: the engine ÷ the floor, run by run | {summary(over_floor, 1, 2)}x | |")


if __name__ == "__main__":
    asyncio.run(main())
