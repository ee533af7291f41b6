"""The metric registry: every field the stream can carry, described once.

Each :class:`Metric` names a wire path, its unit, what it means and its kind. The JSON
schema endpoint, the Prometheus HELP/TYPE lines, the docs and the dashboard's labels all
read this table; nothing else restates these facts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["ALWAYS_FIELDS", "DEFAULT_FIELDS", "GROUPS", "FieldGroup", "Kind", "Metric", "group"]


class Kind(enum.StrEnum):
    GAUGE = "gauge"  # a level that goes up and down (percent used)
    COUNTER = "counter"  # a running total since boot (bytes received)
    RATE = "rate"  # a counter's change per second over the last interval
    INFO = "info"  # a text attribute (a mount's device), not a number


@dataclass(frozen=True, slots=True)
class Metric:
    """One value in a message, addressed by its wire path (``net.rx_bytes_per_s``)."""

    path: str
    unit: str
    description: str
    kind: Kind = Kind.GAUGE
    # Prometheus series name (base units); None when the value is not exported.
    prometheus: str | None = None
    # Label names of a per-item metric (per core, per interface, per mount).
    labels: tuple[str, ...] = ()
    # More labels, read from text fields of the item the path's ``*`` matched (a
    # container's name and image, next to its id).
    item_labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FieldGroup:
    """A top-level key of the message: what a client subscribes to."""

    name: str
    title: str
    description: str
    metrics: tuple[Metric, ...] = field(default_factory=tuple)
    # Sampled every N ticks: walking every process each second would cost more than it tells.
    every: int = 1
    # Kept in history (the in-memory ring and the store); top-process lists are not.
    history: bool = True
    # Sampled on every tick even with no subscriber (see ALWAYS_FIELDS).
    always: bool = True


def _rates(prefix: str, label: str | None, what: str) -> tuple[Metric, ...]:
    """Rate and counter metrics shared by the total and per-item parts of net and disk_io."""
    labels = (label,) if label else ()
    per = f" per {label}" if label else ""
    items = {
        "net": (
            ("rx_bytes", "bytes", "received", "sysstream_network_receive_bytes_total"),
            ("tx_bytes", "bytes", "transmitted", "sysstream_network_transmit_bytes_total"),
            ("rx_packets", "packets", "received", "sysstream_network_receive_packets_total"),
            ("tx_packets", "packets", "transmitted", "sysstream_network_transmit_packets_total"),
            ("rx_errors", "errors", "on receive", "sysstream_network_receive_errs_total"),
            ("tx_errors", "errors", "on transmit", "sysstream_network_transmit_errs_total"),
        ),
        "disk_io": (
            ("read_bytes", "bytes", "read", "sysstream_disk_read_bytes_total"),
            ("write_bytes", "bytes", "written", "sysstream_disk_written_bytes_total"),
            ("read_ops", "operations", "read", "sysstream_disk_reads_completed_total"),
            ("write_ops", "operations", "written", "sysstream_disk_writes_completed_total"),
        ),
    }[what]
    metrics: list[Metric] = []
    for key, unit, verb, prometheus in items:
        metrics.append(
            Metric(
                f"{prefix}.{key}_per_s",
                f"{unit}/s",
                f"{unit.capitalize()} {verb} per second{per} over the last interval.",
                Kind.RATE,
                labels=labels,
            )
        )
        metrics.append(
            Metric(
                f"{prefix}.{key}",
                unit,
                f"{unit.capitalize()} {verb}{per} since boot.",
                Kind.COUNTER,
                prometheus=prometheus if label else None,
                labels=labels,
            )
        )
    return tuple(metrics)


def _container(
    key: str,
    unit: str,
    description: str,
    kind: Kind = Kind.GAUGE,
    prometheus: str | None = None,
) -> Metric:
    labelled = {"labels": ("id",), "item_labels": ("name", "image")} if prometheus else {}
    return Metric(f"containers.*.{key}", unit, description, kind, prometheus, **labelled)


CONTAINERS = FieldGroup(
    "containers",
    "Containers",
    "Each running Docker or Podman container, keyed by its short id: figures from its"
    " cgroups, name, image, state and health from the engine (docs/containers.md).",
    (
        _container("id", "text", "The container's full 64-hex id.", Kind.INFO),
        _container("name", "text", "Name; the short id when the engine is unreachable.", Kind.INFO),
        _container("image", "text", "Image as the container was created from it.", Kind.INFO),
        _container("state", "text", "Engine state: running, paused, restarting.", Kind.INFO),
        _container(
            "health", "text", "Health check status (healthy, unhealthy, starting).", Kind.INFO
        ),
        _container(
            "restarts",
            "restarts",
            "Times the engine restarted it under its restart policy.",
            prometheus="sysstream_container_restarts",
        ),
        _container(
            "cpu_percent",
            "percent",
            "CPU used over the last interval (100 = one core).",
            prometheus="sysstream_container_cpu_usage_ratio",
        ),
        _container("cpu_limit_cores", "cores", "CPU limit (--cpus), when it has one."),
        _container(
            "cpu_limit_percent",
            "percent",
            "CPU used as percent of its CPU limit, when it has one.",
            prometheus="sysstream_container_cpu_limit_usage_ratio",
        ),
        _container(
            "cpu_seconds",
            "seconds",
            "CPU time used since it started.",
            Kind.COUNTER,
            prometheus="sysstream_container_cpu_usage_seconds_total",
        ),
        _container(
            "memory_bytes",
            "bytes",
            "Memory in use minus inactive page cache, as docker stats counts it.",
            prometheus="sysstream_container_memory_usage_bytes",
        ),
        _container(
            "memory_limit_bytes",
            "bytes",
            "Memory limit (--memory), when it has one.",
            prometheus="sysstream_container_memory_limit_bytes",
        ),
        _container(
            "memory_percent",
            "percent",
            "Memory in use as percent of its limit (of the host's memory without one).",
            prometheus="sysstream_container_memory_usage_ratio",
        ),
        _container(
            "net_rx_bytes_per_s",
            "bytes/s",
            "Bytes received per second over the last interval (loopback excluded).",
            Kind.RATE,
        ),
        _container(
            "net_tx_bytes_per_s",
            "bytes/s",
            "Bytes transmitted per second over the last interval (loopback excluded).",
            Kind.RATE,
        ),
        _container(
            "net_rx_bytes",
            "bytes",
            "Bytes received since it started; null on the host's network.",
            Kind.COUNTER,
            prometheus="sysstream_container_network_receive_bytes_total",
        ),
        _container(
            "net_tx_bytes",
            "bytes",
            "Bytes transmitted since it started; null on the host's network.",
            Kind.COUNTER,
            prometheus="sysstream_container_network_transmit_bytes_total",
        ),
        _container(
            "block_read_bytes_per_s",
            "bytes/s",
            "Bytes read from block devices per second over the last interval.",
            Kind.RATE,
        ),
        _container(
            "block_write_bytes_per_s",
            "bytes/s",
            "Bytes written to block devices per second over the last interval.",
            Kind.RATE,
        ),
        _container(
            "block_read_bytes",
            "bytes",
            "Bytes read from block devices since it started.",
            Kind.COUNTER,
            prometheus="sysstream_container_block_read_bytes_total",
        ),
        _container(
            "block_write_bytes",
            "bytes",
            "Bytes written to block devices since it started.",
            Kind.COUNTER,
            prometheus="sysstream_container_block_written_bytes_total",
        ),
        _container(
            "pids",
            "processes",
            "Processes and threads in it.",
            prometheus="sysstream_container_pids",
        ),
        _container(
            "uptime_seconds",
            "seconds",
            "Seconds since it started.",
            prometheus="sysstream_container_uptime_seconds",
        ),
    ),
)


GROUPS: dict[str, FieldGroup] = {
    g.name: g
    for g in (
        FieldGroup(
            "cpu",
            "CPU",
            "System-wide CPU busy percent over the last interval.",
            (
                Metric(
                    "cpu",
                    "percent",
                    "CPU time spent busy (not idle or iowait) over the last interval.",
                    prometheus="sysstream_cpu_usage_ratio",
                ),
            ),
        ),
        FieldGroup(
            "memory",
            "Memory",
            "Virtual memory in use, as percent of total.",
            (
                Metric(
                    "memory",
                    "percent",
                    "Memory in use (total minus available) as percent of total.",
                    prometheus="sysstream_memory_usage_ratio",
                ),
            ),
        ),
        FieldGroup(
            "memory_detail",
            "Memory detail",
            "Memory in bytes: total, used, cached, available (psutil's virtual_memory).",
            (
                Metric(
                    "memory_detail.total_bytes",
                    "bytes",
                    "Physical memory in total.",
                    prometheus="sysstream_memory_size_bytes",
                ),
                Metric(
                    "memory_detail.used_bytes",
                    "bytes",
                    "Memory in use by processes and the kernel (not cache or buffers).",
                    prometheus="sysstream_memory_used_bytes",
                ),
                Metric(
                    "memory_detail.cached_bytes",
                    "bytes",
                    "Page cache and buffers: reclaimable; null where the platform has none.",
                    prometheus="sysstream_memory_cached_bytes",
                ),
                Metric(
                    "memory_detail.available_bytes",
                    "bytes",
                    "Memory that can be given to processes without swapping.",
                    prometheus="sysstream_memory_available_bytes",
                ),
            ),
        ),
        FieldGroup(
            "disk",
            "Disk",
            "Usage of the configured filesystem (--disk-path), as percent.",
            (
                Metric(
                    "disk",
                    "percent",
                    "Space used on the configured filesystem as percent of its size.",
                    prometheus="sysstream_disk_usage_ratio",
                ),
            ),
        ),
        FieldGroup(
            "cpu_per_core",
            "CPU per core",
            "Busy percent of each logical CPU over the last interval.",
            (
                Metric(
                    "cpu_per_core.*",
                    "percent",
                    "Busy percent of one logical CPU over the last interval.",
                    prometheus="sysstream_cpu_core_usage_ratio",
                    labels=("core",),
                ),
            ),
        ),
        FieldGroup(
            "cpu_times",
            "CPU time by mode",
            "Share of CPU time spent in each mode (user, system, iowait, steal…).",
            (
                Metric(
                    "cpu_times.*",
                    "percent",
                    "Percent of all CPU time spent in this mode over the last interval.",
                    prometheus="sysstream_cpu_mode_ratio",
                    labels=("mode",),
                ),
            ),
        ),
        FieldGroup(
            "load",
            "Load average",
            "Run-queue load averages, total and divided by the number of logical CPUs.",
            tuple(
                Metric(
                    f"load.load{minutes}{suffix}",
                    "tasks",
                    f"{minutes}-minute load average{description}.",
                    prometheus=None if suffix else f"sysstream_load{minutes}",
                )
                for minutes in (1, 5, 15)
                for suffix, description in (("", ""), ("_per_core", " per logical CPU"))
            ),
        ),
        FieldGroup(
            "swap",
            "Swap",
            "Swap space in use, and pages swapped in and out.",
            (
                Metric(
                    "swap.total_bytes",
                    "bytes",
                    "Swap space in total.",
                    prometheus="sysstream_swap_size_bytes",
                ),
                Metric(
                    "swap.used_bytes",
                    "bytes",
                    "Swap space in use.",
                    prometheus="sysstream_swap_used_bytes",
                ),
                Metric("swap.percent", "percent", "Swap space in use as percent of total."),
                Metric(
                    "swap.sin_bytes_per_s",
                    "bytes/s",
                    "Bytes swapped in from disk per second.",
                    Kind.RATE,
                ),
                Metric(
                    "swap.sout_bytes_per_s",
                    "bytes/s",
                    "Bytes swapped out to disk per second.",
                    Kind.RATE,
                ),
            ),
        ),
        FieldGroup(
            "net",
            "Network",
            "Traffic rates and counters, in total (loopback excluded) and per interface.",
            _rates("net", None, "net") + _rates("net.interfaces.*", "interface", "net"),
        ),
        FieldGroup(
            "disk_io",
            "Disk I/O",
            "Read and write rates and counters, in total (whole disks) and per device.",
            _rates("disk_io", None, "disk_io") + _rates("disk_io.devices.*", "device", "disk_io"),
        ),
        FieldGroup(
            "mounts",
            "Filesystems",
            "Size and usage of each mounted real filesystem.",
            (
                Metric("mounts.*.device", "text", "Device the filesystem is on.", Kind.INFO),
                Metric("mounts.*.fstype", "text", "Filesystem type.", Kind.INFO),
                Metric(
                    "mounts.*.total_bytes",
                    "bytes",
                    "Size of the filesystem.",
                    prometheus="sysstream_filesystem_size_bytes",
                    labels=("mountpoint",),
                ),
                Metric(
                    "mounts.*.used_bytes",
                    "bytes",
                    "Space in use.",
                    prometheus="sysstream_filesystem_used_bytes",
                    labels=("mountpoint",),
                ),
                Metric(
                    "mounts.*.free_bytes",
                    "bytes",
                    "Space available to unprivileged users.",
                    prometheus="sysstream_filesystem_avail_bytes",
                    labels=("mountpoint",),
                ),
                Metric(
                    "mounts.*.percent",
                    "percent",
                    "Space in use as percent of what users can fill (as df shows).",
                    labels=("mountpoint",),
                ),
            ),
        ),
        FieldGroup(
            "temps",
            "Temperatures",
            "Hardware sensor temperatures per chip; empty where the machine has none.",
            (
                Metric(
                    "temps.*.*.celsius",
                    "celsius",
                    "Current temperature of one sensor.",
                    prometheus="sysstream_hwmon_temp_celsius",
                    labels=("chip", "sensor"),
                ),
                Metric("temps.*.*.high", "celsius", "Sensor's high threshold, if any."),
                Metric("temps.*.*.critical", "celsius", "Sensor's critical threshold, if any."),
            ),
            always=False,
        ),
        FieldGroup(
            "fans",
            "Fans",
            "Fan speeds per chip; empty where the machine has none.",
            (
                Metric(
                    "fans.*.*.rpm",
                    "rpm",
                    "Current fan speed.",
                    prometheus="sysstream_hwmon_fan_rpm",
                    labels=("chip", "sensor"),
                ),
            ),
            always=False,
        ),
        FieldGroup(
            "processes",
            "Processes",
            "Process count, and the top processes by CPU and by memory, with their command lines.",
            (
                Metric(
                    "processes.count",
                    "processes",
                    "Processes on the system.",
                    prometheus="sysstream_processes",
                ),
                Metric(
                    "processes.running",
                    "processes",
                    "Processes running or runnable.",
                    prometheus="sysstream_processes_running",
                ),
                Metric(
                    "processes.cpus",
                    "CPUs",
                    "Logical CPUs: a process's CPU percent can reach 100 times this.",
                ),
                Metric(
                    "processes.top_cpu.*.cpu_percent",
                    "percent",
                    "CPU used by one of the top processes by CPU (100 = one core).",
                ),
                Metric(
                    "processes.top_cpu.*.cmdline",
                    "text",
                    "Command line of one of the top processes (at most 256 characters).",
                    Kind.INFO,
                ),
                Metric(
                    "processes.top_memory.*.rss_bytes",
                    "bytes",
                    "Resident memory of one of the top processes by memory.",
                ),
                Metric(
                    "processes.top_memory.*.memory_percent",
                    "percent",
                    "Resident memory of one of the top processes, as percent of total memory.",
                ),
            ),
            every=5,
            history=False,
            always=False,
        ),
        FieldGroup(
            "uptime",
            "Uptime",
            "Time since the system booted.",
            (
                Metric(
                    "uptime",
                    "seconds",
                    "Seconds since boot.",
                    prometheus="sysstream_uptime_seconds",
                ),
            ),
        ),
        CONTAINERS,
    )
}

# Sampled on every tick whether or not a client asked: they feed history and /metrics, and
# cost well under a millisecond together. Sensors and the process walk only when asked.
ALWAYS_FIELDS: tuple[str, ...] = tuple(name for name, g in GROUPS.items() if g.always)

# The seed contract's message: exactly these keys plus the timestamp.
DEFAULT_FIELDS: tuple[str, ...] = ("cpu", "memory", "disk")


def group(name: str) -> FieldGroup:
    """The group called ``name``; raises ``KeyError`` naming the known groups otherwise."""
    try:
        return GROUPS[name]
    except KeyError:
        known = ", ".join(GROUPS)
        raise KeyError(f"expected one of {known}, got {name!r}") from None
