"""Connection limit, control-message rate limit and the open-files limit, against real servers."""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sysstream import create_app, load_settings
from sysstream.sansio._ratelimit import CONTROL_BURST, ControlRateLimit
from sysstream.web._limits import (
    ConnectionLimit,
    connection_backstop,
    default_max_clients,
    resolve_max_clients,
)

from .conftest import RunningServer, receive_json, ws_client
from .test_security import StripDenialExtension

# Sans-I/O


def test_rate_limit_allows_a_burst_then_the_rate() -> None:
    limit = ControlRateLimit(rate=4, burst=5)
    assert [limit.allow(100.0) for _ in range(6)] == [True] * 5 + [False]
    assert not limit.allow(100.125)  # half a token refilled
    assert limit.allow(100.25)  # one token
    assert not limit.allow(100.25)
    assert [limit.allow(100.5 + i / 4) for i in range(20)] == [True] * 20  # at the rate
    assert not limit.allow(105.25)  # none saved up while sending at the rate
    assert not limit.allow(50.0)  # a clock that goes backwards refills nothing
    assert [limit.allow(1000.0) for _ in range(6)] == [True] * 5 + [False]  # capped at burst
    with pytest.raises(ValueError, match="expected rate > 0 and burst >= 1, got rate=0"):
        ControlRateLimit(rate=0)


def test_connection_limit() -> None:
    limit = ConnectionLimit(2)
    assert [limit.acquire() for _ in range(3)] == [True, True, False]
    assert (limit.active, limit.refused) == (2, 1)
    limit.release()
    assert limit.acquire()
    limit.release()
    limit.release()
    with pytest.raises(RuntimeError, match="expected a held connection slot, got none held"):
        limit.release()
    with pytest.raises(ValueError, match="expected a maximum of at least 1 client, got 0"):
        ConnectionLimit(0)


@pytest.mark.parametrize("files", [16, 1024, 20000, 1 << 20])
def test_default_sizing_leaves_room(files: int) -> None:
    clients = default_max_clients(files)
    assert 1 <= clients < connection_backstop(files) < files
    assert files - clients <= 256
    assert resolve_max_clients(7) == 7


def test_serving_raises_the_open_files_soft_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip(f"needs a finite hard limit above 256, got {hard}")
    code = (
        "import resource; from sysstream.web._limits import raise_open_files_limit, "
        "resolve_max_clients; print(raise_open_files_limit(), resolve_max_clients(None), "
        "resource.getrlimit(resource.RLIMIT_NOFILE)[1])"
    )

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    out = subprocess.run(
        [sys.executable, "-c", code], preexec_fn=lower, capture_output=True, text=True, timeout=30
    )
    raised, clients, kept_hard = map(int, out.stdout.split())
    assert (raised, kept_hard) == (hard, hard)
    assert clients == default_max_clients(hard)


# Against a real server


async def test_clients_over_the_limit_are_refused_cleanly(server_factory: Any) -> None:
    server: RunningServer = server_factory(interval=0.1, max_clients=3)
    url = server.ws_url()
    async with ws_client(url) as a, ws_client(url) as b, ws_client(url) as c:
        for _ in range(3):
            with pytest.raises(InvalidStatus) as refused:
                async with ws_client(url):
                    pass
            assert refused.value.response.status_code == 503
            assert b"server full: 3 clients" in refused.value.response.body
        for websocket in (a, b, c):  # the three keep streaming
            assert "cpu" in await receive_json(websocket)
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.get(server.http_url + "/healthz")).json()["clients"] == 3
    await server.wait_until(lambda: server.hub.clients == 0)
    async with ws_client(url) as again:  # slots are given back on disconnect
        assert "cpu" in await receive_json(again)
    assert server.log.errors() == []


async def test_a_full_server_without_denial_responses_closes_with_1013(
    server_factory: Any,
) -> None:
    """docs/security.md: where the ASGI server cannot send a 503 during the handshake, a
    full server accepts and closes at once with 1013 (try again later)."""
    settings = load_settings(interval=0.1, max_clients=1, port=0)
    inner = create_app(settings)
    hub = inner.state.hub
    server: RunningServer = server_factory(StripDenialExtension(inner), interval=0.1)  # type: ignore[arg-type]
    async with ws_client(server.ws_url()) as first:
        await server.wait_until(lambda: hub.clients == 1)
        async with ws_client(server.ws_url()) as refused, asyncio.timeout(5):
            with pytest.raises(ConnectionClosed):
                await refused.recv()  # closed before any message
            assert refused.close_code == 1013
            assert refused.close_reason == "server full: 1 clients connected"
        assert "cpu" in await receive_json(first)  # the client already there is unaffected
    await server.wait_until(lambda: hub.clients == 0)
    async with ws_client(server.ws_url()) as again:  # the slot was never taken by the refusal
        assert "cpu" in await receive_json(again)


async def test_control_flood_is_closed_with_1008(server_factory: Any) -> None:
    server: RunningServer = server_factory(interval=0.2)
    subscribe = orjson.dumps({"type": "subscribe", "fields": ["cpu"]}).decode()
    async with ws_client(server.ws_url()) as calm, ws_client(server.ws_url()) as flood:
        # Within the limit: every message is answered and the connection stays open.
        for _ in range(5):
            await calm.send(subscribe)
            while (await receive_json(calm)).get("type") != "subscribed":
                pass
            await asyncio.sleep(0.15)  # a person toggling fields, not a script
        for _ in range(CONTROL_BURST * 10):
            try:
                await flood.send(subscribe)
            except ConnectionClosed:
                break
        async with asyncio.timeout(10):
            with pytest.raises(ConnectionClosed):
                while True:
                    await flood.recv()
        assert flood.close_code == 1008
        assert flood.close_reason == "too many control messages"
        assert set(await receive_json(calm)) == {"cpu", "timestamp"}  # unaffected
    assert server.log.errors() == []
