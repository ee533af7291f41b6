"""Alerts on the dashboard, in a real headless Chromium: the active list at the top, the
panel's badge, chart markers, silencing from the page, and the fleet overview's severity."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sysstream._sample import Sample

from .conftest import RunningServer
from .test_alert_api import DialSource, rule_file, start
from .test_alert_fleet import INTERVAL, RULES, DialAgent
from .test_dashboard import WAIT, browser, open_page, pytestmark

__all__ = ["browser", "open_page", "pytestmark"]  # fixtures and the skip mark, reused

Factory = Callable[..., RunningServer]


class NetDialSource(DialSource):
    """DialSource with the bytes received per second the test dials in, too."""

    def __init__(self, interval: float = 0.1) -> None:
        super().__init__(interval)
        self.rx = 0.0

    async def next_sample(self, groups: frozenset[str]) -> Sample:
        sample = await super().next_sample(groups)
        values = {**sample.values, "net": {"rx_bytes_per_s": self.rx, "tx_bytes_per_s": 0.0}}
        return Sample(sample.tick, sample.timestamp, values, sample.errors)


async def settled(read: Callable[[], Any], expected: str) -> str:
    """What ``read`` returns once it is ``expected``, or at WAIT: the first render of an
    alert may come before the rules and the schema that give its unit."""
    text = await read()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(WAIT / 1000):
            while text != expected:
                await asyncio.sleep(0.05)
                text = await read()
    return str(text)


async def test_active_alerts_badges_markers_and_silencing(
    server_factory: Factory, open_page: Callable[..., Any], tmp_path: Path
) -> None:
    source = DialSource(interval=0.1)
    server = start(server_factory, source, alerts=rule_file(tmp_path, None))
    page = await open_page(server.http_url + "/")
    await page.wait_state("live")
    assert await page.page.is_hidden("#alerts")

    source.cpu = 90.0
    item = page.page.locator('#alerts li.alert[data-rule="hot"][data-severity="warning"]')
    await item.wait_for(timeout=WAIT)
    text = await item.text_content()
    assert text is not None and "hot" in text and "local" in text
    # The value and the threshold in the metric's unit, as the chart prints a percent.
    value = item.locator(".value")
    assert await settled(value.text_content, "90.0% vs 80%") == "90.0% vs 80%"
    badge = page.page.locator('#card-cpu .alert-badge[data-severity="warning"]')
    await badge.wait_for(timeout=WAIT)
    assert await badge.get_attribute("title") == "hot local: 90.0% vs 80%"
    marker = page.page.locator('#card-cpu .alert-marker[data-event="firing"]')
    await marker.wait_for(state="attached", timeout=WAIT)
    assert (await marker.get_attribute("title") or "").endswith(": 90.0% vs 80%")

    await item.locator("button.silence").click()
    await page.page.locator('#alerts li.alert[data-silenced][data-rule="hot"]').wait_for(
        timeout=WAIT
    )
    silences = server.call(lambda: server.app.state.alerts.silences.list(time.time()))
    assert [dict(s.matchers) for s in silences] == [{"rule": "hot", "host": "local"}]

    source.cpu = 99.0
    await page.page.locator('#card-cpu .alert-badge[data-severity="critical"]').wait_for(
        timeout=WAIT
    )
    source.cpu = 10.0
    await page.page.locator("#alerts").wait_for(state="hidden", timeout=WAIT)
    await page.page.locator('#card-cpu .alert-marker[data-event="resolved"]').first.wait_for(
        state="attached", timeout=WAIT
    )
    assert await page.page.locator("#card-cpu .alert-badge").count() == 0
    assert page.errors == []
    assert page.off_origin(server.http_url) == []
    assert any("alerts=1" in url for url in page.requests)


async def test_alert_values_are_printed_in_their_metrics_units(
    server_factory: Factory, open_page: Callable[..., Any], tmp_path: Path
) -> None:
    source = NetDialSource(interval=0.1)
    source.rx = 1.2 * 2**20
    extra = (
        '[rules.busy_net]\nmetric = "net.rx_bytes_per_s"\naggregate = "last"\nwarning = 1048576\n'
    )
    server = start(server_factory, source, alerts=rule_file(tmp_path, None, extra))
    page = await open_page(server.http_url + "/")
    await page.wait_state("live")
    value = page.page.locator('#alerts li.alert[data-rule="busy_net"] .value')
    await value.wait_for(timeout=WAIT)
    # 1.2 MiB/s against 1,048,576 bytes/s: the banner printed "1258291 vs 1048576".
    expected = "1.20 MiB/s vs 1 MiB/s"
    assert await settled(value.text_content, expected) == expected
    # The chart's own reading of the same value.
    reading = [
        await page.page.text_content(f"#card-net .stat.primary {part}")
        for part in (".num", ".unit")
    ]
    assert reading == ["1.20", "MiB/s"]
    badge = page.page.locator('#card-net .alert-badge[data-severity="warning"]')
    await badge.wait_for(timeout=WAIT)
    assert await badge.get_attribute("title") == f"busy_net local: {expected}"
    assert page.errors == []


async def test_fleet_overview_shows_each_hosts_worst_severity(
    server_factory: Factory, open_page: Callable[..., Any], tmp_path: Path, redis_url: str
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES.format(url="http://127.0.0.1:9/unused"))
    hot = DialAgent(redis_url, "db1")
    hot.cpu = 95.0
    cool = DialAgent(redis_url, "web1")
    tasks = [asyncio.create_task(agent.run()) for agent in (hot, cool)]
    try:
        server = server_factory(
            redis_url=redis_url, interval=INTERVAL, history_seconds=60, alerts=str(rules)
        )
        page = await open_page(server.http_url + "/")
        await page.page.locator(
            '#fleet-rows td[data-host="db1"] .alert-badge[data-severity="warning"]'
        ).wait_for(timeout=WAIT)
        badge = page.page.locator('#fleet-rows td[data-host="db1"] .alert-badge')
        title = await settled(lambda: badge.get_attribute("title"), "hot: 95.0% vs 80%")
        assert title == "hot: 95.0% vs 80%"
        assert await page.page.locator('#fleet-rows td[data-host="web1"]').count() == 1
        assert await page.page.locator('#fleet-rows td[data-host="web1"] .alert-badge').count() == 0
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
