"""``sysstream watch`` end to end: the Textual app driven by its pilot in a virtual terminal,
and the command in real processes, against real servers on port 0."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import OptionList, Static

from sysstream._sample import Sample
from sysstream.cli._watch_app import HostPicker, WatchApp
from sysstream.sansio import ConnectionState, encode_tick, parse_endpoint, ticks_channel

from .conftest import RunningServer, receive_json, start_server, stop_server, ws_client
from .test_alert_api import DialSource, rule_file, start
from .test_fleet import agent, wait_for_status

TOKEN = "s3cret-token-of-32-characters-xx"
Factory = Callable[..., RunningServer]


def screen_text(app: WatchApp) -> str:
    """What the terminal shows, as text (the way ``App.export_screenshot`` renders it)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


def panel_text(app: WatchApp, key: str) -> str:
    """One panel's content, rendered at its width (panels below the fold included)."""
    widget = app.query_one(f"#{key}", Static)
    width = widget.content_size.width or app.size.width - 4
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()


async def until(condition: Callable[[], Any], pilot: Pilot[Any], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await pilot.pause(0.05)


def has_processes(app: WatchApp) -> bool:
    return isinstance(app.model.message.get("processes"), dict)


async def test_every_group_renders_with_full_labels_at_80x24(server_factory: Factory) -> None:
    server = server_factory(interval=1.0)  # the process walk is cut off at half a tick
    app = WatchApp(parse_endpoint(server.http_url))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(lambda: has_processes(app) and app.model.received >= 3, pilot)
        await pilot.pause(0.1)
        screen = screen_text(app)
        assert f"127.0.0.1:{server.port}  live · uptime " in screen
        for label in ("CPU", "core 0", "CPU time by mode", "Load average", "Memory", "Swap",
                      "Network", "Disk I/O", "Processes", "rx", "tx", "read", "write"):  # fmt: skip
            assert label in screen, label
        # Labels and values are whole (only free text, an alert summary or a command, may
        # end in "…"), and no group says it is unavailable.
        panels = screen[screen.index("╭─ CPU") : screen.index("╭─ Processes")]
        assert "unavailable" not in screen and "…" not in panels
        assert " q Quit " in screen and " p Pause " in screen and " / Filter " in screen
        uptime = screen.split("uptime ")[1].split("\n")[0]
        assert "%" not in uptime and ("min" in uptime or " h " in uptime or " d " in uptime)
        mounts = panel_text(app, "mounts")
        assert "Disk" in mounts and "mount" in mounts and "\n/ " in mounts
        assert "GiB" in mounts or "MiB" in mounts
        processes = panel_text(app, "processes")
        assert "by CPU (100 % = one core)" in processes and "command" in processes


async def test_pause_holds_the_screen_until_resumed(server: RunningServer) -> None:
    app = WatchApp(parse_endpoint(server.http_url))
    async with app.run_test(size=(100, 40)) as pilot:
        await until(lambda: app.model.received >= 2, pilot)
        await pilot.press("p")
        assert app.model.paused
        held = app.query_one("#cpu", Static).content
        seen = app.model.received
        await until(lambda: app.model.received >= seen + 3, pilot)  # ticks keep arriving
        assert app.query_one("#cpu", Static).content is held
        assert "paused · last update" in screen_text(app)
        await pilot.press("space")
        assert not app.model.paused
        await until(lambda: app.query_one("#cpu", Static).content is not held, pilot)
        assert "paused" not in screen_text(app)


@asynccontextmanager
async def forged_host(redis_url: str, host: str, values: dict[str, Any]) -> AsyncIterator[None]:
    """Ticks of a host whose figures the test chooses, published to a hub's Redis five times
    a second, as an agent would (so process lists and texts are known exactly)."""

    async def publish() -> None:
        async with redis.asyncio.Redis.from_url(redis_url) as client:
            for tick in itertools.count():
                sample = Sample(tick, time.time(), values, {"disk": "gone\x1b[31m red\x07"})
                await client.publish(ticks_channel(host), encode_tick(host, 0.2, sample))
                await asyncio.sleep(0.2)

    task = asyncio.create_task(publish())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def process(pid: int, name: str, cpu: float, rss: int) -> dict[str, Any]:
    return {"pid": pid, "name": name, "user": "u", "cpu_percent": cpu,
            "memory_percent": rss / 2**34 * 100, "rss_bytes": rss}  # fmt: skip


EVIL = "ev\x1b[2J\x1b]0;pwned\x07il\u202e"
PROCESSES = {
    "count": 3,
    "running": 1,
    "top_cpu": [process(10, "spinner", 90.0, 2**20), process(11, "builder", 40.0, 2**30),
                process(12, EVIL, 5.0, 2**10)],
    "top_memory": [process(13, "database", 1.0, 2**33), process(11, "builder", 40.0, 2**30)],
}  # fmt: skip


async def test_processes_sort_and_filter_from_the_keyboard(
    redis_url: str, server_factory: Factory
) -> None:
    hub = server_factory(redis_url=redis_url, interval=0.2, history_seconds=60)
    values = {"cpu": 50.0, "processes": PROCESSES}
    async with forged_host(redis_url, "forged", values):
        await wait_for_status(hub, {"forged": "online"})
        app = WatchApp(parse_endpoint(hub.http_url, "forged"), fleet=True)
        async with app.run_test(size=(100, 40)) as pilot:
            await until(lambda: len(app.model.processes()) == 4, pilot)
            names = lambda: [row["name"] for row in app.model.processes()]  # noqa: E731
            assert names()[:3] == ["spinner", "builder", "ev[2J]0;pwnedil"]  # by CPU
            await pilot.press("m")
            assert names() == ["database", "builder", "spinner", "ev[2J]0;pwnedil"]
            assert "by memory" in panel_text(app, "processes")
            await pilot.press("slash")
            await pilot.press(*"BUIL", "enter")
            assert app.model.filter == "BUIL" and names() == ["builder"]
            assert "matching 'BUIL'" in panel_text(app, "processes")
            await pilot.press("escape")
            assert app.model.filter == "" and len(names()) == 4
            await pilot.press("c")
            assert names()[0] == "spinner"


async def test_control_characters_from_the_server_never_reach_the_screen(
    redis_url: str, server_factory: Factory
) -> None:
    hub = server_factory(redis_url=redis_url, interval=0.2, history_seconds=60)
    values = {"cpu": 50.0, "disk": None, "processes": PROCESSES}
    async with forged_host(redis_url, "forged", values):
        await wait_for_status(hub, {"forged": "online"})
        app = WatchApp(parse_endpoint(hub.http_url, "forged"), fleet=True)
        async with app.run_test(size=(120, 50)) as pilot:
            await until(lambda: len(app.model.processes()) == 4, pilot)
            await pilot.pause(0.2)
            shown = screen_text(app) + panel_text(app, "processes") + panel_text(app, "mounts")
    assert "ev[2J]0;pwnedil" in shown and "gone[31m red" in shown
    for control in ("\x1b", "\x07", "\u202e"):
        assert control not in shown


async def test_a_filter_finds_processes_beyond_the_top_ten(server_factory: Factory) -> None:
    server = server_factory(interval=0.5)
    # An idle, small process: never in the top lists by CPU or memory.
    rename = "import time\nopen('/proc/self/comm', 'w').write('zzquiet')\ntime.sleep(120)"
    quiet = await asyncio.create_subprocess_exec(sys.executable, "-c", rename)
    app = WatchApp(parse_endpoint(server.http_url))
    try:
        async with app.run_test(size=(100, 40)) as pilot:
            await until(lambda: app.model.received >= 1, pilot)
            await pilot.press("slash", *"zzquiet", "enter")
            await until(lambda: [r["pid"] for r in app.model.processes()] == [quiet.pid], pilot)
            assert app.model.process_matches == 1
            assert "matching 'zzquiet' (1 found)" in panel_text(app, "processes")
            assert "zzquiet" in panel_text(app, "processes")
            await pilot.press("escape")
            assert app.model.process_list is None
    finally:
        quiet.kill()
        await asyncio.wait_for(quiet.wait(), 5)


async def test_stale_values_dim_while_disconnected_and_recover() -> None:
    running = start_server(interval=0.2)
    port = running.port
    app = WatchApp(parse_endpoint(running.http_url))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(lambda: app.model.received >= 2, pilot)
            await asyncio.to_thread(stop_server, running)
            await until(lambda: app.model.state is ConnectionState.RETRYING, pilot)
            # The status line ticks once a second: wait for the tick that shows 1 s (on a
            # loaded machine it may come well after one second).
            stale = "disconnected · last update 1"
            await until(lambda: stale in screen_text(app), pilot, timeout=10)
            assert "retrying in" in screen_text(app)
            assert app.query_one("#body").has_class("stale")
            running = start_server(interval=0.2, port=port)
            seen = app.model.received
            await until(lambda: app.model.received > seen, pilot, timeout=20)
            assert app.model.state is ConnectionState.LIVE
            assert not app.query_one("#body").has_class("stale")
    finally:
        stop_server(running)


async def test_a_wrong_token_stops_with_one_line(server_factory: Factory) -> None:
    server = server_factory(interval=0.2, token=TOKEN)
    app = WatchApp(parse_endpoint(server.http_url), token="wrong-token-but-long-enough")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(lambda: app.return_code is not None, pilot)
    assert app.return_code == 1
    assert app.refusal is not None and app.refusal.startswith("the server wants a token")
    app = WatchApp(parse_endpoint(server.http_url), token=TOKEN)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(lambda: app.model.received >= 1, pilot)


async def test_narrow_terminals_stack_panels_and_keep_labels(server: RunningServer) -> None:
    app = WatchApp(parse_endpoint(server.http_url))
    async with app.run_test(size=(50, 40)) as pilot:
        await until(lambda: app.model.received >= 2, pilot)
        await pilot.pause(0.2)
        assert app.screen.has_class("narrow")
        cpu, memory = app.query_one("#cpu"), app.query_one("#memory")
        assert memory.region.y > cpu.region.y and cpu.region.width == memory.region.width
        screen = screen_text(app)
        assert "CPU time by mode" in screen and "Load average" in screen


async def test_fleet_hub_lists_hosts_and_switches(redis_url: str, server_factory: Factory) -> None:
    hub = server_factory(redis_url=redis_url, interval=0.2, history_seconds=60)
    async with agent(redis_url, "web1"), agent(redis_url, "db1"):
        await wait_for_status(hub, {"web1": "online", "db1": "online"})
        app = WatchApp(parse_endpoint(hub.http_url))
        async with app.run_test(size=(100, 40)) as pilot:
            await until(lambda: isinstance(app.screen, HostPicker), pilot)
            picker = app.screen.query_one(OptionList)
            ids = [picker.get_option_at_index(i).id for i in range(picker.option_count)]
            assert ids[1:] == ["db1", "web1"]
            picker.highlighted = ids.index("web1")
            await pilot.press("enter")
            await until(lambda: app.endpoint.host == "web1" and app.model.received >= 2, pilot)
            assert f"web1 @ 127.0.0.1:{hub.port}  live" in screen_text(app)
            await pilot.press("h")
            await until(lambda: isinstance(app.screen, HostPicker), pilot)
            picker = app.screen.query_one(OptionList)
            picker.highlighted = ids.index("db1")
            await pilot.press("enter")
            await until(lambda: app.endpoint.host == "db1" and app.model.received >= 1, pilot)
        app = WatchApp(parse_endpoint(hub.http_url, "nope"), fleet=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(lambda: app.return_code is not None, pilot)
        assert app.refusal == "not found (404): no such stream or unknown host: unknown host 'nope'"


def watch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sysstream", "watch", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "80", **(env or {})},
        check=False,
    )


async def test_once_prints_a_plain_snapshot(server_factory: Factory) -> None:
    server = server_factory(interval=0.2, token=TOKEN)
    address = f"127.0.0.1:{server.port}"
    result = await asyncio.to_thread(watch, address, "--once", env={"SYSSTREAM_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"{address}  live · uptime ")
    for title in ("CPU", "CPU time by mode", "Memory", "Network", "Disk I/O", "Filesystems",
                  "Processes"):  # fmt: skip
        assert f"\n{title}" in out, title
    assert "\x1b" not in out and max(len(line) for line in out.splitlines()) <= 80
    refused = await asyncio.to_thread(watch, f"http://{address}/", "--once", "--token", "x" * 20)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("sysstream: the server wants a token")
    assert refused.stderr.count("\n") == 1


def test_once_on_a_closed_port_fails_with_one_line() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = watch(f"127.0.0.1:{port}", "--once")
    assert result.returncode == 1
    assert result.stderr.startswith(f"sysstream: cannot reach 127.0.0.1:{port}")
    assert result.stderr.count("\n") == 1


def test_bad_urls_fail_with_one_line() -> None:
    result = watch("ftp://example.invalid/")
    assert result.returncode == 2
    assert result.stderr == (
        "sysstream: expected a ws://, wss://, http:// or https:// URL, got 'ftp://example.invalid/'\n"
    )


async def test_active_alerts_are_shown(server_factory: Factory, tmp_path: Any) -> None:
    rules = tmp_path / "alerts.toml"
    rules.write_text(
        'builtin = false\n[rules.uptime_up]\nmetric = "uptime"\nop = ">"\nwarning = 1\n'
        'summary = "the host is up"\n'
    )
    server = server_factory(interval=0.2, alerts=str(rules))
    app = WatchApp(parse_endpoint(server.http_url))
    async with app.run_test(size=(100, 40)) as pilot:
        await until(lambda: not app.query_one("#alerts").has_class("hidden"), pilot)
        shown = panel_text(app, "alerts")
        assert "warning" in shown and "firing" in shown and "uptime_up" in shown
        assert "the host is up" in shown
        assert app.query_one("#alerts").border_title == "Active alerts"


class RatesDialSource(DialSource):
    """DialSource with a network rate and a filesystem's use the test dials in, too."""

    def __init__(self, interval: float = 0.1) -> None:
        super().__init__(interval)
        self.rx = 0.0
        self.data_percent = 0.0

    async def next_sample(self, groups: frozenset[str]) -> Sample:
        sample = await super().next_sample(groups)
        mount = {"fstype": "ext4", "total_bytes": 2**30, "used_bytes": 2**29,
                 "free_bytes": 2**29, "percent": self.data_percent}  # fmt: skip
        values = {**sample.values, "net": {"rx_bytes_per_s": self.rx, "tx_bytes_per_s": 0.0},
                  "mounts": {"/data": mount}}  # fmt: skip
        return Sample(sample.tick, sample.timestamp, values, sample.errors)


async def test_alert_values_are_printed_in_their_metrics_units(
    server_factory: Factory, tmp_path: Any
) -> None:
    source = RatesDialSource()
    source.cpu, source.rx, source.data_percent = 90.0, 1.2 * 2**20, 91.04
    extra = (
        '[rules.busy_net]\nmetric = "net.rx_bytes_per_s"\naggregate = "last"\nwarning = 1048576\n'
        '[rules.full]\nmetric = "mounts.*.percent"\naggregate = "last"\nwarning = 90\n'
    )
    server = start(server_factory, source, alerts=rule_file(tmp_path, None, extra), token=TOKEN)
    # The unit is the rule's metric's (GET /api/alerts, behind the same token), as the other
    # panels print it; the values were bare numbers ("1258291.2 / 1048576").
    expected = {
        "hot": "90.0 % vs 80 %",
        "busy_net": "1.20 MiB/s vs 1 MiB/s",
        "full": "91.0 % vs 90 %",  # mounts.*.percent: a `*` of the metric is a mount
    }

    def values(text: str) -> dict[str, str]:
        found = {}
        for rule in expected:
            line = next((line for line in text.splitlines() if f" {rule} " in line), "")
            match = re.search(r"\d[\d.]* (%|MiB/s) vs \S+ (%|MiB/s)", line)
            found[rule] = match.group(0) if match else line
        return found

    app = WatchApp(parse_endpoint(server.http_url), TOKEN)
    async with app.run_test(size=(120, 40)) as pilot:
        with contextlib.suppress(TimeoutError):  # the rules may come after the first alerts
            await until(lambda: values(panel_text(app, "alerts")) == expected, pilot, 10)
        assert values(panel_text(app, "alerts")) == expected
        assert app.model.rule_metrics["full"] == "mounts.*.percent"
    address = f"127.0.0.1:{server.port}"
    result = await asyncio.to_thread(watch, address, "--once", env={"SYSSTREAM_TOKEN": TOKEN,
                                                                    "COLUMNS": "120"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Active alerts" in result.stdout and values(result.stdout) == expected


async def test_once_respects_no_color(server_factory: Factory) -> None:
    server = server_factory(interval=0.5)
    address = f"127.0.0.1:{server.port}"
    colour = re.compile(r"\x1b\[[0-9;]*(3[0-9]|9[0-7]|38;)")  # a foreground colour
    coloured = await asyncio.to_thread(watch, address, "--once", env={"FORCE_COLOR": "1"})
    assert coloured.returncode == 0 and colour.search(coloured.stdout)
    plain = await asyncio.to_thread(
        watch, address, "--once", env={"FORCE_COLOR": "1", "NO_COLOR": "1"}
    )
    assert plain.returncode == 0 and "CPU time by mode" in plain.stdout
    assert not colour.search(plain.stdout)


async def test_an_invalid_subscription_stops_with_one_line(server_factory: Factory) -> None:
    # One view is the server's limit and another client holds it: the dashboard's own
    # subscription is refused with an error message and close 1008, which retrying cannot fix.
    server = server_factory(interval=0.2, max_views=1)
    async with ws_client(server.ws_url("/api/system/metrics?fields=cpu")) as holder:
        await receive_json(holder)
        app = WatchApp(parse_endpoint(server.http_url))
        async with app.run_test(size=(80, 24)) as pilot:
            await until(lambda: app.return_code is not None, pilot)
    assert app.return_code == 1
    assert app.refusal is not None and app.refusal.startswith("closed by the server (1008): ")
    assert "views" in app.refusal
