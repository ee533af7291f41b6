"""Prometheus exposition of what a fleet hub turned away: the same counters as ``/healthz``.

``sysstream_fleet_dropped_messages_total{reason}`` counts messages dropped by the check they
failed (docs/fleet.md, Trust) or ``max_hosts`` (a host one past ``--max-hosts``); every
reason is exported from zero, so that ``rate()`` sees the first drop.
``sysstream_fleet_unlogged_warnings_total`` counts the warnings the log throttle held back,
and ``sysstream_fleet_hosts`` the hosts the hub serves.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..fleet import Fleet

__all__ = ["FleetCollector"]


class FleetCollector(Collector):
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def collect(self) -> Iterable[Metric]:
        fleet = self.fleet
        dropped = CounterMetricFamily(
            "sysstream_fleet_dropped_messages",
            "Fleet messages dropped, by reason: the wire check they failed (size, json, "
            "version, host, interval, tick, timestamp, values, errors) or max_hosts (their "
            "host would be one past --max-hosts).",
            labels=["reason"],
        )
        for reason, count in fleet.dropped.items():
            dropped.add_metric([reason], count)
        yield dropped
        yield CounterMetricFamily(
            "sysstream_fleet_unlogged_warnings",
            "Fleet warnings (dropped messages, hosts past --max-hosts) not logged: the log "
            "takes one a minute, all hosts and channels together.",
            value=fleet.unlogged,
        )
        yield GaugeMetricFamily(
            "sysstream_fleet_hosts",
            "Hosts this hub serves (at most --max-hosts).",
            value=len(fleet.hosts),
        )
