"""Connection churn soak: open and drop many WebSocket connections, then check that the
server's file descriptors and memory come back.

    .venv/bin/python benchmarks/churn.py                      # 100,000 connections
    .venv/bin/python benchmarks/churn.py --connections 3000 --json

Starts ``sysstream serve`` on 127.0.0.1 (a port the OS picks) and drives it from this
process with four kinds of connection, in turn: ``clean`` (handshake, closing handshake;
every tenth waits for a message first), ``reset`` (handshake, then TCP RST), ``abrupt``
(handshake, then FIN without a close frame) and ``half_open`` (a handshake request cut
off mid-headers, or a connection that sends nothing, then closed). Client sockets are
spread over source addresses 127.0.0.2-17 so TIME_WAIT never exhausts ephemeral ports.

Reports the server's open descriptors (/proc/<pid>/fd) and RSS (/proc/<pid>/status) cold,
after a warm-up of 1,000 connections ("start": allocator pools and lazy imports settle
there) and at the end, once /healthz shows no clients. The server keeps no history
(``--history-seconds 0``): the history ring fills with time, not with connections, and
would hide what churn costs. Loopback only; bounded by
``--connections`` and ``--max-seconds``; stops by itself. Exit status 1 when the end
figures are more than 10 % above the start or any connection failed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import psutil
from websockets.asyncio.client import connect

KINDS = ("clean", "reset", "abrupt", "half_open")
SOURCES = [f"127.0.0.{n}" for n in range(2, 18)]
WARM_UP = 1000
PATH = "/api/system/metrics"
HANDSHAKE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n"
)


@dataclass(frozen=True, slots=True)
class Figures:
    fds: int
    rss_bytes: int
    clients: int


def figures(pid: int, clients: int) -> Figures:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
    return Figures(fds, rss, clients)


class Churn:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"ws://127.0.0.1:{port}{PATH}"
        self.request = HANDSHAKE.format(path=PATH, port=port).encode()
        self.sources = itertools.cycle(SOURCES)
        self.done: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    async def one(self, index: int) -> None:
        kind = KINDS[index % len(KINDS)]
        source = next(self.sources)
        try:
            async with asyncio.timeout(20):
                await getattr(self, kind)(index, source)
            self.done[kind] += 1
        except Exception as exc:
            self.errors[f"{kind}: {type(exc).__name__}: {exc}"[:120]] += 1

    async def clean(self, index: int, source: str) -> None:
        async with connect(self.url, local_addr=(source, 0), open_timeout=10) as websocket:
            if index % (10 * len(KINDS)) == 0:
                await websocket.recv()

    async def _handshake(self, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, local_addr=(source, 0)
        )
        writer.write(self.request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            writer.transport.abort()
            raise ConnectionError(f"expected 101, got {head.splitlines()[0]!r}")
        return reader, writer

    async def reset(self, index: int, source: str) -> None:
        _reader, writer = await self._handshake(source)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def abrupt(self, index: int, source: str) -> None:
        _reader, writer = await self._handshake(source)
        writer.close()
        await writer.wait_closed()

    async def half_open(self, index: int, source: str) -> None:
        _reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, local_addr=(source, 0)
        )
        if index % 2:
            writer.write(self.request[: len(self.request) // 2])
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def run(self, start: int, stop: int, concurrency: int, deadline: float) -> None:
        indexes = iter(range(start, stop))

        async def worker() -> None:
            for index in indexes:
                if time.monotonic() > deadline:
                    return
                await self.one(index)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def clients_now(http: httpx.AsyncClient) -> int:
    return int((await http.get("/healthz")).json()["clients"])


async def settle(pid: int, http: httpx.AsyncClient, within: float = 30.0) -> Figures:
    """Figures once no client is left and the descriptor count holds still for 1 s."""
    deadline = time.monotonic() + within
    previous: Figures | None = None
    while True:
        clients = await clients_now(http)
        current = figures(pid, clients)
        if previous is not None and clients == 0 and current.fds == previous.fds:
            return current
        if time.monotonic() > deadline:
            return current
        previous = current
        await asyncio.sleep(1.0)


async def listening_port(pid: int) -> int:
    async with asyncio.timeout(20):
        while True:
            for conn in psutil.Process(pid).net_connections("tcp"):
                if conn.status == psutil.CONN_LISTEN:
                    return int(conn.laddr.port)
            await asyncio.sleep(0.05)


async def soak(connections: int, concurrency: int, max_seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryFile() as log:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sysstream", "serve", "--port", "0", "--interval", "0.2",
            "--log-level", "warning", "--history-seconds", "0", "--no-store",
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        try:
            port = await listening_port(server.pid)
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                async with asyncio.timeout(20):
                    # Another process's state: polled, there is nothing to await.
                    while (await http.get("/healthz")).json()["status"] != "ok":  # noqa: ASYNC110
                        await asyncio.sleep(0.1)
                cold = figures(server.pid, await clients_now(http))
                churn = Churn(port)
                started = time.monotonic()
                deadline = started + max_seconds
                warm_up = min(WARM_UP, connections // 10)
                await churn.run(0, warm_up, concurrency, deadline)
                start = await settle(server.pid, http)
                await churn.run(warm_up, connections, concurrency, deadline)
                elapsed = time.monotonic() - started
                end = await settle(server.pid, http)
                alive = server.returncode is None
        finally:
            if server.returncode is None:
                server.terminate()
            exit_code = await asyncio.wait_for(server.wait(), 15)
            log.seek(0)
            log_tail = log.read().decode(errors="replace")[-2000:]
    done = sum(churn.done.values())
    return {
        "connections": done + sum(churn.errors.values()),
        "completed": done,
        "errors": sum(churn.errors.values()),
        "error_kinds": dict(churn.errors.most_common(5)),
        "kinds": dict(churn.done),
        "seconds": round(elapsed, 1),
        "per_second": round(done / elapsed) if elapsed else None,
        "cold": asdict(cold),
        "start": asdict(start),
        "end": asdict(end),
        "server_alive_at_end": alive,
        "server_exit_code": exit_code,
        "server_log_tail": log_tail,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-seconds", type=float, default=1200.0)
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line")
    args = parser.parse_args()
    if not 1 <= args.connections <= 1_000_000:
        parser.error(f"expected --connections from 1 to 1000000, got {args.connections}")
    report = asyncio.run(soak(args.connections, args.concurrency, args.max_seconds))
    start, end = report["start"], report["end"]
    ok = (
        report["errors"] == 0
        and report["connections"] == args.connections
        and end["fds"] <= start["fds"] * 1.1
        and end["rss_bytes"] <= start["rss_bytes"] * 1.1
        and report["server_alive_at_end"]
    )
    if args.json:
        print(json.dumps(report))
    else:
        mib = 1 << 20
        print(
            f"{report['completed']:,} connections in {report['seconds']} s "
            f"({report['per_second']}/s), {report['errors']} errors, kinds {report['kinds']}\n"
            f"fds   cold {report['cold']['fds']}, start {start['fds']}, end {end['fds']}\n"
            f"RSS   cold {report['cold']['rss_bytes'] / mib:.1f} MiB, "
            f"start {start['rss_bytes'] / mib:.1f} MiB, end {end['rss_bytes'] / mib:.1f} MiB\n"
            f"server exit status after SIGTERM: {report['server_exit_code']}"
        )
        if report["error_kinds"]:
            print("errors:", report["error_kinds"])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
