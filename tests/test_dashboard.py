"""The dashboard in a real headless Chromium against real servers (Debian's ``chromium``)."""

from __future__ import annotations

import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psutil
import pytest
import pytest_asyncio
from fastapi import FastAPI

import sysstream
from sysstream._sample import Sample
from sysstream.sampling import LocalSource, build_collectors
from sysstream.store._store import HistoryStore
from sysstream.web._dashboard import STATIC_DIR

from .conftest import RunningServer, start_server, stop_server

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "dashboard-test-token-0123456789"
WAIT = 15_000  # ms, for every browser-side wait

# The browser suite is part of the product's tests: without Chromium it fails, unless this
# variable explicitly opts out (a machine that cannot run a browser).
SKIP_BROWSER = "SYSSTREAM_SKIP_BROWSER_TESTS"

pytestmark = pytest.mark.skipif(
    os.environ.get(SKIP_BROWSER) == "1", reason=f"{SKIP_BROWSER}=1: browser tests opted out"
)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    if shutil.which("chromium") is None or shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"Debian's chromium is not installed ({CHROMIUM}): apt-get install chromium "
            f"(./scripts/test does), or set {SKIP_BROWSER}=1 to skip the browser tests"
        )
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        await browser.close()


class Page:
    """A page with everything it requested and every console error recorded."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("websocket", lambda ws: self.requests.append(ws.url))
        page.on(
            "console",
            lambda message: message.type == "error" and self.errors.append(message.text),
        )
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    async def wait_state(self, state: str) -> None:
        await self.page.wait_for_selector(f'#status[data-state="{state}"]', timeout=WAIT)

    async def dashboard(self, expression: str) -> Any:
        return await self.page.evaluate(f"window.sysstreamDashboard.{expression}")

    async def wait_until(self, expression: str) -> None:
        # A function, not a bare expression: Playwright evals expressions, which the page's
        # Content-Security-Policy (script-src 'self') forbids.
        await self.page.wait_for_function(f"() => {expression}", timeout=WAIT)

    def off_origin(self, origin: str) -> list[str]:
        netloc = urlsplit(origin).netloc
        return [url for url in self.requests if urlsplit(url).netloc != netloc]


@pytest_asyncio.fixture(loop_scope="session")
async def open_page(browser: Any) -> AsyncIterator[Callable[..., Any]]:
    contexts: list[Any] = []

    async def open_(
        url: str,
        *,
        color_scheme: str = "light",
        width: int = 1280,
        window: int | None = None,
        locale: str = "en-US",
    ) -> Page:
        context = await browser.new_context(
            color_scheme=color_scheme, viewport={"width": width, "height": 900}, locale=locale
        )
        contexts.append(context)
        if window is not None:  # the window the user chose last time
            await context.add_init_script(f"localStorage.setItem('sysstream.window', '{window}')")
        page = Page(await context.new_page())
        await page.page.goto(url, timeout=WAIT)
        return page

    yield open_
    for context in contexts:
        await context.close()


async def test_page_fills_from_history_then_streams_without_leaving_the_server(
    server_factory: Callable[..., RunningServer], open_page: Callable[..., Any]
) -> None:
    server = server_factory(interval=0.1)
    await server.wait_until(lambda: len(server.hub.history) >= 90)
    opened = time.time()
    page = await open_page(server.http_url + "/")
    await page.wait_state("live")
    # The first chart drawn with points already holds the history: points from before the
    # page opened (9 s of ticks), not only what streamed since. (The 5 min window at a
    # 0.1 s tick is drawn from every 3rd tick, to stay under 1200 points.)
    assert await page.dashboard("interval") == pytest.approx(0.3)
    await page.wait_until("window.sysstreamDashboard.firstDrawn !== null")
    first_drawn = await page.dashboard("firstDrawn")
    assert first_drawn["first"] <= opened - 8, (first_drawn, opened)
    assert first_drawn["points"] >= 25
    for panel in ("cpu", "cores", "memory", "load", "net", "disk_io", "mounts"):
        assert await page.page.locator(f"#card-{panel} canvas").count() == 1, panel
    first = await page.dashboard("lastTimestamp")
    shown = await page.page.text_content("#last-update")
    await page.wait_until(f"window.sysstreamDashboard.lastTimestamp > {first} + 0.5")
    await page.page.wait_for_function(
        "(shown) => document.querySelector('#last-update').textContent !== shown",
        arg=shown,
        timeout=WAIT,
    )
    busy = await page.page.text_content("#card-cpu .stat.primary .num")
    assert busy is not None and busy.replace(".", "").isdigit()
    await page.wait_until("document.querySelector('#process-rows td.c-pid:not(:empty)')")
    assert page.errors == []
    assert page.off_origin(server.http_url) == []
    assert any("/api/system/metrics?" in url for url in page.requests)


async def test_labels_and_units_come_from_the_registry(
    server: RunningServer, open_page: Callable[..., Any]
) -> None:
    page = await open_page(server.http_url + "/")
    await page.wait_state("live")
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
        schema = (await client.get("/api/system/metrics/schema")).json()
    for panel, group in (("cpu", "cpu"), ("load", "load"), ("net", "net"), ("mounts", "mounts")):
        title = await page.page.text_content(f"#card-{panel} h2")
        assert title == schema["groups"][group]["title"]
    await page.wait_until(
        "document.querySelector('#card-net .stat.primary .unit').textContent.endsWith('/s')"
    )


async def test_window_choice_resubscribes_at_a_coarser_interval(
    server: RunningServer, open_page: Callable[..., Any]
) -> None:
    page = await open_page(server.http_url + "/")
    await page.wait_state("live")
    await page.page.click('#window button[data-seconds="3600"]')
    # 3600 s at a 0.2 s tick would be 18 000 points: the page asks for every 15th tick (3 s).
    await page.wait_until("window.sysstreamDashboard.interval === 3")
    await server.wait_until(lambda: any(v.every == 15 for v in server.hub._views_of.values()))
    await page.page.click('#window button[data-seconds="60"]')
    await server.wait_until(lambda: all(v.every == 1 for v in server.hub._views_of.values()))
    assert page.errors == []


async def test_pause_freezes_the_charts_and_resume_catches_up(
    server: RunningServer, open_page: Callable[..., Any]
) -> None:
    page = await open_page(server.http_url + "/")
    await page.wait_state("live")
    await page.page.click("#pause")
    frozen = await page.page.text_content("#last-update")
    before = await page.dashboard("lastTimestamp")
    await page.wait_until(f"window.sysstreamDashboard.lastTimestamp > {before} + 1")
    assert await page.page.text_content("#last-update") == frozen  # data kept, display frozen
    await page.page.click("#pause")
    await page.page.wait_for_function(
        "(frozen) => document.querySelector('#last-update').textContent !== frozen",
        arg=frozen,
        timeout=WAIT,
    )


async def test_a_window_wider_than_the_ring_is_filled_with_what_the_ring_holds(
    server_factory: Callable[..., RunningServer], open_page: Callable[..., Any]
) -> None:
    # Memory only, 20 s of ticks: the 5 m window asks for those 20 s (the route refuses
    # more than the ring holds with 400, and the page then filled nothing).
    server = server_factory(interval=0.2, no_store=True, history_seconds=20)
    page = await open_page(server.http_url + "/", window=60)
    await page.wait_state("live")
    await page.wait_until("window.sysstreamDashboard.points >= 3")
    async with page.page.expect_response(lambda r: "/metrics/history?" in r.url) as answer:
        await page.page.click("#window [data-seconds='300']")
    response = await answer.value
    assert response.status == 200, await response.text()
    assert parse_qs(urlsplit(response.url).query)["seconds"] == ["20"]
    await page.wait_until("window.sysstreamDashboard.window === 300")
    assert page.errors == []


async def test_reconnect_asks_for_the_gap_and_breaks_the_line_over_the_outage(
    open_page: Callable[..., Any], tmp_path: Path
) -> None:
    store = {"no_store": False, "data_dir": str(tmp_path)}  # as `serve` runs by default
    first = start_server(interval=0.1, **store)
    try:
        page = await open_page(first.http_url + "/")
        await page.wait_state("live")
        await page.wait_until("window.sysstreamDashboard.points >= 5")
    finally:
        stop_server(first)
    stopped = time.time()
    await page.wait_state("reconnecting")
    assert "Reconnecting" in (await page.page.text_content("#status-text") or "")
    assert await page.page.is_visible("#notice")
    last_before = await page.dashboard("lastTimestamp")
    # Start the server again while the page waits at least 3 s before its next attempt, so
    # the new server has ticks of the gap in its ring when the page asks for them.
    await page.wait_until("window.sysstreamDashboard.retryIn > 3000")
    second = start_server(interval=0.1, port=first.port, **store)
    try:
        await page.wait_until(f"window.sysstreamDashboard.lastHistory?.first > {last_before}")
        await page.wait_state("live")
        reconnected = time.time()
        await page.wait_until(f"window.sysstreamDashboard.lastTimestamp > {last_before} + 0.5")
        # The connection notice is gone (a loaded machine may show a slow reader's instead).
        notice = await page.page.text_content("#notice") or ""
        assert not await page.page.is_visible("#notice") or "Connection lost" not in notice
        # The reconnect asked for the gap since the last message (plus two intervals), not
        # for the whole window again.
        streams = [url for url in page.requests if url.startswith("ws://")]
        asked = float(parse_qs(urlsplit(streams[-1]).query)["history"][0])
        assert stopped - last_before <= asked <= reconnected - last_before + 2, asked
        assert float(parse_qs(urlsplit(streams[0]).query)["history"][0]) == 300
        # What the new server had of the gap came first, then one null point breaks the
        # line across the outage instead of drawing a straight line over it.
        history = await page.dashboard("lastHistory")
        assert history["count"] >= 5 and history["first"] > last_before
        breaks = await page.dashboard("breaks()")
        assert [t for t in breaks if last_before < t < history["first"]] == breaks[-1:]
        assert len(breaks) >= 1
        times = [t for t, _ in await page.dashboard('values("cpu")')]
        assert times == sorted(set(times))
        console = [e for e in page.errors if "ERR_CONNECTION_REFUSED" not in e]
        assert all("WebSocket connection to" in e for e in console), console
    finally:
        stop_server(second)


async def test_token_prompt_then_the_page_keeps_working(
    server_factory: Callable[..., RunningServer], open_page: Callable[..., Any]
) -> None:
    server = server_factory(interval=0.2, token=TOKEN)
    # The page itself has no secret: it loads without a token; the API does not.
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/api/system/metrics")).status_code == 401
    page = await open_page(server.http_url + "/")
    await page.wait_state("unauthorized")
    await page.page.wait_for_selector("#token-dialog[open]", timeout=WAIT)
    await page.page.fill("#token-input", "wrong-token-wrong-token-0000")
    await page.page.click("#token-dialog button[type=submit]")
    await page.page.wait_for_selector("#token-error:not([hidden])", timeout=WAIT)
    await page.page.fill("#token-input", TOKEN)
    await page.page.click("#token-dialog button[type=submit]")
    await page.wait_state("live")
    await page.wait_until("window.sysstreamDashboard.points >= 2")
    # Kept for the tab: a reload asks nothing and goes live again.
    await page.page.reload()
    await page.wait_state("live")
    assert not await page.page.is_visible("#token-dialog")


async def test_dark_theme_follows_the_system(
    server: RunningServer, open_page: Callable[..., Any]
) -> None:
    page = await open_page(server.http_url + "/", color_scheme="dark")
    await page.wait_state("live")
    background = await page.page.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(c) for c in background[background.index("(") + 1 : -1].split(","))
    assert red + green + blue < 3 * 60, background
    await page.page.wait_for_selector("#card-cpu canvas", timeout=WAIT)
    assert page.errors == []


async def test_phone_width_has_no_horizontal_scroll(
    server: RunningServer, open_page: Callable[..., Any]
) -> None:
    page = await open_page(server.http_url + "/", width=390)
    await page.wait_state("live")
    await page.page.wait_for_selector("#card-mounts canvas", timeout=WAIT)
    await page.wait_until("document.querySelectorAll('#process-rows td.c-pid:not(:empty)').length")
    width = await page.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    # The process table keeps the columns that matter and does not scroll sideways.
    table = await page.page.evaluate(VISIBLE_PROCESS_COLUMNS)
    assert table["columns"] == ["Command", "CPU/core", "RSS"]
    assert table["scroll"] <= table["width"]


VISIBLE_PROCESS_COLUMNS = """() => {
  const wrap = document.querySelector("#processes .table-wrap");
  const heads = [...document.querySelectorAll("#process-head th")].filter((th) => th.offsetParent);
  return { columns: heads.map((th) => th.textContent.trim()), scroll: wrap.scrollWidth,
           width: wrap.clientWidth };
}"""


def gib(value: float) -> str:
    """A byte count as the dashboard prints it (format.js: three significant figures)."""
    scaled = value / 2**30
    return f"{scaled:.{0 if scaled >= 100 else 1 if scaled >= 10 else 2}f} GiB"


def number(text: str) -> float:
    return float(re.sub(r"[^\d.]", "", text.split()[0]))


UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def byte_count(text: str) -> float:
    """The first byte count in ``text`` ("952 MiB of 23.5 GiB"): units follow the size."""
    value, unit = text.split()[:2]
    return number(value) * UNITS[unit]


CORES_LEGEND = """() => [...document.querySelectorAll("#card-cores .core")].map((core, i) => {
  const label = core.querySelector(".core-label");
  const bar = core.querySelector(".core-bar");
  const palette = getComputedStyle(document.documentElement).getPropertyValue(`--c${i + 1}`);
  return { text: label.textContent, swatch: label.style.getPropertyValue("--swatch"),
           palette: palette.trim(), visible: label.offsetHeight > 0,
           below: label.getBoundingClientRect().top >= bar.getBoundingClientRect().bottom };
})"""


async def test_units_memory_bytes_filesystems_host_name_and_core_legend(
    server: RunningServer, open_page: Callable[..., Any]
) -> None:
    page = await open_page(server.http_url + "/")
    await page.wait_state("live")
    assert await page.page.text_content("#host") == socket.gethostname()
    # Rate axes say "/s", as the values beside them do.
    for panel in ("net", "disk_io"):
        await page.wait_until(f"window.sysstreamDashboard.axisTicks('{panel}').y.length > 1")
        ticks = (await page.dashboard(f"axisTicks('{panel}')"))["y"]
        assert all(re.fullmatch(r"[\d.,]+ (B|KiB|MiB|GiB)/s", tick) for tick in ticks), ticks
        # A rate is "–" on the first sample (no earlier reading to take it from).
        await page.wait_until(
            f"document.querySelector('#card-{panel} .stat.primary .num')?.textContent !== '–'"
        )
        unit = await page.page.text_content(f"#card-{panel} .stat.primary .unit")
        assert unit is not None and unit.endswith("/s")
    # Memory in bytes beside the percent, and in the same terms (total − available).
    await page.wait_until("document.querySelector('#card-memory .extra dd')?.textContent")
    terms = await page.page.locator("#card-memory .extra dt").all_text_contents()
    values = await page.page.locator("#card-memory .extra dd").all_text_contents()
    extra = dict(zip(terms, values, strict=True))
    assert terms[:3] == ["in use", "cached", "available"]
    total = psutil.virtual_memory().total
    assert extra["in use"].endswith(f" of {gib(total)}")
    percent = number(await page.page.text_content("#card-memory .stat.primary .num") or "")
    assert byte_count(extra["in use"]) == pytest.approx(total * percent / 100, rel=0.15)
    # A filesystem's percent and its bytes are the same fraction: used of usable (df's).
    root = page.page.locator("#card-mounts .mount", has_text="/").first
    shown = await root.locator(".mount-bytes").text_content() or ""
    usage = psutil.disk_usage("/")
    used, usable = (float(part.split()[0]) for part in shown.removesuffix(" usable").split(" of "))
    assert usable == pytest.approx((usage.used + usage.free) / 2**30, rel=0.02)
    pct = number(await root.locator(".mount-pct").text_content() or "")
    assert pct == pytest.approx(used / usable * 100, abs=1)
    assert "as df" in (await root.get_attribute("title") or "")
    # Each core's bar is labelled beneath it in the colour of its line on the chart.
    await page.wait_until("document.querySelector('#card-cores .core-label')")
    cores = await page.page.evaluate(CORES_LEGEND)
    assert [core["text"] for core in cores] == [str(i) for i in range(psutil.cpu_count())]
    for core in cores:
        assert core["visible"] and core["below"]
        if len(cores) <= 8:
            assert core["swatch"] == core["palette"]
    assert page.errors == []


class QuietRates:
    """This host's real samples with every rate zeroed (an idle disk, no traffic), or set
    to the values of ``rates`` (``{"net": {"rx_bytes_per_s": 1000.0}}``)."""

    def __init__(self, rates: dict[str, dict[str, float]] | None = None) -> None:
        self.source = LocalSource(build_collectors(disk_path="/"), interval=0.2)
        self.interval = self.source.interval
        self.rates = rates or {}

    async def next_sample(self, groups: frozenset[str]) -> Sample:
        sample = await self.source.next_sample(groups)
        values = {name: zero_rates(value) for name, value in sample.values.items()}
        for name, dialed in self.rates.items():
            if isinstance(values.get(name), dict):
                values[name] = {**values[name], **dialed}
        return Sample(sample.tick, sample.timestamp, values, sample.errors)

    def close(self) -> None:
        self.source.close()


def zero_rates(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: 0.0 if k.endswith("_per_s") else zero_rates(v) for k, v in value.items()}
    return value


async def rate_axis_ticks(
    server_factory: Callable[..., RunningServer],
    open_page: Callable[..., Any],
    rates: dict[str, dict[str, float]] | None = None,
) -> dict[str, list[str]]:
    """The y tick labels of the net and disk I/O charts, with the host's rates dialed."""
    settings = sysstream.load_settings(port=0, interval=0.2, no_store=True)
    server = server_factory(sysstream.create_app(settings, source=QuietRates(rates)))
    page = await open_page(server.http_url + "/")
    await page.wait_state("live")
    await page.wait_until("window.sysstreamDashboard.points >= 3")
    ticks = {}
    for panel in ("net", "disk_io"):
        await page.wait_until(f"window.sysstreamDashboard.axisTicks('{panel}').y.length > 0")
        ticks[panel] = (await page.dashboard(f"axisTicks('{panel}')"))["y"]
    assert page.errors == []
    return ticks


async def test_a_flat_zero_rate_still_has_a_scale(
    server_factory: Callable[..., RunningServer], open_page: Callable[..., Any]
) -> None:
    for panel, ticks in (await rate_axis_ticks(server_factory, open_page)).items():
        # 0 to 4 KiB/s (the axis ran from 0 to a nanobyte: one tick, "0 B/s").
        assert ticks[0] == "0 KiB/s" and ticks[-1] == "4 KiB/s" and len(ticks) >= 3, (panel, ticks)


async def test_byte_rate_axes_have_one_unit_and_binary_steps(
    server_factory: Callable[..., RunningServer], open_page: Callable[..., Any]
) -> None:
    # 1.2 MiB/s received: the axis (to 1.32 MiB/s) was "0 B/s, 500 KiB/s, 1,000 KiB/s",
    # 500 KiB steps and two units. 900 KiB/s read: "0 B/s, 500 KiB/s".
    rates = {
        "net": {"rx_bytes_per_s": 1.2 * 2**20, "tx_bytes_per_s": 300 * 2**10},
        "disk_io": {"read_bytes_per_s": 900 * 2**10, "write_bytes_per_s": 10 * 2**10},
    }
    ticks = await rate_axis_ticks(server_factory, open_page, rates)
    assert ticks["net"] == ["0 MiB/s", "0.5 MiB/s", "1 MiB/s"], ticks
    assert ticks["disk_io"] == ["0 KiB/s", "256 KiB/s", "512 KiB/s", "768 KiB/s"], ticks


@pytest.mark.parametrize(("locale", "twelve_hour"), [("en-US", True), ("en-GB", False)])
async def test_times_follow_the_browsers_clock_convention(
    server: RunningServer, open_page: Callable[..., Any], locale: str, twelve_hour: bool
) -> None:
    page = await open_page(server.http_url + "/", locale=locale)
    await page.wait_state("live")
    await page.wait_until("window.sysstreamDashboard.axisTicks('cpu').x.length > 1")
    await page.wait_until("document.querySelector('#last-update').textContent")
    footer = await page.page.text_content("#last-update") or ""
    ticks = (await page.dashboard("axisTicks('cpu')"))["x"]
    for text in [footer, *ticks]:
        assert bool(re.search(r"\d:\d\d\s?[AP]M", text)) == twelve_hour, (locale, text)
    assert re.search(r"\d:\d\d:\d\d", footer)


# Unique per run: the same suite may run at once elsewhere on the machine (a shared CI host).
MARKER = f"sysstream-dashboard-marker-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def marked_process() -> Iterator[subprocess.Popen[bytes]]:
    """A sleeping process whose command line is longer than the table's column."""
    command = [
        sys.executable,
        "-c",
        "import sys; sys.stdin.read()",
        MARKER,
        "--option=" + "v" * 300,
    ]
    child = subprocess.Popen(command, stdin=subprocess.PIPE)
    yield child
    child.communicate(timeout=10)


TOP_ROWS = """() => [...document.querySelectorAll("#process-rows tr")].map((tr) => ({
  pid: Number(tr.children[0].textContent), name: tr.querySelector("td.cmd b").textContent,
  text: tr.querySelector("td.cmd").textContent, title: tr.querySelector("td.cmd").title,
  cut: tr.querySelector("td.cmd").scrollWidth > tr.querySelector("td.cmd").clientWidth,
  cpu: tr.children[3].textContent }))"""

TOGGLE_CPU = """() => {
  const cells = () =>
    [...document.querySelectorAll("#process-rows tr")].map((tr) => tr.children[3].textContent);
  const core = cells();
  document.querySelector('#cpu-mode [data-mode="machine"]').click();
  return { core, machine: cells(), head: document.querySelector("#cpu-head").textContent,
           label: document.querySelector('#cpu-mode [data-mode="machine"]').textContent };
}"""


def shown_cmdline(pid: int) -> str | None:
    try:
        parts = psutil.Process(pid).cmdline()
    except psutil.Error:
        return None
    # As the server shows it: control characters as spaces, cut to 256 characters.
    text = "".join(c if c.isprintable() else " " for c in " ".join(parts)).strip()
    return text if len(text) <= 256 else text[:255] + "…"


async def test_processes_show_command_lines_cpu_convention_and_the_full_list(
    server: RunningServer,
    open_page: Callable[..., Any],
    marked_process: subprocess.Popen[bytes],
) -> None:
    page = await open_page(server.http_url + "/")
    await page.wait_state("live")
    await page.wait_until(
        "document.querySelectorAll('#process-rows td.c-pid:not(:empty)').length >= 3"
    )
    rows = [row for row in await page.page.evaluate(TOP_ROWS) if row["pid"]]
    # Each row: the name, then the arguments; the whole command line on hover.
    checked = 0
    for row in rows:
        expected = shown_cmdline(row["pid"])
        if expected is None:
            continue  # gone since
        checked += 1
        assert row["title"] == (expected or row["name"]), row  # a kernel thread: [name]
        if expected:
            args = row["text"].removeprefix(row["name"] + " ")
            assert args != row["text"] and args in expected, row
    assert checked >= 3
    # CPU is per core (100% = one CPU), said in the header; the toggle divides by the CPUs.
    cpus = psutil.cpu_count()
    toggled = await page.page.evaluate(TOGGLE_CPU)
    assert toggled["head"] == "CPU/all" and toggled["label"] == f"% of {cpus} CPUs"
    for core, machine in zip(toggled["core"], toggled["machine"], strict=True):
        if core:
            # Both as printed: one decimal, none from 100% up.
            assert number(machine) == pytest.approx(number(core) / cpus, abs=0.3), (core, machine)
    await page.page.click('#cpu-mode [data-mode="core"]')
    assert await page.page.text_content("#cpu-head") == "CPU/core"
    # Every process, filtered by the server: the marked one, its command line cut to fit.
    await page.page.click("#process-all")
    await page.wait_until("document.querySelectorAll('#process-rows tr').length > 8")
    await page.page.fill("#process-filter", MARKER)
    await page.wait_until("document.querySelectorAll('#process-rows tr').length === 1")
    [row] = await page.page.evaluate(TOP_ROWS)
    assert row["pid"] == marked_process.pid and row["cut"]
    assert row["text"].startswith(f"{row['name']} -c import sys; sys.stdin.read() {MARKER} ")
    assert row["title"] == shown_cmdline(marked_process.pid) and len(row["title"]) == 256
    # Sorted by a column the server sorts by.
    await page.page.fill("#process-filter", "")
    await page.page.click('#process-head th[data-sort="pid"]')
    await page.wait_until(
        "(() => { const p = [...document.querySelectorAll('#process-rows tr')]"
        ".map((tr) => Number(tr.children[0].textContent));"
        " return p.length > 8 && p.every((v, i) => i === 0 || p[i - 1] < v); })()"
    )
    lists = [parse_qs(urlsplit(u).query) for u in page.requests if "/metrics/processes" in u]
    assert lists and all(query["limit"] == ["500"] for query in lists)
    assert page.errors == []
    assert page.off_origin(server.http_url) == []


FLEET_ROWS = """() => [...document.querySelectorAll("#fleet-rows tr")].map((tr) => ({
  host: tr.dataset.host, status: tr.children[1].textContent,
  opacity: Number(getComputedStyle(tr.querySelector(".spark-cell")).opacity),
  filter: getComputedStyle(tr.querySelector(".spark-cell")).filter,
  points: tr.querySelector(".spark polyline").getAttribute("points").split(" ").length }))"""


async def test_fleet_overview_greys_offline_hosts_and_asks_once_for_every_history(
    redis_url: str, server_factory: Callable[..., RunningServer], open_page: Callable[..., Any]
) -> None:
    from .test_fleet import agent, wait_for_status

    server = server_factory(redis_url=redis_url, interval=0.2, history_seconds=60)
    async with agent(redis_url, "web1", 0.2):
        async with agent(redis_url, "db1", 0.2):
            await wait_for_status(server, {"web1": "online", "db1": "online"})
            hosts = server.app.state.fleet.hosts
            await server.wait_until(lambda: all(len(h.history) >= 5 for h in hosts.values()))
        await wait_for_status(server, {"db1": "offline"})
        page = await open_page(server.http_url + "/")
        await page.wait_state("live")
        await page.wait_until("document.querySelectorAll('#fleet-rows tr').length === 2")
        rows = {row["host"]: row for row in await page.page.evaluate(FLEET_ROWS)}
        assert rows["db1"]["status"].startswith("offline · last seen ")
        assert rows["db1"]["opacity"] < 0.6 and "grayscale(1)" in rows["db1"]["filter"]
        assert rows["web1"]["status"] == "online"
        assert rows["web1"]["opacity"] == 1 and rows["web1"]["filter"] == "none"
        assert all(row["points"] >= 5 for row in rows.values())  # the sparklines are drawn
        # One request for every host's sparklines, not one per host.
        histories = [u for u in page.requests if "/hosts/" in u and "/history" in u]
        assert len(histories) == 1 and "/api/hosts/history?" in histories[0], histories
        assert parse_qs(urlsplit(histories[0]).query)["points"] == ["60"]
        # The offline host's own page keeps its last values, greyed.
        await page.page.select_option("#host-select", "db1")
        await page.page.wait_for_selector("body.stale", timeout=WAIT)
        assert await page.page.text_content("#host") == "db1"
        assert page.errors == []


async def test_a_fleet_host_sampled_at_another_interval_streams_at_multiples_of_it(
    redis_url: str, server_factory: Callable[..., RunningServer], open_page: Callable[..., Any]
) -> None:
    from .test_fleet import agent, wait_for_status

    # The hub ticks every 0.2 s, the agent every 0.4 s: the 1 h window's interval must be a
    # multiple of the host's 0.4 s (3.2 s), not of the hub's (3.0 s, refused by the host's
    # stream, which went on at 0.4 s while the page believed 3 s).
    server = server_factory(redis_url=redis_url, interval=0.2)
    async with agent(redis_url, "db1", 0.4):
        await wait_for_status(server, {"db1": "online"})
        page = await open_page(server.http_url + "/", window=3600)
        await page.wait_state("live")
        await page.wait_until("document.querySelectorAll('#host-select option').length === 2")
        await page.page.select_option("#host-select", "db1")
        await page.wait_until("window.sysstreamDashboard.interval === 3.2")
        await page.wait_state("live")
        status = await page.page.text_content("#status-text") or ""
        assert status == "Live · 3.2 s", status
        replies: list[str] = []
        page.page.on(
            "websocket",
            lambda ws: ws.on("framereceived", lambda frame: replies.append(str(frame))),
        )
        # A window change resubscribes: the host accepts it (no error message, no notice).
        await page.page.click("#window [data-seconds='900']")
        await page.wait_until("window.sysstreamDashboard.interval === 0.8")
        await page.page.click("#window [data-seconds='3600']")
        await page.wait_until("window.sysstreamDashboard.interval === 3.2")
        await page.wait_until("window.sysstreamDashboard.points >= 2")
        assert await page.page.is_hidden("#notice")
        # Its agent publishes no processes: no card, and none asked for.
        assert await page.page.is_hidden("#processes")
        streams = [u for u in page.requests if "/api/hosts/db1/metrics?" in u]
        assert streams and all("processes" not in parse_qs(urlsplit(u).query)["fields"][0]
                               for u in streams)  # fmt: skip
        assert not any('"error"' in reply for reply in replies), replies
        assert page.errors == []


async def test_dashboard_under_a_prefix_in_an_embedding_app(
    server_factory: Callable[..., RunningServer], open_page: Callable[..., Any]
) -> None:
    app = FastAPI()
    app.include_router(
        sysstream.router(sysstream.load_settings(interval=0.2)), prefix="/api/system"
    )
    app.include_router(sysstream.dashboard(api="/api/system"), prefix="/ops/dashboard")
    server = server_factory(app)
    page = await open_page(server.http_url + "/ops/dashboard/")
    await page.wait_state("live")
    await page.wait_until("window.sysstreamDashboard.points >= 2")
    assert page.errors == []
    assert any("/api/system/metrics?" in url for url in page.requests)


def test_static_files_are_served_with_revalidation_and_without_traversal(
    server: RunningServer,
) -> None:
    with httpx.Client(base_url=server.http_url, timeout=5) as client:
        page = client.get("/")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        script = client.get("/static/app.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        again = client.get("/static/app.js", headers={"If-None-Match": script.headers["etag"]})
        assert again.status_code == 304
        assert client.get("/static/../_dashboard.py").status_code == 404
        assert client.get("/static/%2e%2e/_dashboard.py").status_code == 404
        uplot = client.get("/static/vendor/uplot/uPlot.esm.js")
        version = (STATIC_DIR / "vendor/uplot/VERSION").read_text().strip()
        assert f"(v{version})" in uplot.text


def test_dashboard_rejects_a_relative_api_path() -> None:
    with pytest.raises(ValueError, match="expected an absolute api path"):
        sysstream.dashboard(api="api/system")


# ---- The stored windows (6 h / 24 h / 7 d), read from the history store ----

TICK = 10.0  # seconds between the synthetic samples written to the store
HOURS = 24


def synthetic_cpu(timestamp: float) -> float:
    """A slow wave with a wobble faster than a bucket, so averages, minima and maxima differ."""
    return round(35 + 20 * math.sin(timestamp / 5400) + 8 * math.sin(timestamp / 3), 2)


def preload_store(directory: Path, end: float) -> float:
    """Write ``HOURS`` of samples every ``TICK`` s ending at ``end`` through the store's
    API, as a server that ran then would have; returns the first sample's time."""
    start = math.floor((end - HOURS * 3600) / 60) * 60
    store = HistoryStore(directory, interval=TICK)
    store.open()
    timestamp, tick = start, 0
    while timestamp < end:
        cpu = synthetic_cpu(timestamp)
        values = {
            "cpu": cpu,
            "memory": round(52 + 6 * math.sin(timestamp / 9000), 2),
            "load": {"load1": round(cpu / 25, 2), "load5": 1.2, "load15": 1.0},
        }
        store.record(Sample(tick, timestamp, values))
        timestamp, tick = timestamp + TICK, tick + 1
    store.close()  # writes the samples and every 1-minute and 15-minute bucket
    return start


async def test_day_window_draws_the_stored_day_with_bands_and_stays_live(
    server_factory: Callable[..., RunningServer], open_page: Callable[..., Any], tmp_path: Path
) -> None:
    now = time.time()
    start = preload_store(tmp_path, end=now - 120)
    server = server_factory(interval=0.2, no_store=False, data_dir=str(tmp_path))
    page = await open_page(server.http_url + "/")
    await page.wait_state("live")
    day = page.page.locator('#window button[data-seconds="86400"]')
    assert await page.page.locator("#window button[data-store]:visible").count() == 3
    await day.click()
    # 2-minute points (the store's 1-minute rows in pairs): 720 for the day, not 86 400.
    await page.wait_until("window.sysstreamDashboard.step === 120")
    await page.wait_until(f"window.sysstreamDashboard.points >= {HOURS * 30 - 2}")
    assert await page.dashboard("firstTimestamp") <= start + 120
    assert await page.dashboard("points") <= 1200
    assert await page.dashboard("interval") == pytest.approx(0.2)  # every tick, averaged
    cpu = dict(await page.dashboard('values("cpu")'))
    low = dict(await page.dashboard('values("lo:cpu")'))
    high = dict(await page.dashboard('values("hi:cpu")'))
    # A bucket from six hours ago: the mean, min and max of the ticks written into it.
    bucket = math.floor((now - 6 * 3600) / 120) * 120
    ticks = [synthetic_cpu(t) for t in range(int(bucket), int(bucket) + 120, int(TICK))]
    assert cpu[bucket] == pytest.approx(sum(ticks) / len(ticks), abs=0.01)
    assert (low[bucket], high[bucket]) == (min(ticks), max(ticks))
    stored = [t for t in cpu if t < now - 120]
    assert min(stored) <= start + 120 and max(stored) >= now - 360
    assert all(t % 120 == 0 for t in cpu)
    # The stream goes on: the numbers beside the charts follow the live ticks.
    shown = await page.page.text_content("#last-update")
    await page.page.wait_for_function(
        "(shown) => document.querySelector('#last-update').textContent !== shown",
        arg=shown,
        timeout=WAIT,
    )
    await page.page.wait_for_selector("#card-cpu canvas", timeout=WAIT)
    assert await page.page.locator("#card-cpu .stat.primary .num").text_content() != "–"
    # Back to a live window: ticks again, from the ring.
    await page.page.click('#window button[data-seconds="300"]')
    await page.wait_until("window.sysstreamDashboard.step === 0.4")  # every 2nd tick
    await page.wait_until("window.sysstreamDashboard.points > 0")
    assert await page.dashboard("firstTimestamp") > now - 400
    assert page.errors == []
    assert page.off_origin(server.http_url) == []


async def test_stored_windows_are_absent_without_a_store(
    server: RunningServer, open_page: Callable[..., Any]
) -> None:
    # Last time this browser showed 24 h, on a server that had a store.
    page = await open_page(server.http_url + "/", window=86400)
    await page.wait_state("live")
    assert await page.page.locator("#window button[data-store]").count() == 3
    assert await page.page.locator("#window button[data-store]:visible").count() == 0
    await page.wait_until("window.sysstreamDashboard.window === 3600")
    checked = page.page.locator('#window button[aria-checked="true"]')
    assert await checked.get_attribute("data-seconds") == "3600"
    await page.wait_until("window.sysstreamDashboard.points >= 2")
    assert page.errors == []


BUCKETS_SCRIPT = """async () => {
  const { Buckets, Timeline } = await import(new URL("static/timeline.js", document.baseURI));
  const timeline = new Timeline();
  const m = (cpu) => new Map([["cpu", cpu], ["swap", null]]);
  timeline.push(1200, m(70));  // a bucket read from the store while still open
  const buckets = new Buckets(60, new Set(["cpu"]));
  const kept = [
    buckets.add(timeline, 1230, m(10)),  // inside the store's bucket: left as the store gave it
    buckets.add(timeline, 1260, m(10)),  // the next bucket is the page's
    buckets.add(timeline, 1290, m(40)),
    buckets.add(timeline, 1250, m(99)),  // older than what is drawn
    buckets.add(timeline, 1500, m(5), { gap: 180 }),  // after an outage: the line breaks
  ];
  const row = (i) => [timeline.times[i], timeline.column("cpu")[i],
    timeline.column("lo:cpu")[i], timeline.column("hi:cpu")[i]];
  return { kept, rows: timeline.times.map((_, i) => row(i)) };
}"""


async def test_live_ticks_are_averaged_into_the_stores_buckets(
    server: RunningServer, open_page: Callable[..., Any]
) -> None:
    page = await open_page(server.http_url + "/")
    result = await page.page.evaluate(BUCKETS_SCRIPT)
    assert result["kept"] == [False, True, True, False, True]
    assert result["rows"] == [
        [1200, 70, None, None],
        [1260, 25, 10, 40],  # the mean of its ticks, and their min and max
        [1260 + 90, None, None, None],  # the null point breaking the line
        [1500, 5, 5, 5],
    ]
    assert page.errors == []
