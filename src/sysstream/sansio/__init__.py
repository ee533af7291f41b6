"""The sans-I/O core: plain objects fed data and asked for output. Nothing here
imports asyncio, sockets, threads or a web framework (tests/test_layout.py checks)."""

from __future__ import annotations

from ._alerting import AlertEngine, AlertEvent, AlertState, EventKind, Window, fingerprint
from ._alertmanager import notification_text, webhook_body
from ._backoff import Backoff
from ._control import DEFAULT_VIEW, ControlError, View, parse_fields, parse_history, parse_query
from ._fanout import Offer, Outbox, OutboxState
from ._hosts import MISSED_INTERVALS, HostRecord, HostStatus
from ._messages import encode_error, encode_json, encode_sample, format_timestamp, text_frame
from ._origins import OriginPolicy, parse_origin_pattern
from ._ratelimit import ControlRateLimit
from ._rates import CounterRate, CpuUsage, RateTable, round_rate
from ._rollup import Bucket, BucketRollup, Summary, bucket_start, combine
from ._rules import (
    BUILTIN_RULES,
    HOST_OFFLINE_METRIC,
    Aggregate,
    Comparison,
    Destination,
    DestinationKind,
    Rule,
    RuleError,
    RuleSet,
    Severity,
    Threshold,
    alertable_metrics,
    parse_duration,
    parse_rule_text,
    parse_rules,
)
from ._schedule import TickSchedule
from ._session import POLICY_VIOLATION, Close, ControlSession, Reply
from ._silences import Silence, SilenceError, Silences, parse_silence
from ._wire import (
    HOSTS_KEY,
    RESERVED_HOST_ID,
    TICKS_PATTERN,
    Tick,
    WireError,
    backlog_key,
    check_host_id,
    check_redis_url,
    decode_tick,
    encode_tick,
    host_of_channel,
    redact_url,
    ticks_channel,
)

__all__ = [
    "BUILTIN_RULES",
    "DEFAULT_VIEW",
    "HOSTS_KEY",
    "HOST_OFFLINE_METRIC",
    "MISSED_INTERVALS",
    "POLICY_VIOLATION",
    "RESERVED_HOST_ID",
    "TICKS_PATTERN",
    "Aggregate",
    "AlertEngine",
    "AlertEvent",
    "AlertState",
    "Backoff",
    "Bucket",
    "BucketRollup",
    "Close",
    "Comparison",
    "ControlError",
    "ControlRateLimit",
    "ControlSession",
    "CounterRate",
    "CpuUsage",
    "Destination",
    "DestinationKind",
    "EventKind",
    "HostRecord",
    "HostStatus",
    "Offer",
    "OriginPolicy",
    "Outbox",
    "OutboxState",
    "RateTable",
    "Reply",
    "Rule",
    "RuleError",
    "RuleSet",
    "Severity",
    "Silence",
    "SilenceError",
    "Silences",
    "Summary",
    "Threshold",
    "Tick",
    "TickSchedule",
    "View",
    "Window",
    "WireError",
    "alertable_metrics",
    "backlog_key",
    "bucket_start",
    "check_host_id",
    "check_redis_url",
    "combine",
    "decode_tick",
    "encode_error",
    "encode_json",
    "encode_sample",
    "encode_tick",
    "fingerprint",
    "format_timestamp",
    "host_of_channel",
    "notification_text",
    "parse_duration",
    "parse_fields",
    "parse_history",
    "parse_origin_pattern",
    "parse_query",
    "parse_rule_text",
    "parse_rules",
    "parse_silence",
    "redact_url",
    "round_rate",
    "text_frame",
    "ticks_channel",
    "webhook_body",
]
