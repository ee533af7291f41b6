"""The HTTP protocol's bounds (``sysstream.web._http``), against real servers and sockets:
connections that never finish their request, oversized heads, clients that stop reading,
the open-files limit, and SIGTERM under all of these."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from sysstream._sample import Sample
from sysstream.sampling import build_collectors
from sysstream.store import HistoryStore
from sysstream.web._http import HttpLimits

from .conftest import RunningServer, receive_json, ws_client

SYSSTREAM = [sys.executable, "-m", "sysstream"]
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(port: int, first_bytes: bytes = b"") -> Connection:
    """A raw TCP connection (its open time in ``writer.opened_at``), ``first_bytes`` sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.opened_at = time.monotonic()  # type: ignore[attr-defined]
    if first_bytes:
        writer.write(first_bytes)
        await writer.drain()
    return reader, writer


async def closed_after(connection: Connection, timeout: float) -> float:
    """Seconds from opening ``connection`` until the server closed it (EOF or reset)."""
    reader, writer = connection
    started: float = writer.opened_at  # type: ignore[attr-defined]
    with suppress(ConnectionError):
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    writer.close()
    return time.monotonic() - started


async def answer(connection: Connection, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    reader, writer = connection
    received = b""
    with suppress(ConnectionError):
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                received += chunk
    writer.close()
    return received


# Connections that never finish


async def test_idle_and_half_sent_connections_are_closed_within_the_request_timeout(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory(interval=0.2, request_timeout=1.0)
    async with ws_client(server.ws_url()) as stream:
        await receive_json(stream)
        idle = [await connect(server.port) for _ in range(40)]
        half_line = [await connect(server.port, b"GET /heal") for _ in range(40)]
        half_head = [
            await connect(server.port, b"GET /api/system/metrics HTTP/1.1\r\nHost: x\r\n")
            for _ in range(40)
        ]
        # A request whose head trickles in, one byte at a time, never reaches the app.
        trickle = await connect(server.port, b"G")
        trickling = True

        async def keep_trickling() -> None:
            for byte in b"ET /healthz HTTP/1.1\r\nX-Slow: " + b"y" * 200:
                if not trickling:
                    return
                trickle[1].write(bytes([byte]))
                await asyncio.sleep(0.05)

        feeder = asyncio.create_task(keep_trickling())
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
            assert (await client.get("/healthz")).status_code == 200  # served meanwhile
        elapsed = await asyncio.gather(
            *(closed_after(c, 5.0) for c in [*idle, *half_line, *half_head, trickle])
        )
        trickling = False
        await feeder
        assert max(elapsed) < 2.5, sorted(elapsed)[-5:]  # 1 s timeout, a loaded machine
        assert min(elapsed) > 0.9  # not refused on sight
        # The stream, older than the request timeout, is no request in progress.
        assert "cpu" in await receive_json(stream)
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
        assert (await client.get("/healthz")).status_code == 200


async def test_a_kept_alive_connection_gets_the_timeout_again_for_its_next_request(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory(interval=0.2, request_timeout=1.0)
    connection = await connect(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    reader, writer = connection
    status = await asyncio.wait_for(reader.readline(), 5)
    assert status.startswith(b"HTTP/1.1 200")
    writer.write(b"GET /healthz HTTP/1.1\r\n")  # the next request, left unfinished
    await writer.drain()
    # uvicorn's keep-alive timeout (5 s) stops at the first byte; the request timeout holds.
    assert await closed_after(connection, 5.0) < 2.5


# Request heads


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"X-Big: " + b"a" * 15_000 + b"\r\n", b"200"),
        (b"X-Big: " + b"a" * 17_000 + b"\r\n", b"431"),
        (b"".join(b"X-H%d: v\r\n" % i for i in range(98)), b"200"),  # 100 with Host, Connection
        (b"".join(b"X-H%d: v\r\n" % i for i in range(99)), b"431"),
    ],
)
async def test_request_heads_are_bounded_in_size_and_lines(
    server_factory: Callable[..., RunningServer], head: bytes, status: bytes
) -> None:
    server = server_factory(interval=0.2)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + head + b"\r\n"
    response = await answer(await connect(server.port, request))
    assert response.split(b" ", 2)[1] == status, response[:200]


async def test_an_unfinished_huge_header_is_cut_off_at_the_bound(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory(interval=0.2)
    before = psutil.Process().memory_info().rss
    connections = [
        await connect(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        for _ in range(40)
    ]

    async def send_junk(connection: Connection) -> bytes:
        writer = connection[1]
        with suppress(ConnectionError):
            for _ in range(25):  # 25 MB, never a line end
                writer.write(b"a" * 1_000_000)
                await writer.drain()
        return await answer(connection)

    answers = await asyncio.wait_for(asyncio.gather(*(send_junk(c) for c in connections)), 60)
    # 431, or a reset: closing with unread input resets the connection, and the client's
    # kernel may discard the answer.
    assert {a[:12] for a in answers} <= {b"HTTP/1.1 431", b""}, {a[:40] for a in answers}
    grown = psutil.Process().memory_info().rss - before
    # What the server held per connection: the 16 KiB bound plus one 256 KiB read.
    assert grown < 40 * (16 * 1024 + 256 * 1024) + 32 * 2**20, grown


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="expected timeouts > 0, got 0"):
        HttpLimits(request_timeout=0)
    with pytest.raises(ValueError, match="expected a head of at least 1024 bytes"):
        HttpLimits(max_head_bytes=10)


# A real `sysstream serve` at a low open-files limit, and stopping it


@asynccontextmanager
async def serve(
    *args: str, open_files: int | None = None, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[Any, int]]:
    def limit_files() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    process = await asyncio.create_subprocess_exec(
        *SYSSTREAM, "serve", "--port", "0", "--log-level", "info", *args,
        stderr=asyncio.subprocess.PIPE, preexec_fn=limit_files, env=env,
    )  # fmt: skip
    assert process.stderr is not None
    log: list[str] = []
    try:
        port = 0
        async with asyncio.timeout(20):
            while not port:
                line = (await process.stderr.readline()).decode()
                assert line, "server exited before listening"
                log.append(line)
                if match := re.search(r"serving on http://127\.0\.0\.1:(\d+)", line):
                    port = int(match[1])
            while b"Application startup complete" not in await process.stderr.readline():
                pass
        yield process, port
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def stop_within(process: Any, seconds: float) -> tuple[int, float, str]:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    status = await asyncio.wait_for(process.wait(), 30)
    stderr = (await process.stderr.read()).decode()
    return status, time.monotonic() - started, stderr


async def test_at_the_open_files_limit_new_clients_and_sampling_keep_working() -> None:
    limit = 400  # the server's connection cap is then 350 (docs/security.md)
    async with serve("--interval", "0.2", "--request-timeout", "60", open_files=limit) as (
        process,
        port,
    ):
        async with ws_client(f"ws://127.0.0.1:{port}/api/system/metrics") as stream:
            await receive_json(stream)
            idle = await asyncio.gather(*(connect(port) for _ in range(2 * limit)))
            # Each newcomer past the cap evicted the oldest idle connection.
            closed = await asyncio.gather(*(closed_after(c, 2.0) for c in idle[:100]))
            assert all(seconds < 10 for seconds in closed)  # not the 60 s timeout
            async with httpx.AsyncClient(timeout=5) as client:
                health = await client.get(f"http://127.0.0.1:{port}/healthz")
            # Served (the sampler's own state may read "stalled" on a loaded machine).
            assert health.status_code in (200, 503), health
            assert health.json()["hub"] == "running", (health, health.text)
            async with ws_client(f"ws://127.0.0.1:{port}/api/system/metrics") as newcomer:
                assert "cpu" in await receive_json(newcomer)
            for _ in range(5):  # sampling still opens /proc files
                tick = await receive_json(stream)
                assert "Too many open files" not in str(tick), tick
            status, seconds, stderr = await stop_within(process, 5)
        for connection in idle:
            connection[1].close()
    assert status == 0 and seconds < 5, (status, seconds)
    assert "Too many open files" not in stderr and "Traceback" not in stderr, stderr[-2000:]


# Clients that stop reading large responses


def fill_store(directory: Path, seconds: int) -> None:
    """An hour of real samples (every group the store keeps) in ``directory``."""
    collectors = build_collectors(disk_path="/")
    now = time.time()
    values = {name: collector.collect(now) for name, collector in collectors.items()}
    store = HistoryStore(directory, interval=1.0)
    store.open()
    try:
        for tick in range(seconds):
            store.record(Sample(tick=tick, timestamp=now - seconds + tick, values=values))
            if tick % 5000 == 4999:
                store.flush()
        store.flush(final=True)
    finally:
        store.close()


def tcp_send_buffer_max() -> int:
    """The most a socket's kernel send buffer grows to (the third figure of tcp_wmem)."""
    return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


async def stall_round(port: int, request: bytes, clients: int, pid: int) -> tuple[int, float]:
    """``clients`` sockets send ``request`` and never read; returns the server's peak RSS
    and the seconds until it had dropped them all."""
    started = time.monotonic()
    stalled = []
    for _ in range(clients):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(request)
        stalled.append(sock)
    peak = rss(pid)

    def held() -> int:
        return sum(
            1
            for c in psutil.Process(pid).net_connections("tcp")
            if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
        )

    try:
        async with asyncio.timeout(90):
            while held() < clients:  # accepted
                await asyncio.sleep(0.05)
            while held():  # and dropped
                peak = max(peak, rss(pid))
                await asyncio.sleep(0.2)
    finally:
        for sock in stalled:
            sock.close()
    return peak, time.monotonic() - started


@pytest.mark.timeout(300)
async def test_clients_that_stop_reading_history_are_dropped_and_memory_returns(
    tmp_path: Path,
) -> None:
    fill_store(tmp_path, 3600)
    clients = 10
    args = ["--interval", "1", "--stall-timeout", "2", "--data-dir", str(tmp_path)]
    env_with_store = {k: v for k, v in os.environ.items() if k != "SYSSTREAM_NO_STORE"}
    query = "seconds=3600&fields=" + FULL_CATALOGUE
    request = f"GET /api/system/metrics/history?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    async with serve(*args, env=env_with_store) as (process, port):
        async with httpx.AsyncClient(timeout=30) as client:
            full = await client.get(f"http://127.0.0.1:{port}/api/system/metrics/history?{query}")
        assert full.status_code == 200, full.text[:200]
        size = len(full.content)
        # More than the server's kernel send buffer can absorb, or nothing would stall.
        send_buffer_max = tcp_send_buffer_max()
        assert size > 1.5 * send_buffer_max, (size, send_buffer_max)
        start = rss(process.pid)
        peaks, afters = [], []
        for _ in range(2):
            peak, seconds = await stall_round(port, request, clients, process.pid)
            assert seconds < 60  # dropped, not held
            peaks.append(peak)
            afters.append(rss(process.pid))
        async with ws_client(f"ws://127.0.0.1:{port}/api/system/metrics") as stream:
            assert "cpu" in await receive_json(stream)
            status, seconds, stderr = await stop_within(process, 5)
    mib = [round(value / 2**20) for value in (start, *peaks, *afters)]
    print(f"response {size} B; RSS MiB: start, peaks, afters: {mib}")
    # While it stalls, a client costs at most its query's working set and its response
    # (the body and the unsent buffer): a per-client budget of 8 responses.
    assert max(peaks) - start < clients * 8 * size, mib
    # Dropped clients leave nothing behind: what the allocator kept after the first round
    # is reused by the next ones instead of growing (at most one more response's worth).
    assert afters[-1] - afters[0] < 2 * size, mib
    assert status == 0 and seconds < 5, (status, seconds, stderr[-3000:])
    assert "Traceback" not in stderr, stderr[-3000:]


FULL_CATALOGUE = (
    "cpu,memory,disk,cpu_per_core,cpu_times,load,swap,net,disk_io,mounts,temps,fans,uptime"
)
