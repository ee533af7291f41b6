"""sysstream's WebSocket protocol against real servers: the handover from the ASGI app, and
what every way of leaving gives back (hub membership, connection slot, task, connection)."""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import os
import socket
import statistics
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI, WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import ConnectionClosed

import sysstream
from sysstream.sansio._ratelimit import CONTROL_BURST
from sysstream.web._router import MetricsRouter

from .conftest import RunningServer, receive_json, stop_server, ws_client

ROOT = Path(__file__).resolve().parent.parent
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


def test_a_large_message_in_small_reads_costs_about_what_uvicorns_class_costs() -> None:
    """A generous regression guard for linear receive (benchmarks/receive.py measures it):
    4 MiB in 1 KiB reads cost ~90× uvicorn's own class when each read rescanned the frame
    so far; linear is ~1.4×."""
    spec = importlib.util.spec_from_file_location("receive", ROOT / "benchmarks" / "receive.py")
    assert spec is not None and spec.loader is not None
    receive = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(receive)
    result = receive.measure_receive(size=4 << 20, read=1024, runs=3)
    assert result["ratio_median"] < 10, result


# Settings as a user of `uvicorn app:app --ws sysstream:WebSocketProtocol` sets them, on the
# app's own route and on the stream.

PONG, PING = 0xA, 0x9


def echo_app() -> FastAPI:
    app, metrics = stream_app()
    app.state.hub = metrics.hub  # as create_app does: RunningServer.hub reads it

    @app.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await websocket.send_bytes(message["bytes"])

    return app


def handshake(path: str) -> bytes:
    return HANDSHAKE.replace(b"/api/system/metrics", path.encode())


def raw_connect_to(port: int, path: str) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(handshake(path))
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    head, _, rest = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, rest


def frames_until_close(
    sock: socket.socket, rest: bytes, on_ping: Callable[[bytes, float], None] | None = None
) -> tuple[list[float], int | None, float]:
    """Reads server frames until its close frame or EOF: ping arrival times (monotonic),
    the close code (None on EOF without one), and when the close came."""
    pings: list[float] = []
    try:
        while True:
            opcode, payload, rest = read_frame(sock, rest)
            now = time.monotonic()
            if opcode == PING:
                pings.append(now)
                if on_ping is not None:
                    on_ping(payload, now)
            elif opcode == CLOSE:
                return pings, struct.unpack("!H", payload[:2])[0], now
    except (ConnectionError, OSError):
        return pings, None, time.monotonic()


@pytest.mark.parametrize("path", ["/echo", "/api/system/metrics"])
async def test_an_unanswered_ping_times_out_after_ws_ping_timeout_with_1011(
    server_factory: Any, path: str
) -> None:
    options = {"ws_ping_interval": 1.0, "ws_ping_timeout": 0.3}
    server: RunningServer = server_factory(echo_app(), uvicorn_options=options, **SETTINGS)
    sock, rest = await asyncio.to_thread(raw_connect_to, server.port, path)
    try:
        sock.settimeout(10)
        pings, code, closed_at = await asyncio.to_thread(frames_until_close, sock, rest)
    finally:
        sock.close()
    assert len(pings) == 1 and code == 1011, (pings, code)
    # Measured from the ping (0.3 s), not from the next keepalive round (1 s later).
    assert 0.25 <= closed_at - pings[0] < 0.9, closed_at - pings[0]
    # A stream client cut this way counts as dropped, as one cut by the fan-out does.
    await server.wait_until(lambda: server.hub.clients == 0)
    assert server.hub.stats.drops == (1 if path == "/api/system/metrics" else 0)
    assert server.log.errors() == []


async def test_a_slow_pong_within_ws_ping_timeout_keeps_the_connection(
    server_factory: Any,
) -> None:
    """Pongs 0.6 s late with pings every 0.2 s and a 2 s timeout: alive, and no ping is
    sent while one is unanswered (as in uvicorn)."""
    options = {"ws_ping_interval": 0.2, "ws_ping_timeout": 2.0}
    server: RunningServer = server_factory(echo_app(), uvicorn_options=options, **SETTINGS)
    sock, rest = await asyncio.to_thread(raw_connect_to, server.port, "/echo")
    pending: list[tuple[bytes, float]] = []

    def late_pong(payload: bytes, now: float) -> None:
        pending.append((payload, now))

    def run() -> tuple[list[float], int | None, float]:
        sock.settimeout(0.05)
        started, pings, buffer = time.monotonic(), [], rest
        while time.monotonic() - started < 3.0:
            while pending and time.monotonic() - pending[0][1] >= 0.6:
                sock.sendall(client_frame(PONG, pending.pop(0)[0]))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return pings, None, time.monotonic()
            buffer += chunk
            while len(buffer) >= 2 and len(buffer) >= 2 + (buffer[1] & 0x7F):
                opcode, payload, buffer = read_frame(sock, buffer)
                if opcode == CLOSE:
                    return pings, struct.unpack("!H", payload[:2])[0], time.monotonic()
                if opcode == PING:
                    pings.append(time.monotonic())
                    late_pong(payload, time.monotonic())
        return pings, 0, time.monotonic()

    try:
        pings, code, _ = await asyncio.to_thread(run)
        sock.settimeout(5)
        sock.sendall(client_frame(0x2, b"still here"))
        opcode, payload, _ = await asyncio.to_thread(read_frame, sock, b"")
    finally:
        sock.close()
    assert code == 0, f"closed with {code}"
    assert (opcode, payload) == (0x2, b"still here")
    # One ping per ~0.8 s (0.6 s pong latency + the next round), not one per 0.2 s.
    assert 2 <= len(pings) <= 5, pings


async def test_ws_ping_interval_sets_the_keepalive_rate(server_factory: Any) -> None:
    options = {"ws_ping_interval": 0.25, "ws_ping_timeout": 1.0}
    server: RunningServer = server_factory(echo_app(), uvicorn_options=options, **SETTINGS)
    sock, rest = await asyncio.to_thread(raw_connect_to, server.port, "/echo")
    answered: list[float] = []

    def answer(payload: bytes, now: float) -> None:
        sock.sendall(client_frame(PONG, payload))
        answered.append(now)
        if len(answered) == 6:
            sock.sendall(client_frame(CLOSE, struct.pack("!H", 1000)))

    try:
        sock.settimeout(10)
        pings, code, _ = await asyncio.to_thread(frames_until_close, sock, rest, answer)
    finally:
        sock.close()
    assert code == 1000, code  # our close, echoed: no timeout on the way
    gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
    # 0.25 s apart, not the server's own 0.5 s (stall_timeout / 2); loose for a busy host.
    assert 0.15 < statistics.median(gaps) < 0.4, gaps


async def test_ws_max_size_bounds_the_apps_messages(server_factory: Any) -> None:
    server: RunningServer = server_factory(
        echo_app(), uvicorn_options={"ws_max_size": 1000}, **SETTINGS
    )
    async with ws_client(server.ws_url("/echo"), max_size=None) as websocket:
        await websocket.send(b"x" * 1000)
        assert await asyncio.wait_for(websocket.recv(), 5) == b"x" * 1000
        await websocket.send(b"x" * 1001)
        assert await until_closed(websocket) == 1009
    assert server.log.errors() == []


@pytest.mark.parametrize("path", ["/echo", "/api/system/metrics"])
@pytest.mark.parametrize("opcode", [PING, PONG], ids=["pings", "pongs"])
async def test_a_ping_flood_is_closed_with_1008(
    server_factory: Any, path: str, opcode: int
) -> None:
    server: RunningServer = server_factory(echo_app(), **SETTINGS)
    sock, rest = await asyncio.to_thread(raw_connect_to, server.port, path)
    try:
        sock.settimeout(10)
        burst = b"".join(client_frame(opcode, b"%d" % i) for i in range(CONTROL_BURST * 5))
        sock.sendall(burst)
        pongs = 0
        while True:
            frame_opcode, payload, rest = await asyncio.to_thread(read_frame, sock, rest)
            pongs += frame_opcode == PONG
            if frame_opcode == CLOSE:
                break
    finally:
        sock.close()
    assert struct.unpack("!H", payload[:2])[0] == 1008
    assert pongs <= CONTROL_BURST, pongs  # the burst is answered, the flood is not
    # Everyone else is served as before.
    async with ws_client(server.ws_url()) as websocket:
        assert "cpu" in await receive_json(websocket)
    assert server.log.errors() == []


async def test_serves_ping_interval_and_stall_timeout_drive_the_keepalive(
    server_factory: Any,
) -> None:
    """``--ping-interval`` sets how often a stream is pinged, ``--stall-timeout`` how long
    an unanswered ping is given (not half of it, as before pings were decoupled)."""
    server: RunningServer = server_factory(interval=0.1, ping_interval=0.3, stall_timeout=0.8)
    connected = time.monotonic()
    sock, rest = await asyncio.to_thread(raw_connect_to, server.port, "/api/system/metrics")
    try:
        sock.settimeout(10)
        pings, code, closed_at = await asyncio.to_thread(frames_until_close, sock, rest)
    finally:
        sock.close()
    assert code == 1011 and len(pings) == 1, (code, pings)  # no new ping while one is unanswered
    assert pings[0] - connected < 0.8, pings[0] - connected  # within one ping interval
    assert 0.7 <= closed_at - pings[0] < 1.4, closed_at - pings[0]
