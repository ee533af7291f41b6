"""sysstream's WebSocket protocol against real servers: the handover from the ASGI app, and
what every way of leaving gives back (hub membership, connection slot, task, connection)."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import ConnectionClosed

import sysstream
from sysstream.sansio._ratelimit import CONTROL_BURST
from sysstream.web._router import MetricsRouter

from .conftest import RunningServer, receive_json, stop_server, ws_client

SETTINGS = {"interval": 0.2, "stall_timeout": 1.0}  # pings every 0.5 s, unanswered in 0.5 s
SUBSCRIBE = orjson.dumps({"type": "subscribe", "fields": ["cpu"]})
HANDSHAKE = (
    b"GET /api/system/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
TEXT, CLOSE = 0x1, 0x8


def stream_app() -> tuple[FastAPI, MetricsRouter]:
    """An app around the metrics router, so the test can read the router's connection slots."""
    metrics = sysstream.router(sysstream.load_settings(**SETTINGS))
    app = FastAPI()
    app.include_router(metrics, prefix="/api/system")
    return app, metrics


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked frame, as a client sends it (payloads under 126 bytes)."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


def raw_connect(port: int) -> tuple[socket.socket, bytes]:
    """Handshake on a plain socket; returns the socket and what came after the 101 response."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(HANDSHAKE)
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    head, _, rest = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, rest


def read_frame(sock: socket.socket, buffer: bytes) -> tuple[int, bytes, bytes]:
    """The next server frame (unmasked): opcode, payload, and the bytes after it."""

    def need(count: int) -> None:
        nonlocal buffer
        while len(buffer) < count:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            buffer += chunk

    need(2)
    length, start = buffer[1] & 0x7F, 2
    if length == 126:
        need(4)
        length, start = struct.unpack("!H", buffer[2:4])[0], 4
    need(start + length)
    return buffer[0] & 0x0F, buffer[start : start + length], buffer[start + length :]


def counts(server: RunningServer, metrics: MetricsRouter) -> Callable[[], Any]:
    state = server.server.server_state
    return lambda: (metrics.hub.clients, metrics.connections.active, len(state.tasks))


async def until_closed(websocket: Any) -> int | None:
    async with asyncio.timeout(10):
        with pytest.raises(ConnectionClosed):
            while True:
                await websocket.recv()
    return websocket.close_code  # type: ignore[no-any-return]


@pytest.mark.parametrize("fast_path", [True, False], ids=["sysstream-protocol", "stock-uvicorn"])
async def test_a_detached_connection_keeps_no_asgi_task(
    server_factory: Any, fast_path: bool
) -> None:
    app, metrics = stream_app()
    stock = None if fast_path else WebSocketsSansIOProtocol
    server: RunningServer = server_factory(app, ws_protocol=stock, **SETTINGS)
    clients = 5
    connections = [ws_client(server.ws_url()) for _ in range(clients)]
    sockets = await asyncio.gather(*(c.__aenter__() for c in connections))
    try:
        for websocket in sockets:  # streaming, and the control channel answers
            assert "cpu" in await receive_json(websocket)
            await websocket.send(SUBSCRIBE.decode())
            while (await receive_json(websocket)).get("type") != "subscribed":
                pass
        # The stock protocol keeps one ASGI task per client; ours none.
        expected = (clients, clients, 0 if fast_path else clients)
        await server.wait_until(lambda: counts(server, metrics)() == expected)
        state = server.server.server_state
        assert server.call(lambda: len(state.connections)) == clients
    finally:
        await asyncio.gather(*(c.__aexit__(None, None, None) for c in connections))
    await server.wait_until(lambda: counts(server, metrics)() == (0, 0, 0))
    assert server.log.errors() == []


async def test_every_way_of_leaving_gives_back_the_hub_and_the_slot(server_factory: Any) -> None:
    app, metrics = stream_app()
    server: RunningServer = server_factory(app, **SETTINGS)
    state = server.server.server_state
    gone = counts(server, metrics)

    async def left(kind: str) -> None:
        try:
            await server.wait_until(lambda: gone() == (0, 0, 0) and not state.connections)
        except TimeoutError:
            raise AssertionError(f"{kind}: left {server.call(gone)} behind") from None

    # Clean close by the client, after a tick.
    async with ws_client(server.ws_url()) as websocket:
        await receive_json(websocket)
    await left("clean close")

    # TCP reset; and FIN without a closing handshake.
    for linger in (True, False):
        sock, _ = await asyncio.to_thread(raw_connect, server.port)
        await server.wait_until(lambda: metrics.hub.clients == 1)
        if linger:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        await left("reset" if linger else "FIN")

    # A client that never answers a ping is aborted (stall timeout 1 s).
    sock, _ = await asyncio.to_thread(raw_connect, server.port)
    try:
        await left("unanswered pings")
    finally:
        sock.close()

    # The server closes: a flood (1008), oversized frame (1009), text that is not UTF-8 (1007).
    async with ws_client(server.ws_url()) as flood:
        for _ in range(CONTROL_BURST * 5):
            await flood.send(SUBSCRIBE.decode())
        assert await until_closed(flood) == 1008
    await left("flood")
    async with ws_client(server.ws_url(), max_size=None) as big:
        await big.send(b"x" * 4097)
        assert await until_closed(big) == 1009
    await left("oversized frame")
    sock, rest = await asyncio.to_thread(raw_connect, server.port)
    try:
        opcode, _, rest = await asyncio.to_thread(read_frame, sock, rest)  # handed over by now
        sock.sendall(client_frame(TEXT, b"\xff\xfe"))
        while opcode != CLOSE:
            opcode, payload, rest = await asyncio.to_thread(read_frame, sock, rest)
        assert struct.unpack("!H", payload[:2])[0] == 1007
        sock.sendall(client_frame(CLOSE, payload[:2]))  # complete the closing handshake
        await left("invalid UTF-8")
    finally:
        sock.close()
    assert server.log.errors() == []


async def test_shutdown_closes_detached_connections_with_1001(server_factory: Any) -> None:
    app, metrics = stream_app()
    server: RunningServer = server_factory(app, **SETTINGS)
    connections = [ws_client(server.ws_url()) for _ in range(3)]
    sockets = await asyncio.gather(*(c.__aenter__() for c in connections))
    try:
        await asyncio.gather(*(receive_json(ws) for ws in sockets))
        await server.wait_until(lambda: counts(server, metrics)() == (3, 3, 0))
        stopping = asyncio.create_task(asyncio.to_thread(stop_server, server))
        codes = await asyncio.gather(*(until_closed(ws) for ws in sockets))
        await asyncio.wait_for(stopping, 15)
    finally:
        await asyncio.gather(*(c.__aexit__(None, None, None) for c in connections))
    assert codes == [1001] * 3
    assert not server.thread.is_alive()
    # The server's loop has stopped: its objects can be read from here.
    assert (metrics.hub.clients, metrics.connections.active) == (0, 0)
    assert not server.server.server_state.connections
    assert server.log.errors() == []
