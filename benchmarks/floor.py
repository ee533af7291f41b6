"""Reference (b), the floor: fan-out in CPython with nothing in between.

Owns: a bare asyncio + uvloop server that does the WebSocket handshake itself (declining
permessage-deflate, as sysstream does), and once per second samples psutil, encodes the
message once and writes the same pre-built frame to every transport. No ASGI, no
framework, no per-client policy or keepalive pings: the lowest cost a Python server can
have for this job, against which the product is compared.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from datetime import UTC, datetime
from typing import cast

import orjson
import psutil
import uvloop

from wsframes import CLOSE, PING, PONG, TEXT, FrameParser, accept_key, server_frame, split_head

__all__ = ["FloorProtocol", "main"]

PATH = b"/api/system/metrics"


def sample_frame() -> bytes:
    """One tick's message, in sysstream's wire format, as a ready-to-write frame."""
    stamp = datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    message = {
        "cpu": psutil.cpu_percent(),
        "memory": psutil.virtual_memory().percent,
        "disk": psutil.disk_usage("/").percent,
        "timestamp": stamp,
    }
    return server_frame(TEXT, orjson.dumps(message))


class FloorProtocol(asyncio.Protocol):
    """One connection: the handshake, then only control frames from the client."""

    __slots__ = ("_clients", "_head", "_parser", "transport")

    def __init__(self, clients: dict[asyncio.Transport, None]) -> None:
        self._clients = clients
        self._head: bytes | None = b""
        self._parser = FrameParser()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self._head is not None:
            head = split_head(self._head + data)
            if head is None:
                self._head += data
                return
            headers, start, data = head
            self._head = None
            key = headers.get(b"sec-websocket-key")
            if not start.startswith(b"GET " + PATH + b" ") or key is None:
                self.transport.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                self.transport.close()
                return
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n"
            )
            self._clients[self.transport] = None
        for opcode, _, payload in self._parser.feed(data):
            if opcode == PING:
                self.transport.write(server_frame(PONG, payload))
            elif opcode == CLOSE:
                self.transport.write(server_frame(CLOSE, payload[:2]))
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self._clients.pop(self.transport, None)
        self.transport = None


async def serve(host: str, port: int, interval: float) -> None:
    loop = asyncio.get_running_loop()
    clients: dict[asyncio.Transport, None] = {}
    server = await loop.create_server(lambda: FloorProtocol(clients), host, port, backlog=4096)
    psutil.cpu_percent()  # prime the baseline
    deadline = loop.time()
    async with server:
        while True:
            deadline += interval
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            frame = sample_frame()
            for transport in clients:
                transport.write(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(serve(args.host, args.port, args.interval))


if __name__ == "__main__":
    main()
