"""The budget of history bytes held for slow readers (``sysstream.web._budget``): the
counter alone, then a real ``sysstream serve`` with an hour of full-catalogue history and
raw-socket clients that ask for it and never read."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import httpx
import pytest

from sysstream.web._budget import HISTORY_BUDGET, ResponseBudget

from .conftest import receive_json, ws_client
from .test_http import FULL_CATALOGUE, fill_store, serve, stop_within, tcp_send_buffer_max

MIB = 2**20


def test_a_budget_admits_what_fits_and_counts_what_it_refuses() -> None:
    budget = ResponseBudget(100)
    assert budget.reserve(60) and budget.reserve(40)
    assert not budget.reserve(1)
    assert (budget.held, budget.refused) == (100, 1)
    budget.release(60)
    assert budget.reserve(50) and budget.held == 90
    with pytest.raises(RuntimeError, match="expected at most 90 bytes held, got 91 released"):
        budget.release(91)
    with pytest.raises(ValueError, match="expected a budget of at least 1 byte, got 0"):
        ResponseBudget(0)


def vm_rss(pid: int) -> int:
    """The server's resident set, as the kernel reports it (``VmRSS`` in ``status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def established(pid: int, port: int) -> int:
    """The server's connections on ``port`` that are still open both ways."""
    table = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    local = f":{port:04X}"
    return sum(1 for row in table if row.split()[1].endswith(local) and row.split()[3] == "01")


def stalled_client(port: int, request: bytes) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # the kernel's minimum
    sock.connect(("127.0.0.1", port))
    sock.sendall(request)
    return sock


async def healthz(port: int) -> dict[str, int]:
    async with httpx.AsyncClient(timeout=10) as client:
        reply = await client.get(f"http://127.0.0.1:{port}/healthz")
    budget: dict[str, int] = reply.json()["history_budget"]
    return budget


# An hour of every group at one point a second, asked for by clients that never read.
CLIENTS = 100
# What the stalled clients may add to the server's RSS at their peak: the budget itself,
# plus the two queries that may run at once and the unsent chunks of the connections.
PEAK_ALLOWANCE = HISTORY_BUDGET + 96 * MIB
# What may stay once they are gone: the allocator keeps some of the freed memory for reuse.
AFTER_MARGIN = 48 * MIB


@pytest.mark.timeout(300)
async def test_slow_readers_of_history_hold_at_most_the_budget_and_rss_returns(
    tmp_path: Path,
) -> None:
    fill_store(tmp_path, 3600)
    args = ["--interval", "1", "--stall-timeout", "3", "--data-dir", str(tmp_path)]
    env_with_store = {k: v for k, v in os.environ.items() if k != "SYSSTREAM_NO_STORE"}
    query = "seconds=3600&fields=" + FULL_CATALOGUE
    url_path = f"/api/system/metrics/history?{query}"
    request = f"GET {url_path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    async with serve(*args, env=env_with_store) as (process, port):
        async with httpx.AsyncClient(timeout=30) as client:
            for _ in range(3):  # warm up: the allocator's working set for such a query
                full = await client.get(f"http://127.0.0.1:{port}{url_path}")
                assert full.status_code == 200, full.text[:200]
        size = len(full.content)
        # More than the kernel's send buffer takes, or nothing would be held by the server.
        assert size > 1.5 * tcp_send_buffer_max(), size
        start = vm_rss(process.pid)
        peak = start
        clients = []
        try:
            for _ in range(CLIENTS):
                clients.append(stalled_client(port, request))
                peak = max(peak, vm_rss(process.pid))
            async with asyncio.timeout(120):
                while established(process.pid, port):  # stalled ones aborted, the rest idle out
                    peak = max(peak, vm_rss(process.pid))
                    await asyncio.sleep(0.1)
        finally:
            for sock in clients:
                sock.close()
        budget = await healthz(port)
        after = vm_rss(process.pid)
        settle_by = time.monotonic() + 20
        while after - start > AFTER_MARGIN and time.monotonic() < settle_by:
            await asyncio.sleep(0.5)  # an idle tick or two lets freed arenas go back
            after = vm_rss(process.pid)
        # Served as before once they are gone.
        async with httpx.AsyncClient(timeout=30) as client:
            again = await client.get(f"http://127.0.0.1:{port}{url_path}")
        assert again.status_code == 200 and len(again.content) > size / 2
        status, seconds, stderr = await stop_within(process, 5)
    figures = [round(value / MIB) for value in (start, peak, after)]
    print(f"response {size} B; {CLIENTS} clients; RSS MiB start, peak, after: {figures}")
    assert budget["held_bytes"] == 0, budget
    # Most were refused with 503: the budget holds a handful of these bodies.
    assert budget["refused"] >= CLIENTS - HISTORY_BUDGET // size - 10, budget
    assert peak - start < PEAK_ALLOWANCE, figures
    assert after - start < AFTER_MARGIN, figures
    assert status == 0 and seconds < 5, (status, seconds, stderr[-3000:])
    assert "Traceback" not in stderr, stderr[-3000:]
