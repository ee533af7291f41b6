"""Writes docs/metrics.md from the metric registry (tests/test_docs.py keeps it current).

Usage: .venv/bin/python scripts/metrics_doc.py > docs/metrics.md
"""

from __future__ import annotations

from sysstream._registry import GROUPS


def render() -> str:
    lines = [
        "# Metrics catalogue",
        "",
        "Generated from `src/sysstream/_registry.py` by `scripts/metrics_doc.py`; do not edit.",
        "Subscribe with `?fields=` or a `subscribe` message (docs/protocol.md). Paths use `*`",
        "for per-item keys (interfaces, devices, mountpoints, cores, sensors, containers).",
        "Percentages are exported to Prometheus as ratios (0-1).",
        "",
    ]
    for group in GROUPS.values():
        cadence = "every tick" if group.every == 1 else f"every {group.every} ticks"
        notes = [cadence]
        notes.append("always sampled" if group.always else "sampled while subscribed")
        if not group.history:
            notes.append("not kept in history")
        lines += [
            f"## `{group.name}`: {group.title}",
            "",
            f"{group.description} ({'; '.join(notes)})",
            "",
            "| path | unit | kind | Prometheus | description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for metric in group.metrics:
            prometheus = f"`{metric.prometheus}`" if metric.prometheus else ""
            if metric.labels and prometheus:
                prometheus += "{" + ",".join(metric.labels + metric.item_labels) + "}"
            lines.append(
                f"| `{metric.path}` | {metric.unit} | {metric.kind.value} | {prometheus} "
                f"| {metric.description} |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
