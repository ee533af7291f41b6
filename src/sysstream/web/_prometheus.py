"""Prometheus exposition of the latest sample and the hub's own figures.

Names, HELP text and types come from the registry; percentages are exported as ratios
(0–1), as the Prometheus naming guide asks for base units. A scrape reads the hub's latest
sample and never triggers psutil work.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .._registry import GROUPS, Kind
from .._registry import Metric as RegistryMetric
from ..stream import MetricsHub

__all__ = ["CONTENT_TYPE", "HubCollector", "exposition", "walk"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def walk(
    values: Any, path: str, item_labels: tuple[str, ...] = ()
) -> Iterator[tuple[list[str], float]]:
    """Numeric leaves of ``values`` at ``path``, with one label value per ``*``.

    ``*`` matches each key of an object, or each item of a list, labelled by the item's
    ``label`` field when it has one (sensors) and by its position otherwise (cores). The
    text fields ``item_labels`` of an object's matched item follow its key (a container's
    name and image after its id).
    """
    yield from _walk(values, path.split("."), [], item_labels)


def _walk(
    value: Any, parts: list[str], labels: list[str], extra: tuple[str, ...]
) -> Iterator[tuple[list[str], float]]:
    if not parts:
        if isinstance(value, int | float) and not isinstance(value, bool):
            yield labels, float(value)
        return
    head, rest = parts[0], parts[1:]
    if head != "*":
        if isinstance(value, dict) and head in value:
            yield from _walk(value[head], rest, labels, extra)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            more = [str(item.get(name) or "") for name in extra] if isinstance(item, dict) else []
            yield from _walk(item, rest, [*labels, str(key), *more], extra)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            label = item.get("label", index) if isinstance(item, dict) else index
            yield from _walk(item, rest, [*labels, str(label)], extra)


class HubCollector(Collector):
    """A prometheus_client collector over one hub."""

    def __init__(self, hub: MetricsHub) -> None:
        self.hub = hub

    def collect(self) -> Iterable[Metric]:
        sample = self.hub.latest
        if sample is not None:
            for group in GROUPS.values():
                if group.name not in sample.values:
                    continue
                for metric in group.metrics:
                    if metric.prometheus is not None:
                        yield _family(metric, sample.values)
        yield from self._own_figures()

    def _own_figures(self) -> Iterator[Metric]:
        stats = self.hub.stats
        yield GaugeMetricFamily(
            "sysstream_clients", "WebSocket clients connected to the stream.", self.hub.clients
        )
        yield CounterMetricFamily("sysstream_ticks", "Samples published.", stats.ticks)
        yield CounterMetricFamily(
            "sysstream_messages_sent", "Messages handed to clients.", stats.messages
        )
        yield CounterMetricFamily(
            "sysstream_dropped_clients",
            "Stream clients cut for stalling (not draining, or a keepalive ping unanswered).",
            stats.drops,
        )
        yield CounterMetricFamily(
            "sysstream_source_errors", "Ticks the sample source failed.", stats.source_errors
        )
        yield GaugeMetricFamily(
            "sysstream_fanout_seconds",
            "Seconds from the last sample being ready to its last client write.",
            stats.last_fanout_seconds,
        )
        yield GaugeMetricFamily(
            "sysstream_fanout_max_seconds",
            "Longest fan-out since start, in seconds.",
            stats.max_fanout_seconds,
        )


def _family(metric: RegistryMetric, values: dict[str, Any]) -> Metric:
    assert metric.prometheus is not None
    ratio = metric.unit == "percent"
    help_text = metric.description + (" As a ratio (0-1)." if ratio else f" Unit: {metric.unit}.")
    kind = CounterMetricFamily if metric.kind is Kind.COUNTER else GaugeMetricFamily
    family = kind(metric.prometheus, help_text, labels=[*metric.labels, *metric.item_labels])
    for labels, value in walk(values, metric.path, metric.item_labels):
        family.add_metric(labels, round(value / 100, 6) if ratio else value)
    return family


def exposition(hub: MetricsHub, extra: Iterable[Collector] = ()) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(hub))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)
