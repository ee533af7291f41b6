"""Alerts end to end on a real server: the API, silences, Prometheus, the opt-in stream,
webhook notifications to a real receiver, and continuity across a restart."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sysstream import create_app, load_settings
from sysstream._sample import Sample
from sysstream.sansio import fingerprint
from sysstream.store import AlertLog

from .alert_receiver import Receiver
from .conftest import RunningServer, receive_json, stop_server, ws_client

TOKEN = "alerts-test-token-0123456789abc"
Factory = Callable[..., RunningServer]


class DialSource:
    """Ticks every ``interval`` with the cpu value the test dials in."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.cpu = 10.0
        self.tick = 0

    async def next_sample(self, groups: frozenset[str]) -> Sample:
        await asyncio.sleep(self.interval)
        self.tick += 1
        return Sample(self.tick, time.time(), {"cpu": self.cpu, "memory": 50.0, "disk": 40.0})

    def close(self) -> None:
        pass


def rule_file(tmp_path: Path, receiver: Receiver | None, extra: str = "") -> str:
    path = tmp_path / "alerts.toml"
    notify = f'[[notify]]\nwebhook = "{receiver.url()}"\nname = "hook"\n' if receiver else ""
    path.write_text(
        "builtin = false\n"
        "[rules.hot]\n"
        'metric = "cpu"\naggregate = "last"\nwarning = 80\ncritical = 95\nrepeat = 0\n'
        'summary = "CPU hot"\n' + extra + notify
    )
    return str(path)


def start(factory: Factory, source: DialSource, **settings: Any) -> RunningServer:
    settings.setdefault("interval", source.interval)
    app = create_app(load_settings(port=0, **settings), source=source)
    return factory(app, **settings)


async def get(server: RunningServer, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
        return await client.get(path, **kwargs)


async def wait_active(server: RunningServer, wanted: Callable[[list[Any]], bool]) -> list[Any]:
    async with asyncio.timeout(10):
        while True:
            active: list[Any] = (await get(server, "/api/alerts")).json()["active"]
            if wanted(active):
                return active
            await asyncio.sleep(0.05)


async def test_firing_and_resolving_on_the_api_webhook_stream_and_prometheus(
    server_factory: Factory, tmp_path: Path
) -> None:
    source = DialSource()
    with Receiver() as receiver:
        server = start(server_factory, source, alerts=rule_file(tmp_path, receiver))
        plain_url = server.ws_url()
        async with ws_client(plain_url) as plain, ws_client(plain_url + "?alerts=1") as opted:
            first = await receive_json(opted)
            assert first["type"] == "alerts"
            assert first["active"] == []
            source.cpu = 90.0
            [body] = await asyncio.to_thread(receiver.wait_for, 1)
            assert receiver.paths == ["/hook"]
            assert body["status"] == "firing"
            assert body["version"] == "4"
            [alert] = body["alerts"]
            assert alert["labels"] == {
                "alertname": "hot", "host": "local", "severity": "warning",
            }  # fmt: skip
            assert alert["annotations"]["summary"] == "CPU hot"
            assert alert["annotations"]["value"] == "90"

            [active] = await wait_active(server, bool)
            assert (active["rule"], active["state"], active["severity"]) == (
                "hot", "firing", "warning",
            )  # fmt: skip
            assert (active["value"], active["threshold"], active["silenced"]) == (90, 80, False)
            assert active["since"] == alert["startsAt"]

            exposition = (await get(server, "/metrics")).text
            assert 'sysstream_alert_firing{host="local",rule="hot",severity="warning"} 1.0' in (
                exposition
            )
            assert "# TYPE sysstream_alert_threshold gauge" in exposition
            assert "# HELP sysstream_alert_threshold " in exposition
            assert (
                'sysstream_alert_threshold{metric="cpu",rule="hot",severity="critical"} 0.95'
                in exposition
            )

            source.cpu = 10.0
            bodies = await asyncio.to_thread(receiver.wait_for, 2)
            assert bodies[1]["status"] == "resolved"
            assert bodies[1]["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"

            events = []
            async with asyncio.timeout(10):
                while len(events) < 2:
                    message = await receive_json(opted)
                    if message.get("type") == "alert":
                        events.append(message)
            assert [(e["event"], e["rule"]) for e in events] == [
                ("firing", "hot"), ("resolved", "hot"),
            ]  # fmt: skip
            assert events[0]["labels"] == {"host": "local"}
            # A client that did not ask for alerts only ever saw the contract's shape.
            for _ in range(3):
                assert list(await receive_json(plain)) == ["cpu", "memory", "disk", "timestamp"]

        now = time.time()
        history = await get(server, "/api/alerts/history", params={"from": now - 600})
        assert history.status_code == 200
        assert [e["event"] for e in history.json()["events"]] == ["firing", "resolved"]
        assert (await get(server, "/api/alerts")).json()["active"] == []


async def test_control_message_subscribes_to_alerts(
    server_factory: Factory, tmp_path: Path
) -> None:
    source = DialSource()
    source.cpu = 99.0
    server = start(server_factory, source, alerts=rule_file(tmp_path, None))
    await wait_active(server, bool)
    async with ws_client(server.ws_url()) as websocket:
        await websocket.send('{"type": "subscribe", "fields": ["cpu"], "alerts": true}')
        seen: dict[str, Any] = {}
        async with asyncio.timeout(10):
            while "subscribed" not in seen or "alerts" not in seen:
                message = await receive_json(websocket)
                seen.setdefault(message.get("type", "data"), message)
        assert seen["subscribed"]["alerts"] is True
        assert [a["severity"] for a in seen["alerts"]["active"]] == ["critical"]
        await websocket.send('{"type": "subscribe", "fields": ["cpu"], "alerts": "yes"}')
        async with asyncio.timeout(10):
            while "error" not in (message := await receive_json(websocket)):
                pass
        assert message["error"] == 'expected alerts as true or false, got "yes"'


async def test_silences_mute_notifications_and_need_the_token(
    server_factory: Factory, tmp_path: Path
) -> None:
    source = DialSource()
    with Receiver() as receiver:
        server = start(server_factory, source, alerts=rule_file(tmp_path, receiver), token=TOKEN)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        silence = {"matchers": {"rule": "hot", "severity": "warning"}, "duration": 600}
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
            assert (await client.post("/api/alerts/silences", json=silence)).status_code == 401
            assert (await client.get("/api/alerts")).status_code == 401
            created = await client.post("/api/alerts/silences", json=silence, headers=auth)
            assert created.status_code == 201
            silence_id = created.json()["id"]
            listed = (await client.get("/api/alerts/silences", headers=auth)).json()
            assert [s["id"] for s in listed["silences"]] == [silence_id]

            source.cpu = 90.0  # warning: silenced
            async with asyncio.timeout(10):
                while not (await client.get("/api/alerts", headers=auth)).json()["active"]:
                    await asyncio.sleep(0.05)
            active = (await client.get("/api/alerts", headers=auth)).json()["active"]
            assert active[0]["silenced"] is True
            source.cpu = 99.0  # critical: not matched by the silence
            [body] = await asyncio.to_thread(receiver.wait_for, 1)
            # The first delivery is the critical one: the warning before it was muted.
            assert body["alerts"][0]["labels"]["severity"] == "critical"

            gone = await client.delete(f"/api/alerts/silences/{silence_id}", headers=auth)
            assert gone.status_code == 204
            missing = await client.delete(f"/api/alerts/silences/{silence_id}", headers=auth)
            assert missing.status_code == 404
            assert "no silence" in missing.json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"not json", 400, "expected a JSON object, got text that is not JSON"),
        (b'{"matchers": {}}', 400, "expected matchers as a non-empty object"),
        (b'{"matchers": {"rule": "x"}, "duration": 0}', 400, "expected duration above 0"),
        (b'{"matchers": {"rule": "x"}, "duration": 5, "x": 1}', 400, "unknown key 'x'"),
        (b"[" + b" " * 20000 + b"]", 413, "expected a body under 16384 bytes"),
    ],
)
async def test_bad_silence_requests_get_one_line_errors(
    server_factory: Factory, tmp_path: Path, body: bytes, status: int, message: str
) -> None:
    server = start(server_factory, DialSource(), alerts=rule_file(tmp_path, None))
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as client:
        response = await client.post("/api/alerts/silences", content=body)
        assert response.status_code == status
        assert message in response.json()["error"]
        # Nothing else disturbed: the API still answers.
        assert (await client.get("/api/alerts")).status_code == 200


async def test_prometheus_thresholds_are_the_decimals_the_rules_wrote(
    server_factory: Factory, tmp_path: Path
) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(
        "builtin = false\n"
        '[rules.cpu_edge]\nmetric = "cpu"\nwarning = 99.9\ncritical = 99.99\n'
        '[rules.swap_third]\nmetric = "swap.percent"\nwarning = 33.3\ncritical = 57.7\n'
        '[rules.load]\nmetric = "load.load1_per_core"\nwarning = 0.3\n'
    )
    server = start(server_factory, DialSource(), alerts=str(path))
    exposition = (await get(server, "/metrics")).text
    # The text as scraped, by (metric, rule, severity): value / 100 in binary would read
    # 0.9990000000000001, 0.9998999999999999, 0.33299999999999996, 0.5770000000000001.
    scraped = {
        found.groups()[:3]: found[4]
        for found in re.finditer(
            r'^sysstream_alert_threshold\{metric="(.*?)",rule="(.*?)",severity="(.*?)"\} (.*)$',
            exposition,
            re.MULTILINE,
        )
    }
    assert scraped == {
        ("cpu", "cpu_edge", "warning"): "0.999",
        ("cpu", "cpu_edge", "critical"): "0.9999",
        ("swap.percent", "swap_third", "warning"): "0.333",
        ("swap.percent", "swap_third", "critical"): "0.577",
        ("load.load1_per_core", "load", "warning"): "0.3",  # not a percent: as written
    }


async def test_bad_history_ranges_are_refused(server_factory: Factory, tmp_path: Path) -> None:
    server = start(server_factory, DialSource(), alerts=rule_file(tmp_path, None))
    response = await get(server, "/api/alerts/history", params={"from": "yesterday"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("expected from as epoch seconds or ISO-8601")


async def test_alerts_survive_a_restart_without_a_second_notification(
    server_factory: Factory, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with Receiver() as receiver:
        rules = rule_file(tmp_path, receiver)
        source = DialSource()
        source.cpu = 90.0
        first = start(server_factory, source, alerts=rules, no_store=False, data_dir=str(tmp_path))
        [fired] = await asyncio.to_thread(receiver.wait_for, 1)
        [before] = await wait_active(first, bool)
        stop_server(first)
        del data

        again = DialSource()
        again.cpu = 90.0
        second = start(server_factory, again, alerts=rules, no_store=False, data_dir=str(tmp_path))
        evaluator = second.app.state.alerts
        await second.wait_until(lambda: evaluator.evaluations > 10)
        [after] = (await get(second, "/api/alerts")).json()["active"]
        assert after["since"] == before["since"] == fired["alerts"][0]["startsAt"]
        history = await get(second, "/api/alerts/history", params={"seconds": 600})
        assert [e["event"] for e in history.json()["events"]] == ["firing"]
        again.cpu = 10.0
        bodies = await asyncio.to_thread(receiver.wait_for, 2)
        # The second delivery is the resolve: nothing was sent again on restart.
        assert [b["status"] for b in bodies] == ["firing", "resolved"]
        assert receiver.attempts == 2


async def test_a_restart_leaves_behind_the_alerts_of_hosts_it_does_not_evaluate(
    server_factory: Factory, tmp_path: Path
) -> None:
    # A data dir that a fleet hub used, now a standalone server's: the hub's hosts' saved
    # alerts would be carried over for good (no sample of theirs ever comes to resolve
    # them); the server's own alert is carried over.
    rules = rule_file(tmp_path, None)
    source = DialSource()
    source.cpu = 90.0
    first = start(server_factory, source, alerts=rules, no_store=False, data_dir=str(tmp_path))
    [local] = await wait_active(first, bool)
    stop_server(first)
    log = AlertLog(tmp_path)
    log.open()
    [saved] = log.active()
    labels = {**saved["labels"], "host": "web1"}
    fleet_host = {**saved, "labels": labels, "fingerprint": fingerprint("hot", labels)}
    log.record([], [saved, fleet_host])
    log.close()

    second = start(server_factory, source, alerts=rules, no_store=False, data_dir=str(tmp_path))
    active = (await get(second, "/api/alerts")).json()["active"]
    assert [(a["labels"]["host"], a["since"]) for a in active] == [
        (local["labels"]["host"], local["since"])
    ]
    stop_server(second)
    log.open()
    assert [a["labels"]["host"] for a in log.active()] == [local["labels"]["host"]]
    log.close()
