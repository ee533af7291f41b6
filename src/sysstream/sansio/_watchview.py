"""The terminal dashboard's view model: messages in, panels of labelled, formatted rows out.

:class:`WatchModel` is fed what the connection sees (a message, a disconnect, a refusal) and
asked for :class:`Panel` objects and a status line; it never touches a socket or a terminal,
so ``sysstream watch`` (full screen) and ``sysstream watch --once`` (plain text) show the same
thing, and both are tested with plain values. Labels and units come from the server's schema
(:class:`Schema`), so a new group renders, generically, without a change here.
"""

from __future__ import annotations

import enum
import fnmatch
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .._registry import GROUPS
from ._units import format_duration, format_value

__all__ = ["ConnectionState", "Line", "Panel", "Schema", "Table", "WatchModel"]

# Groups with a panel of their own; every other group the schema lists gets a generic one.
_SPECIAL = ("cpu", "cpu_per_core", "cpu_times", "load", "memory", "memory_detail", "swap", "net",
            "disk_io", "disk", "mounts", "processes", "uptime", "containers")  # fmt: skip
TREND_POINTS = 120
TOP_ROWS = 10
MAX_ALERTS = 50


class ConnectionState(enum.StrEnum):
    CONNECTING = "connecting"
    LIVE = "live"
    RETRYING = "disconnected"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Line:
    """One labelled value; ``percent`` draws a bar, ``trend`` a sparkline."""

    label: str
    value: str
    percent: float | None = None
    trend: tuple[float | None, ...] | None = None
    problem: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]  # right-aligned columns


@dataclass(frozen=True, slots=True)
class Panel:
    key: str
    title: str
    lines: tuple[Line, ...] = ()
    table: Table | None = None


@dataclass(frozen=True, slots=True)
class _Metric:
    pattern: str
    unit: str
    description: str


class Schema:
    """Group titles and metric units, from ``GET …/metrics/schema`` or the local registry."""

    def __init__(
        self, titles: dict[str, str], metrics: list[_Metric], interval: float | None = None
    ) -> None:
        self.titles = titles
        self.interval = interval  # the server's tick, when it said
        self._metrics = metrics
        self._units: dict[str, str] = {}

    @classmethod
    def from_registry(cls) -> Schema:
        return cls(
            {name: group.title for name, group in GROUPS.items()},
            [_Metric(m.path, m.unit, m.description) for g in GROUPS.values() for m in g.metrics],
        )

    @classmethod
    def from_json(cls, body: Any) -> Schema:
        """The server's schema; raises ``ValueError`` naming what is wrong with it."""
        groups = body.get("groups") if isinstance(body, dict) else None
        if not isinstance(groups, dict):
            raise ValueError("expected a schema with a 'groups' object")
        titles: dict[str, str] = {}
        metrics: list[_Metric] = []
        for name, group in groups.items():
            if not isinstance(group, dict):
                continue
            title = group.get("title")
            titles[name] = title if isinstance(title, str) and title else name
            for metric in group.get("metrics") or ():
                if isinstance(metric, dict) and isinstance(metric.get("path"), str):
                    unit = metric.get("unit")
                    text = metric.get("description")
                    metrics.append(
                        _Metric(
                            metric["path"],
                            unit if isinstance(unit, str) else "",
                            text if isinstance(text, str) else "",
                        )
                    )
        interval = _number(body.get("interval"))
        return cls(titles, metrics, interval if interval and interval > 0 else None)

    @property
    def fields(self) -> list[str]:
        return list(self.titles)

    def title(self, group: str) -> str:
        return self.titles.get(group, group)

    def unit(self, path: str) -> str:
        """The unit of the value at wire path ``path`` (list indexes and keys as segments)."""
        if path not in self._units:
            depth = path.count(".")
            found = next(
                (
                    m.unit
                    for m in self._metrics
                    if m.pattern.count(".") == depth and fnmatch.fnmatchcase(path, m.pattern)
                ),
                "",
            )
            if len(self._units) < 10_000:  # paths are keyed by item names a server chooses
                self._units[path] = found
        return self._units.get(path, "")

    def format(self, path: str, value: Any, *, trim: bool = False) -> str:
        return format_value(value, self.unit(path) or _unit_by_name(path), trim=trim)


def _unit_by_name(path: str) -> str:
    """A unit from the wire's naming convention, for values the schema does not describe
    (a server newer than this client)."""
    for suffix, unit in (("_bytes_per_s", "bytes/s"), ("_bytes", "bytes"), ("_percent", "percent"),
                         ("_seconds", "seconds"), ("_celsius", "celsius")):  # fmt: skip
        if path.endswith(suffix):
            return unit
    return ""


def _label(key: str) -> str:
    """A metric's last path segment as a label: ``available_bytes`` → ``available``."""
    for suffix in ("_bytes_per_s", "_per_s", "_bytes", "_percent"):
        if key.endswith(suffix) and key != suffix:
            return key.removesuffix(suffix)
    return key


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass
class WatchModel:
    """What the terminal shows, fed by the connection; ``now`` is monotonic seconds."""

    schema: Schema
    state: ConnectionState = ConnectionState.CONNECTING
    message: dict[str, Any] = field(default_factory=dict)
    last_update: float | None = None
    detail: str = ""  # why disconnected or refused
    retry_at: float | None = None
    sort: str = "cpu"  # processes by "cpu" or "memory"
    filter: str = ""
    paused: bool = False
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Each alert rule's metric (``GET /api/alerts``'s rules), for the unit of its values.
    rule_metrics: dict[str, str] = field(default_factory=dict)
    rules_asked: set[str] = field(default_factory=set)  # rules the server was asked about
    trends: dict[str, deque[float | None]] = field(default_factory=dict)
    # The server's full list for the current filter (``GET …/metrics/processes``), so a
    # filter finds processes outside the top ten; None: filter the top lists only.
    process_list: list[dict[str, Any]] | None = None
    process_matches: int | None = None
    received: int = 0

    # Fed by the connection

    def connected(self) -> None:
        self.state, self.detail, self.retry_at = ConnectionState.LIVE, "", None
        self.rules_asked.clear()  # a restarted server may have rules it did not have

    def disconnected(self, reason: str, retry_in: float, now: float) -> None:
        self.state, self.detail, self.retry_at = ConnectionState.RETRYING, reason, now + retry_in

    def refused(self, reason: str) -> None:
        self.state, self.detail, self.retry_at = ConnectionState.REFUSED, reason, None

    def receive(self, message: Any, now: float) -> bool:
        """Take one message; ``True`` when it was data (a tick or the seed's error shape)."""
        if not isinstance(message, dict):
            return False
        kind = message.get("type")
        if kind == "alerts":
            self.alerts = {}
            for alert in (message.get("active") or [])[:MAX_ALERTS]:
                if isinstance(alert, dict):
                    self.alerts[_alert_key(alert)] = alert
            return False
        if kind == "alert":  # a transition: pending, cancelled, firing, repeat, resolved
            key = _alert_key(message)
            if message.get("event") in ("resolved", "cancelled"):
                self.alerts.pop(key, None)
            elif key in self.alerts or len(self.alerts) < MAX_ALERTS:
                self.alerts[key] = message
            return False
        if kind is not None:  # "subscribed", "history": replies, not data
            return False
        # A group that failed this tick (null, named under errors) keeps its last value on
        # screen, with the error beside it: a slow process walk should not blank the table.
        self.message = {
            key: self.message[key] if value is None and self.message.get(key) is not None else value
            for key, value in message.items()
        }
        self.last_update = now
        self.received += 1
        for path in ("net.rx_bytes_per_s", "net.tx_bytes_per_s",
                     "disk_io.read_bytes_per_s", "disk_io.write_bytes_per_s"):  # fmt: skip
            group, key = path.split(".")
            value = message.get(group)
            trend = self.trends.setdefault(path, deque(maxlen=TREND_POINTS))
            trend.append(_number(value.get(key)) if isinstance(value, dict) else None)
        return True

    def take_rules(self, body: Any) -> None:
        """``GET …/api/alerts``'s answer (or ``None``): each rule's metric, so an alert's
        value and threshold are printed in that metric's unit."""
        rules = body.get("rules") if isinstance(body, dict) else None
        for rule in rules if isinstance(rules, list) else ():
            if isinstance(rule, dict):
                name, metric = rule.get("name"), rule.get("metric")
                if isinstance(name, str) and isinstance(metric, str):
                    self.rule_metrics[name] = metric

    def rules_wanted(self) -> bool:
        """Whether to ask the server for its rules: an alert names a rule whose metric is
        not known yet (the first alert, or a rule a reload added). Once per rule name, so
        a server without the route is not asked at every alert."""
        unknown = {
            rule
            for alert in self.alerts.values()
            if isinstance(rule := alert.get("rule"), str)
            and rule not in self.rule_metrics
            and rule not in self.rules_asked
        }
        self.rules_asked |= unknown
        return bool(unknown)

    # Asked by the screen

    @property
    def stale(self) -> bool:
        return self.state is not ConnectionState.LIVE and self.last_update is not None

    def status(self, now: float) -> str:
        """One line: state, sample time, and how old the values are when stale."""
        # Most important first: a narrow terminal cuts the end of the line.
        parts = [self.state.value]
        if self.state is ConnectionState.REFUSED:
            parts.append(self.detail)
        if self.paused:
            parts.append("paused")
        if self.last_update is not None and (self.stale or self.paused):
            parts.append(f"last update {format_duration(max(now - self.last_update, 0))} ago")
        if self.state is ConnectionState.RETRYING and self.retry_at is not None:
            parts.append(f"retrying in {max(self.retry_at - now, 0):.0f} s ({self.detail})")
        uptime = _number(self.message.get("uptime"))
        if uptime is not None:
            parts.append(
                f"{self.schema.title('uptime').lower()} {self.schema.format('uptime', uptime)}"
            )
        return " · ".join(parts)

    def error(self) -> str | None:
        """The seed's whole-message error text, when every group failed."""
        text = self.message.get("error")
        return text if isinstance(text, str) else None

    def panels(self) -> list[Panel]:
        panels = [
            self._cpu(),
            self._memory(),
            self._rates("net", "rx", "tx"),
            self._rates("disk_io", "read", "write"),
            self._mounts(),
            self._processes(),
            self._containers(),
        ]
        if self.alerts:
            panels.insert(0, self._alerts())
        for name in self.message:  # groups this client has no panel for, as they come
            if name not in _SPECIAL and name not in ("timestamp", "errors", "error"):
                panels.append(self._generic(name))
        return [p for p in panels if p.lines or p.table is not None]

    # Panels

    def _problem(self, group: str) -> Line | None:
        errors = self.message.get("errors")
        if isinstance(errors, dict) and isinstance(text := errors.get(group), str):
            return Line(self.schema.title(group), text, problem=True)
        return None

    def _lines(self, *groups: str) -> list[Line]:
        return [line for g in groups if (line := self._problem(g)) is not None]

    def _cpu(self) -> Panel:
        lines: list[Line] = []
        total = _number(self.message.get("cpu"))
        if "cpu" in self.message:
            lines.append(Line(self.schema.title("cpu"), self.schema.format("cpu", total), total))
        cores = self.message.get("cpu_per_core")
        if isinstance(cores, list):
            for index, value in enumerate(cores):
                percent = _number(value)
                unit_path = f"cpu_per_core.{index}"
                lines.append(Line(f"core {index}", self.schema.format(unit_path, percent), percent))
        modes = self.message.get("cpu_times")
        if isinstance(modes, dict):
            busy = [(mode, v) for mode, v in modes.items() if mode != "idle" and _number(v)]
            shown = ", ".join(
                f"{mode} {self.schema.format(f'cpu_times.{mode}', v)}" for mode, v in busy
            )
            idle = modes.get("idle")
            if idle is not None:
                shown += (
                    ", " if shown else ""
                ) + f"idle {self.schema.format('cpu_times.idle', idle)}"
            lines.append(Line(self.schema.title("cpu_times"), shown or "—"))
        load = self.message.get("load")
        if isinstance(load, dict):
            averages = " ".join(
                self.schema.format(f"load.load{m}", load.get(f"load{m}")) for m in (1, 5, 15)
            )
            per_core = " ".join(
                self.schema.format(f"load.load{m}_per_core", load.get(f"load{m}_per_core"))
                for m in (1, 5, 15)
            )
            lines.append(Line(self.schema.title("load"), averages))
            lines.append(Line("per core", per_core))
        lines += self._lines("cpu", "cpu_per_core", "cpu_times", "load")
        return Panel("cpu", self.schema.title("cpu"), tuple(lines))

    def _memory(self) -> Panel:
        lines: list[Line] = []
        if "memory" in self.message:
            percent = _number(self.message.get("memory"))
            detail = self.message.get("memory_detail")
            value = self.schema.format("memory", percent)
            if isinstance(detail, dict):
                total = detail.get("total_bytes")
                used = detail.get("used_bytes")
                if used is not None and total is not None:
                    value = (
                        f"{self.schema.format('memory_detail.used_bytes', used)} of "
                        f"{self.schema.format('memory_detail.total_bytes', total)} ({value})"
                    )
            lines.append(Line(self.schema.title("memory"), value, percent))
            if isinstance(detail, dict):
                for key, amount in detail.items():
                    if key not in ("total_bytes", "used_bytes", "percent"):
                        path = f"memory_detail.{key}"
                        lines.append(Line(_label(key), self.schema.format(path, amount)))
        swap = self.message.get("swap")
        if isinstance(swap, dict):
            total = _number(swap.get("total_bytes"))
            if not total:
                lines.append(Line(self.schema.title("swap"), "none"))
            else:
                used = self.schema.format("swap.used_bytes", swap.get("used_bytes"))
                of = self.schema.format("swap.total_bytes", total)
                percent = _number(swap.get("percent"))
                shown = f"{used} of {of} ({self.schema.format('swap.percent', percent)})"
                lines.append(Line(self.schema.title("swap"), shown, percent))
                moved = ", ".join(
                    f"{way} {self.schema.format(f'swap.{key}', swap.get(key))}"
                    for way, key in (("in", "sin_bytes_per_s"), ("out", "sout_bytes_per_s"))
                )
                lines.append(Line("swapping", moved))
        lines += self._lines("memory", "memory_detail", "swap")
        return Panel("memory", self.schema.title("memory"), tuple(lines))

    def _rates(self, group: str, first: str, second: str) -> Panel:
        value = self.message.get(group)
        lines: list[Line] = []
        if isinstance(value, dict):
            for direction in (first, second):
                key = f"{direction}_bytes_per_s"
                trend = tuple(self.trends.get(f"{group}.{key}", ()))
                shown = self.schema.format(f"{group}.{key}", value.get(key))
                lines.append(Line(direction, shown, trend=trend))
            items = value.get("interfaces" if group == "net" else "devices")
            if isinstance(items, dict):
                nested = "interfaces" if group == "net" else "devices"
                for name, item in items.items():
                    if not isinstance(item, dict):
                        continue
                    rates = [item.get(f"{d}_bytes_per_s") for d in (first, second)]
                    if not any(_number(r) for r in rates):
                        continue  # idle interfaces and devices: only the busy ones
                    shown = " ".join(
                        f"{d} {self.schema.format(f'{group}.{nested}.{name}.{d}_bytes_per_s', r)}"
                        for d, r in zip((first, second), rates, strict=True)
                    )
                    lines.append(Line(name, shown))
        lines += self._lines(group)
        return Panel(group, self.schema.title(group), tuple(lines))

    def _mounts(self) -> Panel:
        lines: list[Line] = []
        table = None
        if "disk" in self.message:
            percent = _number(self.message.get("disk"))
            lines.append(
                Line(self.schema.title("disk"), self.schema.format("disk", percent), percent)
            )
        mounts = self.message.get("mounts")
        if isinstance(mounts, dict) and mounts:
            rows = []
            for mount, item in mounts.items():
                if not isinstance(item, dict):
                    continue
                base = f"mounts.{mount}"
                rows.append(
                    (
                        mount,
                        str(item.get("fstype", "")),
                        self.schema.format(f"{base}.used_bytes", item.get("used_bytes")),
                        self.schema.format(f"{base}.total_bytes", item.get("total_bytes")),
                        self.schema.format(f"{base}.free_bytes", item.get("free_bytes")),
                        self.schema.format(f"{base}.percent", item.get("percent")),
                    )
                )
            columns = ("mount", "type", "used", "size", "free", "use")
            table = Table(columns, tuple(rows), (False, False, True, True, True, True))
        lines += self._lines("disk", "mounts")
        return Panel("mounts", self.schema.title("mounts"), tuple(lines), table)

    def processes(self) -> list[dict[str, Any]]:
        """Top processes (by CPU and by memory, merged), sorted and filtered as asked."""
        seen: dict[Any, dict[str, Any]] = {}
        if self.filter and self.process_list is not None:
            lists: list[Any] = [self.process_list]
        else:
            value = self.message.get("processes")
            if not isinstance(value, dict):
                return []
            lists = [value.get("top_cpu"), value.get("top_memory")]
        for rows_of in lists:
            for row in rows_of or ():
                if isinstance(row, dict):
                    seen.setdefault(row.get("pid"), row)
        rows = list(seen.values())
        needle = self.filter.lower()
        if needle:
            keys = ("name", "cmdline", "user", "pid")
            rows = [r for r in rows if any(needle in str(r.get(k, "")).lower() for k in keys)]
        order = "cpu_percent" if self.sort == "cpu" else "rss_bytes"
        rows.sort(key=lambda r: _number(r.get(order)) or 0.0, reverse=True)
        return rows[:TOP_ROWS]

    def _processes(self) -> Panel:
        value = self.message.get("processes")
        lines = self._lines("processes")
        if not isinstance(value, dict):
            return Panel("processes", self.schema.title("processes"), tuple(lines))
        count = format_value(value.get("count"), "")
        running = format_value(value.get("running"), "")
        order = "CPU (100 % = one core)" if self.sort == "cpu" else "memory"
        summary = f"{count}, {running} running; by {order}"
        if self.filter:
            summary += f", matching {self.filter!r}"
            if self.process_list is not None and self.process_matches is not None:
                summary += f" ({self.process_matches} found)"
        lines.insert(0, Line(self.schema.title("processes"), summary))
        rows = []
        top = "processes.top_memory.0"  # the units of a top process's figures
        for row in self.processes():
            command = row.get("cmdline") or row.get("name") or ""
            rows.append(
                (
                    str(row.get("pid", "")),
                    str(row.get("user", "")),
                    self.schema.format("processes.top_cpu.0.cpu_percent", row.get("cpu_percent")),
                    self.schema.format(f"{top}.memory_percent", row.get("memory_percent")),
                    self.schema.format(f"{top}.rss_bytes", row.get("rss_bytes")),
                    str(command),
                )
            )
        columns = ("pid", "user", "cpu", "mem", "rss", "command")
        table = Table(columns, tuple(rows), (True, False, True, True, True, False))
        return Panel("processes", self.schema.title("processes"), tuple(lines), table)

    def _containers(self) -> Panel:
        """One row per container: what ``docker stats`` shows, in the schema's units."""
        value = self.message.get("containers")
        lines = self._lines("containers")
        title = self.schema.title("containers")
        if isinstance(value, dict) and not value:
            return Panel("containers", title, (Line(title, "none running"), *lines))
        if not isinstance(value, dict):
            return Panel("containers", title, tuple(lines))
        rows = []
        for short_id, item in value.items():
            if not isinstance(item, dict):
                continue
            base = f"containers.{short_id}"

            def shown(key: str, item: dict[str, Any] = item, base: str = base) -> str:
                return self.schema.format(f"{base}.{key}", item.get(key))

            state = str(item.get("state") or "")
            if item.get("health"):
                state += f" ({item['health']})"
            rows.append(
                (
                    str(item.get("name") or short_id),
                    state,
                    shown("cpu_percent"),
                    f"{shown('memory_bytes')} {shown('memory_percent')}",
                    f"{shown('net_rx_bytes_per_s')} {shown('net_tx_bytes_per_s')}",
                    f"{shown('block_read_bytes_per_s')} {shown('block_write_bytes_per_s')}",
                )
            )
        columns = ("name", "state", "cpu", "memory", "net rx tx", "disk r w")
        table = Table(columns, tuple(rows), (False, False, True, True, True, True))
        return Panel("containers", title, tuple(lines), table)

    def _alerts(self) -> Panel:
        rows = []
        for alert in self.alerts.values():
            labels = alert.get("labels")
            pairs = labels.items() if isinstance(labels, dict) else ()
            state = alert.get("state") or alert.get("event") or ""
            rows.append(
                (
                    str(alert.get("severity") or ""),
                    str(state),
                    str(alert.get("rule") or ""),
                    ", ".join(f"{k}={v}" for k, v in pairs),
                    self._measured(alert),
                    str(alert.get("summary") or ""),
                )
            )
        columns = ("severity", "state", "alert", "on", "value", "summary")
        table = Table(columns, tuple(rows), (False, False, False, False, True, False))
        return Panel("alerts", "Active alerts", (), table)

    def _measured(self, alert: dict[str, Any]) -> str:
        """``93.1 % vs 90 %``, ``1.20 MiB/s vs 1 MiB/s``: an alert's value and threshold in
        the unit of its rule's metric, as the panels print that metric (the threshold as
        written, without trailing zeros); bare numbers for a metric outside the schema
        (``host.offline``) or before the rules are in."""
        value, threshold = alert.get("value"), alert.get("threshold")
        if value is None:
            return ""
        metric = self.rule_metrics.get(str(alert.get("rule")))

        def shown(number: Any, trim: bool = False) -> str:
            if metric is None:
                return format_value(number, "", trim=trim)
            return self.schema.format(metric, number, trim=trim)  # `*` segments match too

        return shown(value) + ("" if threshold is None else f" vs {shown(threshold, True)}")

    def _generic(self, group: str) -> Panel:
        """Any other group, from its shape and the schema's units: a scalar is a line, a list
        or mapping of objects a table, a flat mapping one line per key."""
        value = self.message.get(group)
        title = self.schema.title(group)
        lines = self._lines(group)
        if isinstance(value, list | dict) and not value:
            return Panel(group, title, (Line(title, "none"), *lines))
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            items = [(str(i), v) for i, v in enumerate(value)]
            return Panel(group, title, tuple(lines), _table(self.schema, group, items, index=False))
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            flat = all(not isinstance(x, dict | list) for v in value.values() for x in v.values())
            if flat:
                items = list(value.items())
                return Panel(
                    group, title, tuple(lines), _table(self.schema, group, items, index=True)
                )
            for name, item in value.items():  # two levels (chip → sensor): one line per leaf
                for key, leaf in item.items():
                    shown = _leaf(self.schema, f"{group}.{name}.{key}", leaf)
                    lines.append(Line(f"{name} {key}", shown))
        elif isinstance(value, dict):
            for key, leaf in value.items():
                lines.append(Line(_label(key), _leaf(self.schema, f"{group}.{key}", leaf)))
        elif value is not None and not isinstance(value, list):
            percent = _number(value) if self.schema.unit(group) == "percent" else None
            lines.append(Line(title, self.schema.format(group, value), percent))
        return Panel(group, title, tuple(lines))


def _leaf(schema: Schema, path: str, value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{_label(k)} {_leaf(schema, f'{path}.{k}', v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_leaf(schema, f"{path}.{i}", v) for i, v in enumerate(value))
    return schema.format(path, value)


def _table(schema: Schema, group: str, items: list[tuple[str, Any]], *, index: bool) -> Table:
    columns: list[str] = []
    for _, item in items:
        for key in item:
            if key not in columns:
                columns.append(key)
    rows = []
    numeric = [False] * index + [False] * len(columns)
    for name, item in items:
        cells = [name] if index else []
        for position, key in enumerate(columns):
            leaf = item.get(key)
            cells.append(_leaf(schema, f"{group}.{name}.{key}", leaf) if leaf is not None else "")
            if _number(leaf) is not None:
                numeric[position + index] = True
        rows.append(tuple(cells))
    header = ([""] if index else []) + [_label(c) for c in columns]
    return Table(tuple(header), tuple(rows), tuple(numeric))


def _alert_key(alert: dict[str, Any]) -> str:
    if isinstance(fingerprint := alert.get("fingerprint"), str):
        return fingerprint
    labels = alert.get("labels")
    shown = sorted(labels.items()) if isinstance(labels, dict) else []
    return f"{alert.get('rule') or alert.get('name')}|{shown}"
