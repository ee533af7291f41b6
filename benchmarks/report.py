"""Turning one run's results into the markdown that docs/benchmarks.md shows.

Owns: the results table, the ratios to the references, the target check at 10,000
clients, and the chart series. Everything here is computed from the results dict that
:mod:`run` saves, so a saved run can be re-rendered.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from chart import Series

__all__ = ["chart_series", "median_rows", "render_markdown"]

TARGET_N = 10_000
COLUMNS = [
    ("server", "server"),
    ("runs", "runs"),
    ("clients", "N"),
    ("deflate_offered", "deflate offered"),
    ("connected", "connected"),
    ("connect_seconds", "connect s"),
    ("msgs_per_client_s", "msg/client/s"),
    ("min_delivery", "worst client"),
    ("cpu_us_per_msg", "CPU µs/msg"),
    ("cpu_percent", "CPU % of core"),
    ("rss_mb", "RSS MB"),
    ("rss_kb_per_conn", "RSS KB/conn"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("client_cpu_us_per_msg", "client µs/msg"),
]
Row = dict[str, Any]


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _find(rows: list[Row], server: str, clients: int, deflate: bool = True) -> Row | None:
    for row in rows:
        if (row["server"], row["clients"], row["deflate_offered"]) == (server, clients, deflate):
            return row
    return None


def _key(row: Row) -> tuple[str, int, bool]:
    return row["server"], row["clients"], row["deflate_offered"]


def median_rows(rows: list[Row]) -> list[Row]:
    """One row per (server, N, deflate): the median of each figure over its runs, in the
    order the cases first ran; ``runs`` says how many runs each median rests on."""
    groups: dict[tuple[str, int, bool], list[Row]] = {}
    for row in rows:
        groups.setdefault(_key(row), []).append(row)
    merged = []
    for runs in groups.values():
        row = dict(runs[-1])
        for name, value in runs[0].items():
            if isinstance(value, float | int) and not isinstance(value, bool):
                row[name] = statistics.median(float(r[name]) for r in runs)
        row["connected"] = min(r["connected"] for r in runs)
        row["clients"] = runs[0]["clients"]
        row["runs"] = len(runs)
        merged.append(row)
    return merged


def _pairs(rows: list[Row], top: str, bottom: str, n: int) -> list[tuple[Row, Row]]:
    """(top's row, bottom's row) for each round in which both ran with N clients."""
    by_run: dict[int, dict[str, Row]] = {}
    for row in rows:
        if row["clients"] == n and row["deflate_offered"]:
            by_run.setdefault(row.get("run", 0), {})[row["server"]] = row
    return [(pair[top], pair[bottom]) for pair in by_run.values() if top in pair and bottom in pair]


def _paired(
    rows: list[Row], top: str, bottom: str, n: int, figure: Callable[[Row, Row], float | None]
) -> list[float]:
    """``figure(top, bottom)`` for each round in which both servers ran with N clients."""
    values = (figure(a, b) for a, b in _pairs(rows, top, bottom, n))
    return [value for value in values if value is not None]


def _spread(values: list[float], unit: str = "x") -> str:
    """``1.31x (1.25–1.40, 5 runs)``: the median, and the range when there are several."""
    if not values:
        return "-"
    middle = f"{statistics.median(values):.2f}{unit}"
    if len(values) == 1:
        return middle
    return f"{middle} ({min(values):.2f}–{max(values):.2f}, {len(values)} runs)"


# /proc counts CPU in clock ticks of 10 ms: a ratio of CPU figures resting on fewer ticks
# than this (±1 tick each) is noise, and the table shows none.
MIN_CPU_TICKS = 100


def _cpu_ticks(row: Row) -> float:
    return float(row["cpu_percent"]) / 100 * float(row["window_seconds"]) * 100


def _cpu_quotient(top: Row, bottom: Row) -> float | None:
    if min(_cpu_ticks(top), _cpu_ticks(bottom)) < MIN_CPU_TICKS or not bottom["cpu_us_per_msg"]:
        return None
    return float(top["cpu_us_per_msg"]) / float(bottom["cpu_us_per_msg"])


def _p99_quotient(top: Row, bottom: Row) -> float | None:
    return float(top["p99_ms"]) / float(bottom["p99_ms"]) if bottom["p99_ms"] else None


def _cpu_ratio(rows: list[Row], top: str, bottom: str, n: int) -> str:
    values = _paired(rows, top, bottom, n, _cpu_quotient)
    if values:
        return _spread(values)
    ticks = [min(_cpu_ticks(a), _cpu_ticks(b)) for a, b in _pairs(rows, top, bottom, n)]
    return f"- ({min(ticks):.0f} ticks)" if ticks else "-"


def _ratio(top: float, bottom: float) -> str:
    return f"{top / bottom:.2f}x" if bottom and top == top and bottom == bottom else "-"


def _ratios(rows: list[Row]) -> list[str]:
    header = [
        "N",
        "CPU/msg sysstream ÷ floor",
        "CPU/msg naive ÷ sysstream",
        "RSS/conn sysstream ÷ floor",
        "p99 sysstream ÷ floor",
    ]
    body = []
    medians = median_rows(rows)
    for n in sorted({row["clients"] for row in rows}):
        product, floor = _find(medians, "sysstream", n), _find(medians, "floor", n)
        if product is None or floor is None:
            continue
        body.append(
            [
                f"{n:,}",
                _cpu_ratio(rows, "sysstream", "floor", n),
                _cpu_ratio(rows, "naive", "sysstream", n),
                _ratio(product["rss_kb_per_conn"], floor["rss_kb_per_conn"]),
                _spread(_paired(rows, "sysstream", "floor", n, _p99_quotient)),
            ]
        )
    return _table(header, body)


def _targets(runs: list[Row], idle: dict[str, float] | None) -> list[str]:
    rows = median_rows(runs)
    product, floor = _find(rows, "sysstream", TARGET_N), _find(rows, "floor", TARGET_N)
    naive = _find(rows, "naive", TARGET_N)
    cpu_ratios = _paired(runs, "sysstream", "floor", TARGET_N, _cpu_quotient)
    p99_ratios = _paired(runs, "sysstream", "floor", TARGET_N, _p99_quotient)
    if product is None or floor is None:
        return ["(no 10,000-client run of both sysstream and the floor in this result)"]
    checks: list[tuple[str, str, bool]] = [
        (
            "every client gets every tick (≥ 0.99 msg/s)",
            f"{product['msgs_per_client_s']:.3f} msg/s, worst client {product['min_delivery']}",
            product["msgs_per_client_s"] >= 0.99 and product["connected"] == TARGET_N,
        ),
        (
            "CPU ≤ 25 µs per delivered message",
            f"{product['cpu_us_per_msg']:.1f} µs",
            product["cpu_us_per_msg"] <= 25,
        ),
        (
            "CPU ≤ 1.35x the floor's (median of paired runs)",
            _spread(cpu_ratios),
            bool(cpu_ratios) and statistics.median(cpu_ratios) <= 1.35,
        ),
        (
            "≤ 15 KB RSS per connection",
            f"{product['rss_kb_per_conn']:.1f} KB",
            product["rss_kb_per_conn"] <= 15,
        ),
        (
            "client p99 delay ≤ 1.3x the floor's (median of paired runs)",
            f"{product['p99_ms']:.1f} ms vs {floor['p99_ms']:.1f} ms: {_spread(p99_ratios)}",
            bool(p99_ratios) and statistics.median(p99_ratios) <= 1.3,
        ),
    ]
    if naive is not None:
        naive_ratios = _paired(runs, "naive", "sysstream", TARGET_N, _cpu_quotient)
        checks.append(
            (
                "≥ 10x less CPU per message than the naive design",
                _spread(naive_ratios),
                bool(naive_ratios) and statistics.median(naive_ratios) >= 10,
            )
        )
    big = max((r for r in rows if r["server"] == "sysstream"), key=lambda r: r["clients"])
    if big["clients"] > TARGET_N:
        checks.append(
            (
                f"{big['clients']:,} clients connect and receive",
                f"{big['connected']:,} connected in {big['connect_seconds']} s, "
                f"{big['msgs_per_client_s']:.3f} msg/s",
                big["connected"] == big["clients"] and big["msgs_per_client_s"] >= 0.99,
            )
        )
    if idle is not None:
        checks.append(
            (
                "idle ≤ 0.2% of one core",
                f"{idle['cpu_percent']:.3f}% over {idle['seconds']:.0f} s",
                idle["cpu_percent"] <= 0.2,
            )
        )
    body = [[name, value, "met" if ok else "**missed**"] for name, value, ok in checks]
    return _table(["target (10,000 clients, 1 Hz)", "measured", ""], body)


def _fanout(rows: list[Row]) -> list[str]:
    body = []
    for row in rows:
        fan = row.get("fanout")
        if row["server"] != "sysstream" or not fan:
            continue
        body.append(
            [
                f"{row['clients']:,}",
                _cell(row["deflate_offered"]),
                f"{fan['clients']:,}",
                f"{fan['last_seconds'] * 1000:.1f}",
                f"{fan['max_seconds'] * 1000:.1f}",
                f"{fan['drops']:,}",
            ]
        )
    header = ["N", "deflate offered", "clients", "last fan-out ms", "max fan-out ms", "drops"]
    return _table(header, body)


def render_markdown(results: dict[str, Any]) -> str:
    runs: list[Row] = results["rows"]
    rows = median_rows(runs)
    idle = results.get("idle")
    repeats = max((row["runs"] for row in rows), default=1)
    lines = [
        f"Run of {results['date']} on {results['machine']}; command: `{results['command']}`.",
        f"sysstream ran as `{results.get('sysstream_command', 'sysstream serve')}`.",
        f"Warm-up {results['warmup']:g} s, measured window {results['window']:g} s "
        "(between ticks, so each client can get exactly one message per second of window).",
        f"Each case ran {repeats} time(s), the servers in turn within each round; figures are "
        "medians over the runs, ratios the median (and range) of the per-round ratios.",
        "",
        "#### Targets",
        "",
        *_targets(runs, idle),
        "",
        "#### All runs",
        "",
        *_table(
            [title for _, title in COLUMNS],
            [[_cell(row[key]) for key, _ in COLUMNS] for row in rows],
        ),
        "",
        "#### Ratios (deflate offered)",
        "",
        *_ratios(runs),
        "",
        "#### sysstream's own fan-out figures (`GET /healthz` → `fanout`, after the window)",
        "",
        *_fanout(rows),
    ]
    if idle is not None:
        lines += [
            "",
            f"Idle (no clients): {idle['cpu_percent']:.3f}% of one core over "
            f"{idle['seconds']:.0f} s, RSS {idle['rss_mb']} MB.",
        ]
    return "\n".join(lines) + "\n"


def chart_series(rows: list[Row]) -> tuple[Series, Series]:
    """(CPU µs per message, RSS KB per connection) by server, deflate offered, against N."""
    cpu: Series = {}
    rss: Series = {}
    for row in sorted(rows, key=lambda r: r["clients"]):
        if not row["deflate_offered"] or row["connected"] == 0:
            continue
        cpu.setdefault(row["server"], []).append((row["clients"], row["cpu_us_per_msg"]))
        rss.setdefault(row["server"], []).append((row["clients"], row["rss_kb_per_conn"]))
    return cpu, rss
