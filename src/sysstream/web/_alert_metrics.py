"""Prometheus exposition of alerts: what is firing, the thresholds, and deliveries.

``sysstream_alert_firing{rule,severity,host,…}`` is 1 for each firing series (labelled
like the metric the rule watches), ``sysstream_alert_threshold{rule,severity,metric}`` is
each fixed threshold in the exported metric's units (percent rules as ratios, like the
metrics), and the notification counters name their destination.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .._registry import GROUPS
from ..alerts import AlertEvaluator

__all__ = ["AlertCollector"]

_UNITS = {m.path: m.unit for g in GROUPS.values() for m in g.metrics}


class AlertCollector(Collector):
    def __init__(self, evaluator: AlertEvaluator) -> None:
        self.evaluator = evaluator

    def collect(self) -> Iterable[Metric]:
        yield self._firing()
        yield self._thresholds()
        yield from self._deliveries()

    def _firing(self) -> Metric:
        active = [a for a in self.evaluator.active() if a["state"] == "firing"]
        extra = sorted({k for a in active for k in a["labels"]} - {"host"})
        family = GaugeMetricFamily(
            "sysstream_alert_firing",
            "1 for each alert series that is firing, by rule and severity.",
            labels=["rule", "severity", "host", *extra],
        )
        for alert in active:
            labels = alert["labels"]
            values = [alert["rule"], alert["severity"] or "", labels.get("host", "")]
            family.add_metric(values + [labels.get(k, "") for k in extra], 1.0)
        return family

    def _thresholds(self) -> Metric:
        family = GaugeMetricFamily(
            "sysstream_alert_threshold",
            "Each alert rule's fixed thresholds, in the unit of the exported metric"
            " (percent as a ratio 0-1).",
            labels=["rule", "severity", "metric"],
        )
        for rule in self.evaluator.engine.rules.rules:
            ratio = _UNITS.get(rule.metric) == "percent"
            for severity, threshold in (("warning", rule.warning), ("critical", rule.critical)):
                if threshold is None or threshold.value is None:
                    continue
                value = _as_ratio(threshold.value) if ratio else threshold.value
                family.add_metric([rule.name, severity, rule.metric], value)
        return family

    def _deliveries(self) -> Iterator[Metric]:
        stats = self.evaluator.notifier.stats
        sent = CounterMetricFamily(
            "sysstream_alert_notifications_sent",
            "Notifications delivered, by destination.",
            labels=["destination"],
        )
        failed = CounterMetricFamily(
            "sysstream_alert_notification_failures",
            "Failed delivery attempts (each one logged), by destination.",
            labels=["destination"],
        )
        dropped = CounterMetricFamily(
            "sysstream_alert_notifications_dropped",
            "Notifications not delivered: over the rate limit, queue full, or every retry failed.",
            labels=["destination", "reason"],
        )
        for name, figures in stats.items():
            sent.add_metric([name], figures.sent)
            failed.add_metric([name], figures.failures)
            dropped.add_metric([name, "rate_limit"], figures.dropped_rate_limit)
            dropped.add_metric([name, "queue_full"], figures.dropped_queue_full)
            dropped.add_metric([name, "gave_up"], figures.gave_up)
        yield sent
        yield failed
        yield dropped
        yield CounterMetricFamily(
            "sysstream_alert_samples_dropped",
            "Samples not evaluated because the evaluator's queue was full.",
            self.evaluator.dropped_samples,
        )


def _as_ratio(percent: float) -> float:
    """``percent`` / 100 as the decimal the user wrote: 99.9 → 0.999, where the binary
    division gives 0.9990000000000001. The float's shortest repr is exact in decimal, and
    moving its point two places never rounds."""
    return float(Decimal(repr(percent)).scaleb(-2))
