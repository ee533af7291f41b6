"""Fleet mode end to end: real redis-server, real agents (tasks and processes), real hubs
(uvicorn on port 0) and real WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
import redis
import redis.asyncio as redis_asyncio
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sysstream._sample import Sample
from sysstream.fleet._agent import load_agent_settings, run_agent
from sysstream.fleet._hub import HEALTH_CHECK_SECONDS, Fleet, RedisState
from sysstream.sansio._messages import format_timestamp
from sysstream.sansio._wire import decode_tick, encode_tick, ticks_channel

from .conftest import RunningServer, receive_json, ws_client
from .redis_server import RedisServer

INTERVAL = 0.2
Factory = Callable[..., RunningServer]


@asynccontextmanager
async def agent(url: str, host: str, interval: float = INTERVAL) -> AsyncIterator[None]:
    """An agent as a task on the test's loop."""
    settings = load_agent_settings(redis_url=url, host_id=host, interval=interval)
    task = asyncio.create_task(run_agent(settings))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def agent_process(url: str, host: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``sysstream agent`` as a user runs it, stopped with SIGTERM."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "sysstream", "agent", "--redis", url),
        *("--host-id", host, "--interval", str(INTERVAL)),
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(15):
            while b"publishing to" not in (line := await process.stderr.readline()):
                assert line, "agent exited before publishing"
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 10)


def hub(server_factory: Factory, url: str) -> RunningServer:
    return server_factory(redis_url=url, interval=INTERVAL, history_seconds=60)


async def hosts_of(server: RunningServer) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
        response = await client.get("/api/hosts")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def wait_for_status(server: RunningServer, wanted: dict[str, str]) -> dict[str, Any]:
    """Poll ``GET /api/hosts`` until each host in ``wanted`` has the wanted status."""
    async with asyncio.timeout(15):
        while True:
            body = await hosts_of(server)
            status = {entry["id"]: entry["status"] for entry in body["hosts"]}
            if all(status.get(host) == value for host, value in wanted.items()):
                return body
            await asyncio.sleep(0.05)


async def wait_for_backlog(client: redis.Redis, host: str, entries: int) -> None:
    """Poll until ``host``'s backlog in Redis holds ``entries`` ticks."""
    async with asyncio.timeout(10):
        while client.xlen(f"sysstream:{host}:backlog") < entries:
            await asyncio.sleep(0.05)


async def receive_until(
    websocket: Any, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message: dict[str, Any] = await receive_json(websocket, timeout)
            if predicate(message):
                return message


def is_data(message: dict[str, Any]) -> bool:
    return isinstance(message.get("cpu"), int | float) and "error" not in message


async def test_two_agents_are_listed_and_streamed(redis_url: str, server_factory: Factory) -> None:
    server = hub(server_factory, redis_url)
    async with agent_process(redis_url, "web1"), agent_process(redis_url, "db1"):
        body = await wait_for_status(server, {"web1": "online", "db1": "online"})
        assert body["redis"] == "connected"
        assert [entry["id"] for entry in body["hosts"]] == ["db1", "web1"]
        for entry in body["hosts"]:
            assert entry["interval"] == INTERVAL and entry["last_seen"].endswith("Z")
            assert all(0 <= entry[name] <= 100 for name in ("memory", "disk"))
        for host in ("web1", "db1"):
            url = server.ws_url(f"/api/hosts/{host}/metrics?fields=cpu,load")
            async with ws_client(url) as websocket:
                message = await receive_until(websocket, is_data)
                assert list(message) == ["cpu", "load", "timestamp"]
                assert message["load"]["load1"] >= 0
                await websocket.send('{"type": "subscribe", "fields": ["memory"]}')
                reply = await receive_until(websocket, lambda m: m.get("type") == "subscribed")
                assert reply["fields"] == ["memory"]
                after = await receive_until(websocket, lambda m: "memory" in m)
                assert list(after) == ["memory", "timestamp"]


async def test_two_hubs_serve_the_same_host(redis_url: str, server_factory: Factory) -> None:
    first, second = hub(server_factory, redis_url), hub(server_factory, redis_url)
    async with agent(redis_url, "web1"):
        for server in (first, second):
            await wait_for_status(server, {"web1": "online"})
        async with (
            ws_client(first.ws_url("/api/hosts/web1/metrics")) as one,
            ws_client(second.ws_url("/api/hosts/web1/metrics")) as two,
        ):
            seen: list[list[str]] = []
            for websocket in (one, two):
                stamps = [(await receive_until(websocket, is_data))["timestamp"] for _ in range(8)]
                assert stamps == sorted(set(stamps)), "each tick once, in order"
                seen.append(stamps)
            # Both hubs relay the agent's ticks: the same sample times, not their own.
            assert len(set(seen[0]) & set(seen[1])) >= 4


async def test_every_hosts_history_in_one_bounded_request(
    redis_url: str, server_factory: Factory
) -> None:
    server = hub(server_factory, redis_url)
    async with agent(redis_url, "web1"), agent(redis_url, "db1"):
        await wait_for_status(server, {"web1": "online", "db1": "online"})
        await server.wait_until(
            lambda: all(len(h.history) >= 12 for h in server.app.state.fleet.hosts.values())
        )
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
            single = {
                host: (await http.get(f"/api/hosts/{host}/metrics/history?seconds=60")).json()
                for host in ("web1", "db1")
            }
            response = await http.get("/api/hosts/history?seconds=60&fields=cpu,memory&points=5")
            refused = await http.get("/api/hosts/history?points=301")
    body = response.json()
    assert response.status_code == 200
    assert (body["seconds"], body["fields"], body["points"]) == (60, ["cpu", "memory"], 5)
    assert list(body["hosts"]) == ["db1", "web1"]
    for host, history in body["hosts"].items():
        assert 3 <= len(history["timestamps"]) <= 5
        # The thinned points are the host's own ticks, values and all, newest included.
        full = dict(zip(single[host]["timestamps"], single[host]["values"]["cpu"], strict=True))
        thinned = dict(zip(history["timestamps"], history["values"]["cpu"], strict=True))
        shared = [t for t in thinned if t in full]  # newer ticks may have come since
        assert len(shared) >= 2 and all(thinned[t] == full[t] for t in shared)
        assert history["timestamps"][-1] >= max(full)  # asked after: as new or newer
    assert refused.status_code == 400
    assert refused.json()["error"] == "expected points from 1 to 300, got 301"


async def test_history_errors_name_the_seconds_parameter(
    redis_url: str, server_factory: Factory
) -> None:
    server = hub(server_factory, redis_url)  # --history-seconds 60
    async with agent(redis_url, "web1"):
        await wait_for_status(server, {"web1": "online"})
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
            answers = [
                await http.get(f"{path}?seconds={seconds}")
                for path in ("/api/hosts/web1/metrics/history", "/api/hosts/history")
                for seconds in ("4000", "-5")
            ]
    assert [(r.status_code, r.json()["error"]) for r in answers] == [
        (400, "expected seconds from 0 to 60, got 4000"),
        (400, "expected seconds from 0 to 60, got -5"),
    ] * 2


async def test_a_hub_that_starts_late_backfills_history(
    redis_url: str, server_factory: Factory
) -> None:
    async with agent(redis_url, "web1"):
        with redis.Redis.from_url(redis_url) as client:
            await wait_for_backlog(client, "web1", 8)
        server = hub(server_factory, redis_url)
        await wait_for_status(server, {"web1": "online"})
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
            response = await http.get("/api/hosts/web1/metrics/history?seconds=60&fields=cpu,net")
        body = response.json()
        assert response.status_code == 200 and body["fields"] == ["cpu", "net"]
        assert len(body["timestamps"]) >= 8 and body["timestamps"] == sorted(body["timestamps"])
        assert len(body["values"]["net"]) == len(body["timestamps"])
        async with ws_client(server.ws_url("/api/hosts/web1/metrics?history=60")) as websocket:
            history = await receive_json(websocket)
            assert history["type"] == "history" and len(history["timestamps"]) >= 8
            assert is_data(await receive_until(websocket, is_data))


async def test_a_host_set_flooded_with_names_is_read_within_max_hosts(
    redis_url: str, server_factory: Factory
) -> None:
    # Any agent may ZADD to sysstream:hosts. With two million names there, a hub read them
    # all at every connect, took longer than the command timeout, and never connected.
    invented = 300_000
    async with agent(redis_url, "web1"):
        with redis.Redis.from_url(redis_url) as client:
            await wait_for_backlog(client, "web1", 8)
            older = time.time() - 600  # credible scores, older than web1's
            for start in range(0, invented, 50_000):
                client.zadd(
                    "sysstream:hosts",
                    {f"invented{n}": older for n in range(start, start + 50_000)},
                )
            sent_before = client.info("stats")["total_net_output_bytes"]
            server = server_factory(
                redis_url=redis_url, interval=INTERVAL, history_seconds=60, max_hosts=4
            )
            body = await wait_for_status(server, {"web1": "online"})
            sent = client.info("stats")["total_net_output_bytes"] - sent_before
        assert body["redis"] == "connected"
        # Four hosts' names and web1's backlog (60 s at 0.2 s, ~2 KB a tick), not 300,000
        # names (~10 MB).
        assert sent < 2_000_000, sent
        fleet = server.app.state.fleet
        assert len(fleet.hosts) == 4 and "web1" in fleet.hosts
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
            response = await http.get("/api/hosts/web1/metrics/history?seconds=60&fields=cpu")
        assert response.status_code == 200 and len(response.json()["timestamps"]) >= 8


async def test_invented_hosts_give_way_to_a_host_that_publishes(
    redis_url: str, server_factory: Factory
) -> None:
    # Any agent may ZADD to sysstream:hosts: three names scored 200 s ahead once filled
    # --max-hosts 3, were listed online with a last_seen in the future, and web1 was
    # locked out of the hub for good.
    invented = ["fake0", "fake1", "fake2"]
    with redis.Redis.from_url(redis_url) as client:
        client.zadd("sysstream:hosts", dict.fromkeys(invented, time.time() + 200))
    server = server_factory(redis_url=redis_url, interval=INTERVAL, history_seconds=60, max_hosts=3)
    fleet = server.app.state.fleet
    evaluator = server.app.state.alerts
    await server.wait_until(lambda: len(fleet.hosts) == 3 and fleet.state is RedisState.CONNECTED)
    body = await hosts_of(server)
    assert [entry["id"] for entry in body["hosts"]] == invented
    for entry in body["hosts"]:  # listed, but no tick: offline, and not seen "in the future"
        assert entry["status"] == "offline"
        assert entry["last_seen"] <= format_timestamp(time.time())
    await server.wait_until(lambda: len(evaluator.listeners) == 4)  # every host, and fakes'
    first = server.call(lambda: next(iter(fleet.silent)))
    async with ws_client(server.ws_url(f"/api/hosts/{first}/metrics?alerts=1")) as websocket:
        await receive_json(websocket)  # the active alerts; the stream is open
        async with agent(redis_url, "web1"):
            body = await wait_for_status(server, {"web1": "online"})
            with pytest.raises(ConnectionClosed):  # its clients are cut: the host is gone
                async with asyncio.timeout(10):
                    while True:
                        await websocket.recv()
            async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
                health = (await http.get("/healthz")).json()["fleet"]
                gone = await http.get(f"/api/hosts/{first}/metrics")
    assert sorted(entry["id"] for entry in body["hosts"]) == sorted(
        ["web1", *(host for host in invented if host != first)]
    )
    assert health["hosts"] == 3 and health["ignored_host_ticks"] == 0
    assert gone.status_code == 404
    # The forgotten host's alert subscription went with it: one per served host, plus
    # the hub's own.
    assert server.call(lambda: len(evaluator.listeners)) == 4


async def test_a_starting_hub_prefers_a_host_with_a_backlog_to_invented_names(
    redis_url: str, server_factory: Factory
) -> None:
    async with agent(redis_url, "web1"):
        with redis.Redis.from_url(redis_url) as client:
            await wait_for_backlog(client, "web1", 8)
            client.zadd("sysstream:hosts", {f"fake{n}": time.time() + 200 for n in range(3)})
        server = server_factory(
            redis_url=redis_url, interval=INTERVAL, history_seconds=60, max_hosts=3
        )
        body = await wait_for_status(server, {"web1": "online"})
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
            response = await http.get("/api/hosts/web1/metrics/history?seconds=60&fields=cpu")
            health = (await http.get("/healthz")).json()["fleet"]
    # web1 was chosen at connect, so its backlog was read into history: not only the ticks
    # since it took an invented name's slot.
    assert response.status_code == 200 and len(response.json()["timestamps"]) >= 8
    listed = {entry["id"]: entry["status"] for entry in body["hosts"]}
    assert len(listed) == 3 and listed.pop("web1") == "online"
    assert set(listed.values()) == {"offline"} and set(listed) < {"fake0", "fake1", "fake2"}
    assert health["ignored_host_ticks"] == 1  # the third invented name, at connect


async def test_a_backlog_of_large_ticks_is_read_within_the_hosts_history_bound(
    redis_url: str, server_factory: Factory
) -> None:
    # An agent may XADD what it likes to its backlog: an hour of 120 KB ticks (450 MB)
    # was read in one reply at connect, and took a hub to 900 MB.
    now = time.time()
    filler = {f"e{n}": "x" * 4000 for n in range(30)}  # ~120 KB of credible error texts
    with redis.Redis.from_url(redis_url) as client:
        for start in range(0, 600, 100):
            pipe = client.pipeline(transaction=False)
            for n in range(start, start + 100):
                tick = lie("big", tick=n, timestamp=now - 600 + n, errors=filler)
                pipe.xadd("sysstream:big:backlog", {"tick": tick})
            pipe.execute()
        client.zadd("sysstream:hosts", {"big": now})
        sent_before = client.info("stats")["total_net_output_bytes"]
        server = server_factory(redis_url=redis_url, interval=INTERVAL, history_seconds=3600)
        fleet = server.app.state.fleet
        await server.wait_until(
            lambda: "big" in fleet.hosts and fleet.state is RedisState.CONNECTED, timeout=15
        )
        sent = client.info("stats")["total_net_output_bytes"] - sent_before
    # 16 MiB of the host's history and one more page (64 entries), not 72 MB.
    assert sent < 26_000_000, sent
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
        response = await http.get("/api/hosts/big/metrics/history?seconds=3600&fields=cpu")
    timestamps = response.json()["timestamps"]
    assert response.status_code == 200 and len(timestamps) >= 100
    assert timestamps[-1] == pytest.approx(now - 1, abs=0.01)  # the newest ticks were kept


async def test_redis_killed_and_restarted_mid_stream(
    redis_url: str, redis_server: RedisServer, server_factory: Factory
) -> None:
    server = hub(server_factory, redis_url)
    async with agent(redis_url, "web1"):
        await wait_for_status(server, {"web1": "online"})
        async with ws_client(server.ws_url("/api/hosts/web1/metrics")) as websocket:
            await receive_until(websocket, is_data)
            redis_server.kill()
            error = await receive_until(websocket, lambda m: "error" in m)
            assert list(error) == ["error", "timestamp"]
            assert error["error"].startswith("Metric collection failed: ")
            assert "source unavailable: redis connection lost" in error["error"]
            assert (await hosts_of(server))["redis"] == "disconnected"
            redis_server.start()  # same port, empty
            await receive_until(websocket, is_data, timeout=30)
            await wait_for_status(server, {"web1": "online"})
        assert (await hosts_of(server))["redis"] == "connected"


async def test_a_redis_that_stops_answering_is_noticed_then_reconnected(
    server_factory: Factory,
) -> None:
    frozen = RedisServer()  # its own: frozen mid-test, the session's stays usable
    frozen.start()
    assert frozen.process is not None
    try:
        server = hub(server_factory, frozen.url)
        # Idle but alive (no agent yet): answered pings keep the connection.
        await server.wait_until(lambda: server.app.state.fleet.state.value == "connected", 10)
        await asyncio.sleep(2 * HEALTH_CHECK_SECONDS + 1)  # the time being checked
        assert (await hosts_of(server))["redis"] == "connected"
        assert not [r for r in server.log.records if "unreachable" in r.getMessage()]
        async with agent(frozen.url, "web1"):
            await wait_for_status(server, {"web1": "online"})
            async with ws_client(server.ws_url("/api/hosts/web1/metrics")) as websocket:
                await receive_until(websocket, is_data)
                frozen.process.send_signal(signal.SIGSTOP)  # the socket stays open, mute
                lost = await receive_until(
                    websocket, lambda m: "redis connection lost" in m.get("error", ""), 30
                )
                assert list(lost) == ["error", "timestamp"]
                assert (await hosts_of(server))["redis"] == "disconnected"
                frozen.process.send_signal(signal.SIGCONT)
                await receive_until(websocket, is_data, timeout=30)
        assert (await hosts_of(server))["redis"] == "connected"
        logged = [r.getMessage() for r in server.log.records]
        assert any("no answer from Redis within 5 s of a ping" in line for line in logged)
    finally:
        frozen.kill()


async def test_a_stopped_agent_goes_offline_and_comes_back(
    redis_url: str, server_factory: Factory
) -> None:
    server = hub(server_factory, redis_url)
    async with contextlib.AsyncExitStack() as first_agent:
        await first_agent.enter_async_context(agent(redis_url, "web1"))
        await wait_for_status(server, {"web1": "online"})
        async with ws_client(server.ws_url("/api/hosts/web1/metrics")) as websocket:
            await receive_until(websocket, is_data)
            await first_agent.aclose()  # the agent stops; the client stays
            error = await receive_until(websocket, lambda m: "error" in m)
            assert "source unavailable: host web1 offline: no tick for" in error["error"]
            await wait_for_status(server, {"web1": "offline"})
            async with agent(redis_url, "web1"):
                await receive_until(websocket, is_data)
                await wait_for_status(server, {"web1": "online"})
    messages = [r.getMessage() for r in server.log.records]
    assert "host web1 offline (no tick for 3 intervals)" in messages


async def test_a_malformed_message_is_logged_once_and_skipped(
    redis_url: str, server_factory: Factory
) -> None:
    server = hub(server_factory, redis_url)
    async with agent(redis_url, "web1"):
        await wait_for_status(server, {"web1": "online"})
        async with ws_client(server.ws_url("/api/hosts/web1/metrics")) as websocket:
            await receive_until(websocket, is_data)
            forged = encode_tick("web2", 1.0, Sample(1, 1.0, {"cpu": 1.0}))
            with redis.Redis.from_url(redis_url) as client:
                for _ in range(3):
                    client.publish(ticks_channel("web1"), b"{not json")
                client.publish(ticks_channel("web1"), forged)  # another host's tick
                client.publish("sysstream:bad host:ticks", b"{}")
            # The stream goes on past them.
            for _ in range(3):
                await receive_until(websocket, is_data)
    fleet = server.app.state.fleet
    assert server.call(lambda: fleet.skipped) == 5
    warnings = [r.getMessage() for r in server.log.records if "malformed" in r.getMessage()]
    assert len(warnings) == 1, warnings  # once a minute, whichever host or channel
    assert "from host web1: expected a JSON object, got invalid JSON" in warnings[0]
    assert [entry["id"] for entry in (await hosts_of(server))["hosts"]] == ["web1"]


async def test_an_unknown_host_is_refused_with_404(redis_url: str, server_factory: Factory) -> None:
    server = hub(server_factory, redis_url)
    with pytest.raises(InvalidStatus) as refused:
        async with ws_client(server.ws_url("/api/hosts/nosuch/metrics")):
            pass
    assert refused.value.response.status_code == 404
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
        for path in (
            "/api/hosts/nosuch/metrics",
            "/api/hosts/nosuch/metrics/history",
            "/api/hosts/nosuch/metrics/schema",
        ):
            response = await http.get(path)
            assert response.status_code == 404
            assert response.json()["error"] == "unknown host 'nosuch'"


async def test_a_hosts_schema_has_its_own_interval_and_what_its_agent_publishes(
    redis_url: str, server_factory: Factory
) -> None:
    server = hub(server_factory, redis_url)  # ticks every 0.2 s
    async with agent(redis_url, "db1", 0.4):
        await wait_for_status(server, {"db1": "online"})
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
            host = (await http.get("/api/hosts/db1/metrics/schema")).json()
            local = (await http.get("/api/system/metrics/schema")).json()
    assert local["interval"] == INTERVAL and "processes" in local["groups"]
    assert host["interval"] == 0.4  # the agent's, to which every stream interval is bound
    assert host["hostname"] == "db1"
    assert host["store"] is False and host["processes"] is False
    # Agents publish the groups kept in history: no processes.
    kept = {name for name, group in local["groups"].items() if group["history"]}
    assert set(host["groups"]) == kept and "processes" not in kept
    assert host["groups"]["cpu"] == local["groups"]["cpu"]


@pytest.fixture(scope="module")
def password_redis() -> Iterator[RedisServer]:
    server = RedisServer(password="s3cr3t-pw")
    server.start()
    yield server
    server.kill()


async def test_a_password_protected_redis(
    password_redis: RedisServer, server_factory: Factory
) -> None:
    url = password_redis.url
    assert ":s3cr3t-pw@" in url
    server = hub(server_factory, url)
    wrong = hub(server_factory, url.replace("s3cr3t-pw", "wrong"))
    async with agent(url, "secure1"):
        await wait_for_status(server, {"secure1": "online"})
        async with ws_client(server.ws_url("/api/hosts/secure1/metrics")) as websocket:
            assert is_data(await receive_until(websocket, is_data))
    assert (await hosts_of(wrong)) | {"timestamp": None} == {
        "redis": "connecting",
        "hosts": [],
        "timestamp": None,
    }
    logged = [r.getMessage() for r in wrong.log.records]
    assert any("redis at redis://:***@127.0.0.1" in line for line in logged), logged
    assert not any("s3cr3t" in line or "wrong" in line.split("(")[0] for line in logged)


async def test_the_hub_stores_history_for_every_host(
    redis_url: str, server_factory: Factory, tmp_path: Any
) -> None:
    server = server_factory(
        redis_url=redis_url, interval=INTERVAL, no_store=False, data_dir=str(tmp_path),
        flush_interval=0.2,
    )  # fmt: skip
    store = server.app.state.store
    sent: dict[float, dict[str, Any]] = {}  # what the agent published, by timestamp (ms)
    async with redis_asyncio.from_url(redis_url) as client, client.pubsub() as pubsub:
        await pubsub.subscribe(ticks_channel("web1"))
        async with agent(redis_url, "web1"), asyncio.timeout(20):
            await wait_for_status(server, {"web1": "online"})
            while len(sent) < 10:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    tick = decode_tick(message["data"], host="web1")
                    sent[round(tick.sample.timestamp, 3)] = tick.sample.values
            since = min(sent) - 0.001  # recent enough for the raw tier
            until = max(sent) + 0.001
            while len(stored := await stored_points(store, "web1", since, until)) < 10:
                await asyncio.sleep(0.1)  # the store's writer flushes on its own schedule
    # Every stored point is one the agent sent, with the values it sent.
    assert set(stored) <= set(sent), sorted(set(stored) - set(sent))
    for timestamp, (cpu, memory) in stored.items():
        assert (cpu, memory) == (sent[timestamp]["cpu"], sent[timestamp]["memory"]), timestamp
    assert any(cpu is not None for cpu, _ in stored.values())


async def stored_points(
    store: Any, host: str, since: float, until: float
) -> dict[float, tuple[Any, Any]]:
    """The raw points the store holds for ``host`` in [since, until]: (cpu, memory)."""
    body = await asyncio.to_thread(store.query, since, until, ["cpu", "memory"], None, host=host)
    assert body["step"] == INTERVAL, body["step"]  # raw samples, not a roll-up
    values = body["values"]
    return dict(
        zip(body["timestamps"], zip(values["cpu"], values["memory"], strict=True), strict=True)
    )


def lie(host: str, **changes: Any) -> bytes:
    """A tick for ``host`` that is well-formed but for ``changes``."""
    message = {"v": 1, "host": host, "interval": 1.0, "tick": 1, "timestamp": time.time()}
    message |= {"values": {"cpu": 1.0, "memory": 2.0, "disk": 3.0}, "errors": {}}
    return orjson.dumps(message | changes)


def deep(host: str, depth: int) -> bytes:
    nested = b'{"x":' * depth + b"1" + b"}" * depth
    return lie(host, values={"cpu": "HERE"}).replace(b'"HERE"', nested)


async def test_fleet_members_that_lie_leave_the_hub_serving_real_hosts(
    redis_url: str, server_factory: Factory
) -> None:
    # Issue 13: each of these once stopped ingest, silenced a real host, 500'd /api/hosts,
    # or took hundreds of MB. Now each is dropped and counted, and web1 streams on.
    with redis.Redis.from_url(redis_url) as client:
        # Lies already in Redis when a hub starts: a backlog entry and host-set scores.
        client.xadd("sysstream:liar0:backlog", {"tick": lie("liar0", interval=1e-20)})
        client.zadd("sysstream:hosts", {"liar0": time.time(), "liar1": math.inf})
        client.zadd("sysstream:hosts", {"liar2": 1e12})
    server = server_factory(
        redis_url=redis_url, interval=INTERVAL, history_seconds=60, max_hosts=20
    )
    liars = [
        lie("liar3", interval=1e-20),  # once raised in the history ring and stopped ingest
        lie("web1", timestamp=1e12),  # once hid every real tick of web1 behind it
        lie("web1", timestamp=time.time() + 10 * 365 * 86400),
        deep("web1", 300),
        lie("web1", values={"cpu": "x" * 250_000}),  # 250 KB: once filled a ring to ~0.9 GB
    ]
    async with agent(redis_url, "web1"):
        await wait_for_status(server, {"web1": "online"})
        url = server.ws_url("/api/hosts/web1/metrics?fields=cpu,memory")
        async with (
            ws_client(url) as websocket,
            httpx.AsyncClient(base_url=server.http_url, timeout=5) as http,
        ):
            await receive_until(websocket, is_data)
            with redis.Redis.from_url(redis_url) as client:
                for payload in liars:
                    client.publish(
                        ticks_channel("web1" if b'"web1"' in payload else "liar3"), payload
                    )
                pipe = client.pipeline(transaction=False)
                for number in range(10_000):  # once 270 MB and a steady 21% CPU
                    pipe.publish(ticks_channel(f"h{number}"), lie(f"h{number}"))
                for number in range(200):  # malformed on distinct channels
                    pipe.publish(ticks_channel(f"junk{number}"), b"{not json")
                pipe.execute()
            await server.wait_until(lambda: server.app.state.fleet.refused >= 9_980, timeout=30)
            # web1's real ticks still flow, and still newer than any lie.
            before = time.time()
            for _ in range(3):
                # Both figures read: on a loaded machine a tick's memory read may miss its
                # cutoff (null, named under errors), which says nothing about the lies.
                message = await receive_until(
                    websocket, lambda m: is_data(m) and m.get("memory") is not None
                )
            assert message["memory"] > 0
            assert (await http.get("/api/hosts/web1/metrics")).status_code == 200
            listed = await http.get("/api/hosts")
            assert listed.status_code == 200
            assert listed.json()["redis"] == "connected"
            web1 = next(entry for entry in listed.json()["hosts"] if entry["id"] == "web1")
            assert web1["status"] == "online" and web1["last_seen"] >= format_timestamp(before - 1)
            health = (await http.get("/healthz")).json()["fleet"]
    fleet = server.app.state.fleet
    assert health["hosts"] == len(fleet.hosts) == 20  # web1 and the first 19 invented ones
    assert health["malformed_messages"] >= len(liars) + 200
    assert health["ignored_host_ticks"] >= 9_980
    assert "liar3" not in fleet.hosts
    for host in ("liar0", "liar1", "liar2"):  # listed in Redis; nothing credible served
        if host in fleet.hosts:
            assert fleet.hosts[host].record.latest is None
    warnings = [r.getMessage() for r in server.log.records if r.getMessage().startswith("fleet:")]
    assert len(warnings) <= 3, warnings  # the log is throttled across hosts and channels
    assert not server.log.errors()


async def test_the_next_redis_outage_is_retried_from_the_first_delay_again() -> None:
    server = RedisServer()
    server.start()
    fleet = Fleet(server.url, history_seconds=60, max_backoff=4.0)

    async def state_is(wanted: RedisState, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while fleet.state is not wanted:
                await asyncio.sleep(0.01)

    await fleet.start()
    try:
        await state_is(RedisState.CONNECTED)
        # A long outage: tries 0.1-0.2 s apart, then twice as far each time, up to 2-4 s.
        server.kill()
        await state_is(RedisState.DISCONNECTED)
        await asyncio.sleep(3.5)
        server.start()
        await state_is(RedisState.CONNECTED)
        server.kill()
        await state_is(RedisState.DISCONNECTED)
        lost = time.monotonic()
        server.start()
        await state_is(RedisState.CONNECTED)
        # Reconnected after the first delay (0.1-0.2 s), not the long outage's last (2-4 s).
        assert time.monotonic() - lost < 1.5
    finally:
        await fleet.stop()
        server.kill()
