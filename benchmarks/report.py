"""Turning one run's results into the markdown that docs/benchmarks.md shows.

Owns: the results table, the ratios to the references, the target check at 10,000
clients, and the chart series. Everything here is computed from the results dict that
:mod:`run` saves, so a saved run can be re-rendered.
"""

from __future__ import annotations

from typing import Any

from chart import Series

__all__ = ["chart_series", "render_markdown"]

TARGET_N = 10_000
COLUMNS = [
    ("server", "server"),
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


# /proc counts CPU in clock ticks of 10 ms: a ratio of CPU figures resting on fewer ticks
# than this (±1 tick each) is noise, and the table shows none.
MIN_CPU_TICKS = 100


def _cpu_ticks(row: Row) -> float:
    return float(row["cpu_percent"]) / 100 * float(row["window_seconds"]) * 100


def _cpu_ratio(top: Row, bottom: Row) -> str:
    ticks = min(_cpu_ticks(top), _cpu_ticks(bottom))
    if ticks < MIN_CPU_TICKS:
        return f"- ({ticks:.0f} ticks)"
    return _ratio(top["cpu_us_per_msg"], bottom["cpu_us_per_msg"])


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
    for n in sorted({row["clients"] for row in rows}):
        product, floor, naive = (_find(rows, name, n) for name in ("sysstream", "floor", "naive"))
        if product is None or floor is None:
            continue
        body.append(
            [
                f"{n:,}",
                _cpu_ratio(product, floor),
                _cpu_ratio(naive, product) if naive else "-",
                _ratio(product["rss_kb_per_conn"], floor["rss_kb_per_conn"]),
                _ratio(product["p99_ms"], floor["p99_ms"]),
            ]
        )
    return _table(header, body)


def _targets(rows: list[Row], idle: dict[str, float] | None) -> list[str]:
    product, floor = _find(rows, "sysstream", TARGET_N), _find(rows, "floor", TARGET_N)
    naive = _find(rows, "naive", TARGET_N)
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
            "CPU ≤ 1.5x the floor",
            _ratio(product["cpu_us_per_msg"], floor["cpu_us_per_msg"]),
            product["cpu_us_per_msg"] <= 1.5 * floor["cpu_us_per_msg"],
        ),
        (
            "≤ 15 KB RSS per connection",
            f"{product['rss_kb_per_conn']:.1f} KB",
            product["rss_kb_per_conn"] <= 15,
        ),
        (
            "client p99 delay ≤ 1.5x the floor's",
            f"{product['p99_ms']:.1f} ms vs {floor['p99_ms']:.1f} ms "
            f"({_ratio(product['p99_ms'], floor['p99_ms'])})",
            product["p99_ms"] <= 1.5 * floor["p99_ms"],
        ),
    ]
    if naive is not None:
        checks.append(
            (
                "≥ 10x less CPU per message than the naive design",
                _ratio(naive["cpu_us_per_msg"], product["cpu_us_per_msg"]),
                naive["cpu_us_per_msg"] >= 10 * product["cpu_us_per_msg"],
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
    rows: list[Row] = results["rows"]
    idle = results.get("idle")
    lines = [
        f"Run of {results['date']} on {results['machine']}; command: `{results['command']}`.",
        f"Warm-up {results['warmup']:g} s, measured window {results['window']:g} s "
        "(between ticks, so each client can get exactly one message per second of window).",
        "",
        "#### Targets",
        "",
        *_targets(rows, idle),
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
        *_ratios(rows),
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
