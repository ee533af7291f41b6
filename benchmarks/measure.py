"""One measured run: a server, N clients, a warm-up, then a measured window.

Owns: the sequence (start server, note its idle RSS, connect the fleet, warm up, measure
CPU and messages over the window, read RSS and ``/healthz``) and the figures of one row.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fleet import Fleet
from procstat import cpu_seconds, rss_bytes, snapshot
from servers import SERVERS, RunningServer

__all__ = ["Row", "measure_idle", "measure_run"]


@dataclass(slots=True)
class Row:
    server: str
    clients: int
    deflate_offered: bool
    connected: int
    connect_seconds: float
    window_seconds: float
    msgs_per_client_s: float  # mean over clients
    min_delivery: float  # worst client's messages / best client's messages
    cpu_us_per_msg: float
    cpu_percent: float  # of one core, over the window
    rss_mb: float
    rss_kb_per_conn: float  # (RSS loaded - RSS before clients) / connected
    p50_ms: float
    p99_ms: float
    client_cpu_us_per_msg: float
    lost: int
    fanout: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def measure_run(
    server_name: str,
    clients: int,
    *,
    deflate: bool,
    warmup: float,
    window: float,
    sources: Iterator[str],
    logs: Path,
    extra: list[str] | None = None,
) -> Row:
    spec = SERVERS[server_name]
    with RunningServer(spec, logs / f"{server_name}.log", extra or []) as server:
        server.wait_ready()
        time.sleep(1.0)
        rss_before = rss_bytes(server.pid)
        with Fleet(
            server.port, clients, deflate=deflate, sources=sources, log=logs / "clients.log"
        ) as fleet:
            connected, connect_seconds = fleet.connect()
            time.sleep(warmup)
            # The window runs between ticks (mid-interval to mid-interval), so it holds
            # exactly `window` ticks and the CPU read never splits one tick's fan-out.
            start = fleet.last_sample() + 0.5
            start += max(0, math.ceil(time.time() + 0.2 - start))
            end = start + window
            fleet.window(start, end)
            sleep_until(start)
            before = snapshot(server.pid)
            client_cpu = sum(cpu_seconds(pid) for pid in fleet.pids)
            sleep_until(end)
            after = snapshot(server.pid)
            client_cpu = sum(cpu_seconds(pid) for pid in fleet.pids) - client_cpu
            time.sleep(0.3)  # the last in-window tick is long delivered; stragglers count
            result = fleet.stop()
            health = server.healthz() if spec.has_healthz else None
    delivered = sum(result.counts)
    best = max(result.counts, default=0)
    cpu = after.cpu_seconds - before.cpu_seconds
    return Row(
        server=server_name,
        clients=clients,
        deflate_offered=deflate,
        connected=connected,
        connect_seconds=round(connect_seconds, 2),
        window_seconds=round(result.seconds, 2),
        msgs_per_client_s=round(delivered / max(1, clients) / result.seconds, 3),
        min_delivery=round(min(result.counts, default=0) / best, 3) if best else 0.0,
        cpu_us_per_msg=round(cpu / delivered * 1e6, 2) if delivered else float("nan"),
        cpu_percent=round(cpu / result.seconds * 100, 1),
        rss_mb=round(after.rss_bytes / 2**20, 1),
        rss_kb_per_conn=round((after.rss_bytes - rss_before) / 1024 / max(1, connected), 2),
        p50_ms=round(percentile(result.delays_ms, 0.50), 2),
        p99_ms=round(percentile(result.delays_ms, 0.99), 2),
        client_cpu_us_per_msg=round(client_cpu / delivered * 1e6, 2) if delivered else 0.0,
        lost=result.lost,
        fanout=None if health is None else {"clients": health["clients"], **health["fanout"]},
    )


def measure_idle(seconds: float, logs: Path, extra: list[str] | None = None) -> dict[str, float]:
    """sysstream with no clients: CPU as a percentage of one core, and RSS."""
    with RunningServer(SERVERS["sysstream"], logs / "sysstream.log", extra or []) as server:
        server.wait_ready()
        time.sleep(2.0)
        before = snapshot(server.pid)
        time.sleep(seconds)
        after = snapshot(server.pid)
    cpu = after.cpu_seconds - before.cpu_seconds
    return {
        "seconds": seconds,
        "cpu_percent": round(cpu / seconds * 100, 3),
        "rss_mb": round(after.rss_bytes / 2**20, 1),
    }
