"""Subscriptions over a real connection: query parameters, control messages, errors."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from .conftest import RunningServer, receive_json, ws_client
from .test_stream import parse_timestamp


async def next_data(websocket: Any) -> dict[str, Any]:
    """The next data message, skipping replies to control messages."""
    while True:
        message = await receive_json(websocket)
        if "type" not in message:
            return message


async def test_query_fields_choose_the_message_keys(server: RunningServer) -> None:
    url = server.ws_url() + "?fields=load,cpu_per_core,net"
    async with ws_client(url) as websocket:
        await next_data(websocket)
        message = await next_data(websocket)
    assert list(message) == ["load", "cpu_per_core", "net", "timestamp"]
    assert set(message["load"]) >= {"load1", "load5", "load15"}
    assert message["net"]["rx_bytes_per_s"] is not None


async def test_interval_is_a_multiple_of_the_tick(server: RunningServer) -> None:
    async with ws_client(server.ws_url() + "?interval=0.6") as websocket:
        first = await receive_json(websocket)
        second = await receive_json(websocket)
    gap = parse_timestamp(second["timestamp"]) - parse_timestamp(first["timestamp"])
    assert gap.total_seconds() == pytest.approx(0.6, abs=0.05)


async def test_history_arrives_first_then_live(server: RunningServer) -> None:
    await server.wait_until(lambda: len(server.hub.history) >= 5)
    async with ws_client(server.ws_url() + "?history=60&fields=cpu,memory") as websocket:
        history = await receive_json(websocket)
        live = await receive_json(websocket)
    assert history["type"] == "history"
    assert history["fields"] == ["cpu", "memory"]
    assert len(history["timestamps"]) >= 5
    assert len(history["values"]["cpu"]) == len(history["timestamps"])
    assert list(live) == ["cpu", "memory", "timestamp"]


async def test_subscribe_changes_the_stream_and_is_acknowledged(server: RunningServer) -> None:
    async with ws_client(server.ws_url()) as websocket:
        assert "cpu" in await receive_json(websocket)
        await websocket.send(
            orjson.dumps({"type": "subscribe", "fields": ["uptime", "swap"]}).decode()
        )
        async with asyncio.timeout(5):
            while (reply := await receive_json(websocket)).get("type") != "subscribed":
                assert "error" not in reply, reply
        assert reply["fields"] == ["uptime", "swap"]
        assert reply["interval"] == 0.2
        assert reply["timestamp"].endswith("Z")
        assert list(await receive_json(websocket)) == ["uptime", "swap", "timestamp"]


@pytest.mark.parametrize(
    "bad",
    [
        b"\x00\xff binary",
        "not json",
        '{"type": "subscribe", "fields": ["gpu"]}',
        '{"type": "subscribe", "fields": ["cpu"], "interval": 0.3}',
        '{"type": "hello"}',
        orjson.dumps({"type": "subscribe", "fields": ["cpu"] * 40}).decode(),
    ],
)
async def test_invalid_control_input_gets_an_error_and_the_stream_goes_on(
    server: RunningServer, bad: str | bytes
) -> None:
    async with ws_client(server.ws_url()) as websocket:
        await receive_json(websocket)
        await websocket.send(bad)
        async with asyncio.timeout(5):
            while "error" not in (reply := await receive_json(websocket)):
                pass
        assert list(reply) == ["error", "timestamp"]
        assert list(await receive_json(websocket)) == ["cpu", "memory", "disk", "timestamp"]


async def test_invalid_query_is_refused_with_1008(server: RunningServer) -> None:
    async with ws_client(server.ws_url() + "?fields=cpu,gpu") as websocket:
        error = await receive_json(websocket)
        assert "unknown field 'gpu'" in error["error"]
        with pytest.raises(ConnectionClosed) as closed:
            await receive_json(websocket)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


async def test_same_view_is_encoded_once_per_tick(server: RunningServer) -> None:
    urls = [server.ws_url()] * 3 + [server.ws_url() + "?fields=load"] * 2
    clients = [ws_client(url) for url in urls]
    sockets = await asyncio.gather(*(c.__aenter__() for c in clients))
    try:
        await server.wait_until(lambda: server.hub.clients == 5)
        await asyncio.gather(*(receive_json(ws) for ws in sockets))
        await asyncio.gather(*(receive_json(ws) for ws in sockets))
        assert server.call(lambda: server.hub.stats.encodings) == 2
    finally:
        await asyncio.gather(*(c.__aexit__(None, None, None) for c in clients))


@pytest.mark.parametrize("ws_protocol", [None, "websockets-sansio"])  # fast path, portable
async def test_views_past_max_views_are_refused_over_a_real_connection(
    server_factory: Any, ws_protocol: str | None
) -> None:
    running = server_factory(interval=0.2, max_views=2, ws_protocol=ws_protocol)
    async with (
        ws_client(running.ws_url() + "?fields=cpu") as first,
        ws_client(running.ws_url() + "?fields=cpu") as second,
        ws_client(running.ws_url() + "?fields=memory") as third,
    ):
        for websocket in (first, second, third):
            await next_data(websocket)
        # A third distinct view on connect: told why, then closed with 1008.
        async with ws_client(running.ws_url() + "?fields=disk") as refused:
            error = await receive_json(refused)
            with pytest.raises(ConnectionClosed):
                await receive_json(refused)
        assert "at most 2, --max-views" in error["error"]
        assert refused.close_code == 1008
        assert refused.close_reason == "too many views"
        # A subscribe to a third view: an error reply, and the stream goes on unchanged.
        await first.send(orjson.dumps({"type": "subscribe", "fields": ["swap"]}).decode())
        async with asyncio.timeout(5):
            while "error" not in (reply := await receive_json(first)):
                pass
        assert "too many distinct subscriptions" in reply["error"]
        assert list(await next_data(first)) == ["cpu", "timestamp"]
        # The last client of a view may move: its old view is freed.
        await third.send(orjson.dumps({"type": "subscribe", "fields": ["swap"]}).decode())
        async with asyncio.timeout(5):
            while (reply := await receive_json(third)).get("type") != "subscribed":
                pass
        assert list(await next_data(third)) == ["swap", "timestamp"]
        assert running.hub.stats.views == 2
