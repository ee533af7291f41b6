"""JS heap of a long-open dashboard tab: does it stay flat?

Starts ``sysstream serve`` with a fast ``--interval`` (so an hour of 1 s ticks passes in
minutes), opens the dashboard in headless Chromium (Debian's ``chromium``) with the 1 min
window, and every ``--every`` seconds forces a garbage collection
(``HeapProfiler.collectGarbage``) and reads ``JSHeapUsedSize`` (``Performance.getMetrics``)
over CDP. Prints one line per sample and a summary (start, end, max, growth per hour)::

    .venv/bin/python benchmarks/dashboard_heap.py --minutes 10 --interval 0.05

Results go in docs/benchmarks.md, section "Dashboard memory".
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from playwright.async_api import async_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SYSSTREAM = Path(sys.executable).with_name("sysstream")


def start_server(interval: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [str(SYSSTREAM), "serve", "--port", "0", "--interval", str(interval), "--no-store"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        match = re.search(r"serving on (http://\S+)", line)
        if match:
            # Keep reading the server's log, or a full pipe would block it.
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return process, match.group(1)
    process.kill()
    raise RuntimeError("sysstream serve did not announce its address within 15 s")


async def measure(url: str, minutes: float, every: float, window: int) -> list[tuple[float, int]]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        await page.goto(url)
        await page.wait_for_selector('#status[data-state="live"]', timeout=15_000)
        await page.click(f'#window button[data-seconds="{window}"]')
        cdp = await page.context.new_cdp_session(page)
        await cdp.send("Performance.enable")
        samples: list[tuple[float, int]] = []
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) <= minutes * 60:
            await cdp.send("HeapProfiler.collectGarbage")
            metrics = (await cdp.send("Performance.getMetrics"))["metrics"]
            used = int(next(m["value"] for m in metrics if m["name"] == "JSHeapUsedSize"))
            points = await page.evaluate("window.sysstreamDashboard.points")
            state = await page.evaluate("window.sysstreamDashboard.state")
            samples.append((elapsed, used))
            print(
                f"{elapsed:8.0f} s  heap {used / 2**20:7.2f} MiB  points {points:5d}  {state}",
                flush=True,
            )
            await asyncio.sleep(every)
        await browser.close()
        return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to keep the tab open")
    parser.add_argument("--interval", type=float, default=0.05, help="server --interval, seconds")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between heap samples")
    parser.add_argument("--window", type=int, default=60, choices=(60, 300, 900, 3600))
    options = parser.parse_args()
    process, url = start_server(options.interval)
    try:
        samples = asyncio.run(measure(url + "/", options.minutes, options.every, options.window))
    finally:
        process.terminate()
        process.wait(timeout=15)
    # The first minute fills the window; flatness is judged from then on.
    settled = [(t, used) for t, used in samples if t >= 60] or samples
    start, end = settled[0][1], settled[-1][1]
    peak = max(used for _, used in samples)
    hours = max((settled[-1][0] - settled[0][0]) / 3600, 1e-9)
    messages = samples[-1][0] / options.interval
    print(
        f"\nmessages {messages:.0f} ({options.interval} s interval, {options.window} s window)\n"
        f"heap after 1st min {start / 2**20:.2f} MiB, end {end / 2**20:.2f} MiB, "
        f"max {peak / 2**20:.2f} MiB, growth {(end - start) / 2**20 / hours:+.2f} MiB/h"
    )


if __name__ == "__main__":
    main()
