"""Alerts: the evaluator that runs the rules off the fan-out's path, notifications, and
fleet-wide coordination of who notifies each transition."""

from __future__ import annotations

from ._coordination import RedisCoordinator
from ._evaluator import AlertEvaluator, Coordinator, HostStatuses, load_rule_file
from ._notify import DeliveryStats, Notifier, check_destinations

__all__ = [
    "AlertEvaluator",
    "Coordinator",
    "DeliveryStats",
    "HostStatuses",
    "Notifier",
    "RedisCoordinator",
    "check_destinations",
    "load_rule_file",
]
