"""The lean load client: many WebSocket clients in one process, on raw asyncio protocols.

Owns: opening ``--count`` connections from one source address, answering pings, and
counting messages and their delay (receipt time minus the sample's ``timestamp``).

Run by :mod:`run` as a child process, and steered over stdin/stdout with JSON lines:

* it prints ``{"event": "connected", ...}`` once every connection is up (or gave up);
* ``phase`` prints the timestamp of the latest sample received, so the runner can align
  its window between ticks;
* ``window T0 T1`` zeroes the counters and counts only samples stamped in [T0, T1)
  (wall-clock seconds), so every client's count covers the same ticks;
* ``stop`` prints ``{"event": "result", ...}``, ``exit`` resets every connection and exits.

Connections close with RST (``SO_LINGER`` 0) so repeated runs leave no TIME_WAIT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import struct
import sys
import time
import zlib
from array import array
from datetime import datetime
from typing import Any, cast

import uvloop

from wsframes import (
    CLOSE,
    PING,
    PONG,
    TEXT,
    FrameParser,
    client_frame,
    handshake_request,
    split_head,
)

__all__ = ["Counters", "StreamClient", "main"]

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
LINGER_RESET = struct.pack("ii", 1, 0)
TIMESTAMP = b'"timestamp"'


class Counters:
    """What every client of this process records while measuring."""

    def __init__(self) -> None:
        self.measuring = False
        self.start = self.end = 0.0  # the window, in sample time
        self.last = 0.0  # the latest sample's timestamp
        self.delays = array("d")  # seconds
        self.lost = 0  # connections that closed while the run was on
        self._epochs: dict[bytes, float] = {}

    def epoch(self, stamp: bytes) -> float:
        """Seconds since the epoch of an ISO-8601 ``…Z`` stamp (cached: all clients share it)."""
        value = self._epochs.get(stamp)
        if value is None:
            if len(self._epochs) > 4096:
                self._epochs.clear()
            value = datetime.fromisoformat(stamp.decode()).timestamp()
            self._epochs[stamp] = value
        return value


class StreamClient(asyncio.Protocol):
    """One WebSocket client: handshake, then count text messages and answer pings."""

    __slots__ = (
        "_accept",
        "_counters",
        "_head",
        "_inflate",
        "_parser",
        "count",
        "ready",
        "transport",
    )

    def __init__(self, request: bytes, accept: bytes, counters: Counters) -> None:
        self._head: bytes | None = request  # the request until sent, then the response so far
        self._accept = accept
        self._counters = counters
        self._parser = FrameParser()
        self._inflate: Any = None
        self.count = 0
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        assert self._head is not None
        self.transport.write(self._head)
        self._head = b""

    def data_received(self, data: bytes) -> None:
        if self._head is not None:
            data = self._handshake(self._head + data)
            if not data:
                return
        counters = self._counters
        for opcode, compressed, payload in self._parser.feed(data):
            if opcode == TEXT:
                now = time.time()
                if compressed:
                    payload = self._inflate.decompress(payload + b"\x00\x00\xff\xff")
                at = payload.index(b'"', payload.rfind(TIMESTAMP) + len(TIMESTAMP)) + 1
                stamped = counters.epoch(payload[at : payload.index(b'"', at)])
                counters.last = max(counters.last, stamped)
                if counters.measuring and counters.start <= stamped < counters.end:
                    counters.delays.append(now - stamped)
                    self.count += 1
            elif opcode == PING:
                self._write(client_frame(PONG, payload))
            elif opcode == CLOSE:
                self._write(client_frame(CLOSE, payload[:2]))
                self.abort()

    def _handshake(self, buffer: bytes) -> bytes:
        head = split_head(buffer)
        if head is None:
            self._head = buffer
            return b""
        headers, start, rest = head
        self._head = None
        if b" 101 " not in start + b" " or headers.get(b"sec-websocket-accept") != self._accept:
            self._settle(ConnectionError(f"handshake refused: {start.decode(errors='replace')}"))
            self.abort()
            return b""
        extensions = headers.get(b"sec-websocket-extensions", b"")
        if b"permessage-deflate" in extensions:
            bits = 15
            for param in extensions.split(b";"):
                name, _, value = param.strip().partition(b"=")
                if name == b"server_max_window_bits" and value:
                    bits = int(value)
            self._inflate = zlib.decompressobj(-bits)
        self._settle(None)
        return rest

    def _settle(self, error: Exception | None) -> None:
        if not self.ready.done():
            if error is None:
                self.ready.set_result(None)
            else:
                self.ready.set_exception(error)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._settle(ConnectionError("closed during handshake"))
        if self._counters.measuring:
            self._counters.lost += 1
        self.transport = None


async def open_client(
    host: str, port: int, path: str, source: str, deflate: bool, counters: Counters
) -> StreamClient:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    request, accept = handshake_request(host, port, path, deflate=deflate)
    _, client = await loop.create_connection(
        lambda: StreamClient(request, accept, counters), sock=sock
    )
    await client.ready
    return client


async def open_all(args: argparse.Namespace, counters: Counters) -> tuple[list[StreamClient], int]:
    """Open ``args.count`` clients, at most ``args.concurrency`` handshakes at a time."""
    gate = asyncio.Semaphore(args.concurrency)
    deadline = time.monotonic() + args.connect_timeout

    async def one() -> StreamClient | None:
        async with gate:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                return await asyncio.wait_for(
                    open_client(
                        args.host, args.port, args.path, args.source, args.deflate, counters
                    ),
                    left,
                )
            except (OSError, TimeoutError):
                return None

    opened = await asyncio.gather(*(one() for _ in range(args.count)))
    clients = [client for client in opened if client is not None]
    return clients, len(opened) - len(clients)


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


async def serve_commands(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    counters = Counters()
    started = time.monotonic()
    clients, failed = await open_all(args, counters)
    emit("connected", connected=len(clients), failed=failed, seconds=time.monotonic() - started)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        command, *values = line.split()
        if command == "phase":
            emit("phase", last=counters.last)
        elif command == "window":
            for client in clients:
                client.count = 0
            counters.delays = array("d")
            counters.lost = 0
            counters.start, counters.end = map(float, values)
            counters.measuring = True
        elif command == "stop":
            counters.measuring = False
            emit(
                "result",
                seconds=counters.end - counters.start,
                counts=[client.count for client in clients],
                delays_ms=[round(delay * 1000, 3) for delay in counters.delays],
                lost=counters.lost,
            )
        elif command == "exit":
            break
    for client in clients:
        client.abort()
    await asyncio.sleep(0.1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/api/system/metrics")
    parser.add_argument("--source", default="127.0.0.1", help="127.0.0.x to connect from")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--concurrency", type=int, default=200, help="handshakes in flight")
    parser.add_argument("--connect-timeout", type=float, default=60.0)
    return parser.parse_args(argv)


def main() -> None:
    uvloop.run(serve_commands(parse_args()))


if __name__ == "__main__":
    main()
