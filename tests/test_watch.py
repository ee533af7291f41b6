"""The terminal client's sans-I/O parts: endpoints, refusals, units, text safety, the view."""

from __future__ import annotations

import random

import pytest

from sysstream.sansio import (
    Backoff,
    ConnectionState,
    EndpointError,
    Schema,
    WatchModel,
    bar,
    format_value,
    parse_endpoint,
    printable,
    printable_tree,
    refusal_for_close,
    refusal_for_status,
    sparkline,
)


def test_backoff_doubles_to_a_ceiling_and_resets() -> None:
    backoff = Backoff(initial=0.5, maximum=4)
    delays = [backoff.next_delay(jitter=lambda: 1.0) for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay(jitter=lambda: 0.0) == 0.25  # jitter takes up to half off


def test_backoff_holds_tries_back_after_a_failure_until_reset() -> None:
    backoff = Backoff(initial=2.0)
    assert backoff.ready(0.0)
    backoff.failed(100.0)  # waits 1-2 s (2 s, jitter taking up to half off)
    assert (backoff.ready(100.99), backoff.ready(102.0), backoff.attempt) == (False, True, 1)
    backoff.failed(102.0)  # then 2-4 s
    assert (backoff.ready(103.99), backoff.ready(106.0)) == (False, True)
    backoff.reset()
    assert (backoff.ready(0.0), backoff.attempt) == (True, 0)


def test_backoff_jitters_without_touching_the_global_random_generator() -> None:
    random.seed(7)
    expected = random.random()
    random.seed(7)
    delays = {Backoff(initial=1.0).next_delay() for _ in range(20)}
    assert random.random() == expected  # an embedding app's seeded sequence goes on as is
    assert len(delays) > 1 and all(0.5 <= delay <= 1.0 for delay in delays)


@pytest.mark.parametrize(
    ("text", "host", "stream", "schema", "hosts"),
    [
        ("web1:9000", None, "ws://web1:9000/api/system/metrics",
         "http://web1:9000/api/system/metrics/schema", "http://web1:9000/api/hosts"),
        ("web1", None, "ws://web1:54112/api/system/metrics",
         "http://web1:54112/api/system/metrics/schema", "http://web1:54112/api/hosts"),
        ("[::1]:5", None, "ws://[::1]:5/api/system/metrics",
         "http://[::1]:5/api/system/metrics/schema", "http://[::1]:5/api/hosts"),
        ("http://hub:54112/", None, "ws://hub:54112/api/system/metrics",
         "http://hub:54112/api/system/metrics/schema", "http://hub:54112/api/hosts"),
        ("https://metrics.example", None, "wss://metrics.example/api/system/metrics",
         "https://metrics.example/api/system/metrics/schema", "https://metrics.example/api/hosts"),
        ("ws://h:1/api/hosts/web1/metrics", None, "ws://h:1/api/hosts/web1/metrics",
         "http://h:1/api/system/metrics/schema", "http://h:1/api/hosts"),
        ("http://hub:1", "db-1", "ws://hub:1/api/hosts/db-1/metrics",
         "http://hub:1/api/system/metrics/schema", "http://hub:1/api/hosts"),
        ("wss://h/sys/metrics", None, "wss://h/sys/metrics", "https://h/sys/metrics/schema",
         "https://h/api/hosts"),
    ],
)  # fmt: skip
def test_endpoints_from_what_users_type(
    text: str, host: str | None, stream: str, schema: str, hosts: str
) -> None:
    endpoint = parse_endpoint(text, host)
    assert (endpoint.stream_url, endpoint.schema_url, endpoint.hosts_url) == (stream, schema, hosts)


def test_process_list_url_only_where_there_is_a_process_table() -> None:
    endpoint = parse_endpoint("hub:7")
    url = endpoint.processes_url("memory", "py thon", 50)
    assert url == "http://hub:7/api/system/metrics/processes?sort=memory&filter=py+thon&limit=50"
    assert endpoint.for_host("web1").processes_url("cpu", "", 5) is None


def test_endpoint_subscribes_and_switches_hosts() -> None:
    endpoint = parse_endpoint("hub:7")
    assert not endpoint.explicit_path and endpoint.host is None
    url = endpoint.stream_url_with(["cpu", "net"])
    assert url == "ws://hub:7/api/system/metrics?fields=cpu,net&alerts=1"
    web1 = endpoint.for_host("web1")
    assert web1.stream_url == "ws://hub:7/api/hosts/web1/metrics" and web1.shown == "web1 @ hub:7"
    assert web1.for_host(None).stream_url == "ws://hub:7/api/system/metrics"


@pytest.mark.parametrize(
    ("text", "host", "error"),
    [
        ("ftp://x", None, "expected a ws://, wss://, http:// or https:// URL, got 'ftp://x'"),
        ("http://h:99999", None, "expected a URL or host:port, got 'http://h:99999'"),
        ("http://h/x", None, "expected a stream path ending in /metrics, got '/x'"),
        ("http://h/?token=s", None, "expected a URL without query or fragment"),
        ("", None, "expected a URL or host:port, got ''"),
        ("http://:5", None, "expected a host in the URL"),
        ("h", "bad host!", "expected a host id of"),
        ("ws://h/api/hosts/a/metrics", "b", "expected one host, got 'a' and --host 'b'"),
    ],
)
def test_bad_endpoints_are_one_line_errors(text: str, host: str | None, error: str) -> None:
    with pytest.raises(EndpointError) as raised:
        parse_endpoint(text, host)
    assert str(raised.value).startswith(error) and "\n" not in str(raised.value)


def test_which_refusals_are_final() -> None:
    assert refusal_for_status(401).startswith("the server wants a token")  # type: ignore[union-attr]
    assert refusal_for_status(404, "unknown host 'x'") == (
        "not found (404): no such stream or unknown host: unknown host 'x'"
    )
    assert refusal_for_status(403) is not None and refusal_for_status(400) is not None
    assert refusal_for_status(200) == "not a sysstream stream (HTTP 200)"
    for transient in (503, 500, 502, 429, 408):
        assert refusal_for_status(transient) is None
    assert refusal_for_close(1008, "", "unknown field 'gpu'") == (
        "closed by the server (1008): unknown field 'gpu'"
    )
    assert refusal_for_close(4404) == "closed by the server (4404): unknown host"
    for transient in (None, 1000, 1001, 1006, 1011, 1012, 1013):
        assert refusal_for_close(transient) is None


def test_printable_strips_terminal_controls() -> None:
    evil = "py\x1b[2J\x1b]0;owned\x07thon\x9b31m\u202eevil\r\nnext\tcol"
    assert printable(evil) == "py[2J]0;ownedthon31mevil  next col"
    tree = printable_tree({"na\x1bme": ["a\x07b", {"k": "\x00v"}], "n": 1.5, "none": None})
    assert tree == {"name": ["ab", {"k": "v"}], "n": 1.5, "none": None}


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (25.54, "percent", "25.5 %"),
        (6013.1, "seconds", "1 h 40 min"),
        (3 * 86400 + 7200, "seconds", "3 d 2 h"),
        (512, "bytes", "512 B"),
        (1536, "bytes", "1.50 KiB"),
        (27.4 * 2**30, "bytes", "27.4 GiB"),
        (1023.9 * 2**20, "bytes", "1024 MiB"),
        (12_582_912.0, "bytes/s", "12.0 MiB/s"),
        (45.0, "celsius", "45.0 °C"),
        (1200, "rpm", "1 200 rpm"),
        (1.88, "tasks", "1.88"),
        (3.5, "packets/s", "3.50 packets/s"),
        (None, "bytes", "—"),
        ("ext4", "text", "ext4"),
    ],
)
def test_values_are_formatted_by_their_registry_unit(value: object, unit: str, shown: str) -> None:
    assert format_value(value, unit) == shown


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (80, "percent", "80 %"),
        (80.00000000000001, "percent", "80 %"),
        (99.9, "percent", "99.9 %"),
        (1048576, "bytes/s", "1 MiB/s"),
        (1.5 * 2**30, "bytes", "1.5 GiB"),
        (5.0, "seconds", "5 s"),
        (85.0, "celsius", "85 °C"),
        (2.0, "tasks", "2"),
        (0.30000000000000004, "", "0.3"),
        (1000, "packets/s", "1 000 packets/s"),
    ],
)
def test_a_written_figure_is_formatted_without_trailing_zeros(
    value: float, unit: str, shown: str
) -> None:
    assert format_value(value, unit, trim=True) == shown


def test_bars_and_sparklines() -> None:
    assert bar(50, 10) == "█████     "
    assert bar(100, 4) == "████" and bar(0, 4) == "    " and bar(None, 3) == "   "
    assert bar(6.25, 2) == "▏ "  # one eighth of two cells
    assert sparkline([0, 5, 10, None], 4) == "▁▅█ "
    assert sparkline([1.0], 4) == "   █"


FULL = {
    "cpu": 40.0,
    "memory": 60.0,
    "disk": 45.3,
    "cpu_per_core": [10.0, 70.0],
    "cpu_times": {"user": 30.0, "system": 10.0, "idle": 60.0, "steal": 0.0},
    "load": {"load1": 1.5, "load1_per_core": 0.75, "load5": 1.0, "load5_per_core": 0.5,
             "load15": 0.5, "load15_per_core": 0.25},
    "swap": {"total_bytes": 2**31, "used_bytes": 2**30, "percent": 50.0,
             "sin_bytes_per_s": 0.0, "sout_bytes_per_s": 1024.0},
    "net": {"rx_bytes_per_s": 2048.0, "tx_bytes_per_s": 1024.0,
            "interfaces": {"eth0": {"rx_bytes_per_s": 2048.0, "tx_bytes_per_s": 1024.0},
                           "idle0": {"rx_bytes_per_s": 0.0, "tx_bytes_per_s": 0.0}}},
    "disk_io": {"read_bytes_per_s": None, "write_bytes_per_s": 4096.0, "devices": {}},
    "mounts": {"/": {"device": "/dev/vda", "fstype": "ext4", "total_bytes": 100 * 2**30,
                     "used_bytes": 40 * 2**30, "free_bytes": 60 * 2**30, "percent": 40.0}},
    "temps": {"coretemp": {"Core 0": {"celsius": 55.0, "high": 80.0, "critical": None}}},
    "fans": {},
    "processes": {
        "count": 90, "running": 2,
        "top_cpu": [{"pid": 1, "name": "busy", "user": "u", "cpu_percent": 90.0,
                     "memory_percent": 1.0, "rss_bytes": 10}],
        "top_memory": [{"pid": 2, "name": "big", "user": "u", "cpu_percent": 1.0,
                        "memory_percent": 50.0, "rss_bytes": 2**30},
                       {"pid": 1, "name": "busy", "user": "u", "cpu_percent": 90.0,
                        "memory_percent": 1.0, "rss_bytes": 10}],
    },
    "uptime": 6013.1,
    "queues": [{"name": "db", "cpu_percent": 12.5, "memory_bytes": 2**29}],
    "containers": {"3f2a": {"name": "web", "state": "running", "health": "healthy",
                            "cpu_percent": 50.0, "memory_bytes": 2**28, "memory_percent": 5.0,
                            "net_rx_bytes_per_s": 1024.0, "net_tx_bytes_per_s": 0.0,
                            "block_read_bytes_per_s": None, "block_write_bytes_per_s": 0.0}},
    "timestamp": "T",
}  # fmt: skip


def _panels(model: WatchModel) -> dict[str, list[tuple[str, str]]]:
    return {p.key: [(line.label, line.value) for line in p.lines] for p in model.panels()}


def test_every_group_renders_with_its_title_and_unit() -> None:
    schema = Schema.from_registry()
    model = WatchModel(schema)
    model.connected()
    assert model.receive(FULL, now=10.0)
    panels = _panels(model)
    assert panels["cpu"][:3] == [("CPU", "40.0 %"), ("core 0", "10.0 %"), ("core 1", "70.0 %")]
    assert ("CPU time by mode", "user 30.0 %, system 10.0 %, idle 60.0 %") in panels["cpu"]
    assert ("Load average", "1.50 1.00 0.50") in panels["cpu"]
    assert ("per core", "0.75 0.50 0.25") in panels["cpu"]
    assert ("Swap", "1.00 GiB of 2.00 GiB (50.0 %)") in panels["memory"]
    assert ("swapping", "in 0 B/s, out 1.00 KiB/s") in panels["memory"]
    assert panels["net"] == [("rx", "2.00 KiB/s"), ("tx", "1.00 KiB/s"),
                             ("eth0", "rx 2.00 KiB/s tx 1.00 KiB/s")]  # fmt: skip
    assert panels["disk_io"] == [("read", "—"), ("write", "4.00 KiB/s")]
    assert panels["temps"] == [("coretemp Core 0", "celsius 55.0 °C, high 80.0 °C, critical —")]
    assert panels["fans"] == [("Fans", "none")]
    mounts = next(p for p in model.panels() if p.key == "mounts")
    assert mounts.table is not None
    assert mounts.table.rows == (("/", "ext4", "40.0 GiB", "100 GiB", "60.0 GiB", "40.0 %"),)
    assert model.status(now=10.0) == "live · uptime 1 h 40 min"  # a duration, not "6013.1 %"


def test_unknown_groups_render_generically_from_their_shape() -> None:
    model = WatchModel(Schema.from_registry())
    model.receive(FULL, now=0.0)
    schema_less = next(p for p in model.panels() if p.key == "queues")
    assert schema_less.table is not None  # not in this registry: units from the key names
    assert schema_less.table.columns == ("name", "cpu", "memory")
    assert schema_less.table.rows == (("db", "12.5 %", "512 MiB"),)
    served = Schema.from_json({"groups": {"queues": {"title": "Queues", "metrics": [
        {"path": "queues.*.cpu_percent", "unit": "percent"},
        {"path": "queues.*.name", "unit": "text"},
        {"path": "queues.*.memory_bytes", "unit": "bytes"}]}}})  # fmt: skip
    model = WatchModel(served)
    model.receive(FULL, now=0.0)
    panel = next(p for p in model.panels() if p.key == "queues")
    assert panel.title == "Queues"
    assert panel.table is not None and panel.table.rows == (("db", "12.5 %", "512 MiB"),)


def test_containers_show_what_docker_stats_shows() -> None:
    model = WatchModel(Schema.from_registry())
    model.receive(FULL, now=0.0)
    panel = next(p for p in model.panels() if p.key == "containers")
    assert panel.title == "Containers" and panel.table is not None
    assert panel.table.rows == (
        ("web", "running (healthy)", "50.0 %", "256 MiB 5.0 %", "1.00 KiB/s 0 B/s", "— 0 B/s"),
    )
    model.receive({"containers": {}, "timestamp": "T"}, now=1.0)
    assert _panels(model)["containers"] == [("Containers", "none running")]


def test_memory_detail_shows_units_beside_the_percent() -> None:
    model = WatchModel(Schema.from_registry())
    detail = {"total_bytes": 8 * 2**30, "used_bytes": 2 * 2**30, "cached_bytes": 3 * 2**30,
              "available_bytes": 5 * 2**30}  # fmt: skip
    model.receive({"memory": 25.0, "memory_detail": detail, "timestamp": "T"}, now=0.0)
    assert _panels(model)["memory"][:3] == [
        ("Memory", "2.00 GiB of 8.00 GiB (25.0 %)"),
        ("cached", "3.00 GiB"),
        ("available", "5.00 GiB"),
    ]


def test_processes_sort_and_filter() -> None:
    model = WatchModel(Schema.from_registry())
    model.receive(FULL, now=0.0)
    assert [row["name"] for row in model.processes()] == ["busy", "big"]
    model.sort = "memory"
    assert [row["name"] for row in model.processes()] == ["big", "busy"]
    model.filter = "BIG"
    assert [row["name"] for row in model.processes()] == ["big"]
    panel = next(p for p in model.panels() if p.key == "processes")
    assert panel.lines[0].value == "90, 2 running; by memory, matching 'BIG'"


def test_a_filter_uses_the_full_list_when_the_server_sent_one() -> None:
    model = WatchModel(Schema.from_registry())
    model.receive(FULL, now=0.0)
    model.filter = "quiet"
    assert model.processes() == []  # not in the top lists
    model.process_list = [{"pid": 99, "name": "quiet", "cpu_percent": 0.0, "rss_bytes": 1}]
    model.process_matches = 1
    assert [row["pid"] for row in model.processes()] == [99]
    panel = next(p for p in model.panels() if p.key == "processes")
    assert panel.lines[0].value.endswith("matching 'quiet' (1 found)")
    model.filter = ""
    assert [row["name"] for row in model.processes()] == ["busy", "big"]


def test_failures_stale_values_and_refusal_in_the_status() -> None:
    model = WatchModel(Schema.from_registry())
    model.connected()
    model.receive({"cpu": 5.0, "disk": None, "timestamp": "T", "errors": {"disk": "gone"}}, 100.0)
    assert ("Disk", "gone") in _panels(model)["mounts"]
    assert not model.stale and model.status(101.0) == "live"
    model.disconnected("ConnectionRefusedError", 2.0, now=103.0)
    assert model.stale and model.state is ConnectionState.RETRYING
    assert model.status(104.0) == (
        "disconnected · last update 4.0 s ago · retrying in 1 s (ConnectionRefusedError)"
    )
    model.refused("not found (404)")
    assert model.status(104.0).startswith("refused · not found (404)")
    model.receive({"cpu": None, "timestamp": "T2", "errors": {"cpu": "timed out"}}, 104.5)
    assert model.message["cpu"] == 5.0 and ("CPU", "timed out") in _panels(model)["cpu"]
    model.receive({"error": "Metric collection failed: x", "timestamp": "T"}, 105.0)
    assert model.error() == "Metric collection failed: x"


def test_alert_events_keep_an_active_list() -> None:
    model = WatchModel(Schema.from_registry())
    active = {"rule": "cpu", "state": "firing", "severity": "warning",
              "labels": {"host": "web1"}, "value": 93.1, "threshold": 90,
              "summary": "CPU busy", "fingerprint": "f1"}  # fmt: skip
    assert not model.receive({"type": "alerts", "active": [active], "timestamp": "T"}, 0.0)
    panel = model.panels()[0]
    assert panel.key == "alerts" and panel.table is not None
    # Before the rules are in, the metric (so its unit) is unknown: bare numbers.
    row = ("warning", "firing", "cpu", "host=web1", "93.1 vs 90", "CPU busy")
    assert panel.table.rows == (row,)
    pending = {"type": "alert", "event": "pending", "rule": "load", "labels": {}, "severity": None,
               "value": 3.0, "threshold": 2, "summary": "", "fingerprint": "f2"}  # fmt: skip
    model.receive(pending, 1.0)
    table = model.panels()[0].table
    assert table is not None and [row[1:3] for row in table.rows] == [
        ("firing", "cpu"),
        ("pending", "load"),
    ]
    model.receive({**active, "type": "alert", "event": "resolved"}, 2.0)
    model.receive({**pending, "event": "cancelled"}, 3.0)
    assert all(p.key != "alerts" for p in model.panels())


def test_alert_values_are_printed_in_their_metrics_units() -> None:
    model = WatchModel(Schema.from_registry())
    alerts = [
        {"rule": "cpu", "state": "firing", "severity": "warning", "labels": {"host": "web1"},
         "value": 93.14, "threshold": 90, "summary": "CPU busy", "fingerprint": "f1"},
        {"rule": "busy_net", "state": "firing", "severity": "warning",
         "labels": {"host": "web1", "interface": "eth0"}, "value": 1.2 * 2**20,
         "threshold": 1048576, "summary": "", "fingerprint": "f2"},
        {"rule": "data_disk", "state": "pending", "severity": "critical",
         "labels": {"host": "web1", "mountpoint": "/data"}, "value": 97.5,
         "threshold": 94.99999999999999, "summary": "", "fingerprint": "f3"},
        {"rule": "host_offline", "state": "firing", "severity": "critical",
         "labels": {"host": "db1"}, "value": 1.0, "threshold": 0.5, "summary": "",
         "fingerprint": "f4"},
        {"rule": "load", "state": "firing", "severity": "warning", "labels": {"host": "web1"},
         "value": 2.345, "threshold": 2.0, "summary": "", "fingerprint": "f5"},
        {"rule": "gone", "state": "firing", "severity": "warning", "labels": {"host": "web1"},
         "value": 1258291.2, "threshold": 1048576, "summary": "", "fingerprint": "f6"},
    ]  # fmt: skip
    model.receive({"type": "alerts", "active": alerts, "timestamp": "T"}, 0.0)
    # The first alerts name rules whose metric is not known: ask the server, once.
    assert model.rules_wanted() and not model.rules_wanted()
    model.take_rules(
        {
            "rules": [
                {"name": "cpu", "metric": "cpu"},
                {"name": "busy_net", "metric": "net.interfaces.*.rx_bytes_per_s"},
                {"name": "data_disk", "metric": "mounts.*.percent"},
                {"name": "host_offline", "metric": "host.offline"},
                {"name": "load", "metric": "load.load1_per_core"},
                {"name": "broken", "metric": 7},
                "junk",
            ],
            "active": [],
        }
    )
    table = model.panels()[0].table
    assert table is not None
    assert [(row[2], row[4]) for row in table.rows] == [
        ("cpu", "93.1 % vs 90 %"),
        ("busy_net", "1.20 MiB/s vs 1 MiB/s"),
        ("data_disk", "97.5 % vs 95 %"),
        ("host_offline", "1 vs 0.5"),  # not in the registry: bare numbers
        ("load", "2.35 vs 2"),
        ("gone", "1258291.2 vs 1 048 576"),  # a rule the server did not list
    ]
    # A rule a reload added is asked about when its first alert comes, and once only.
    assert not model.rules_wanted()
    new = {"type": "alert", "event": "firing", "rule": "swap", "labels": {}, "severity": "warning",
           "value": 55.0, "threshold": 50, "summary": "", "fingerprint": "f7"}  # fmt: skip
    model.receive(new, 1.0)
    assert model.rules_wanted() and not model.rules_wanted()
    model.take_rules({"rules": [{"name": "swap", "metric": "swap.percent"}]})
    table = model.panels()[0].table
    assert table is not None and table.rows[-1][4] == "55.0 % vs 50 %"
    model.take_rules(None)  # a server without alerts: nothing learnt, nothing lost
    assert model.rule_metrics["swap"] == "swap.percent"
