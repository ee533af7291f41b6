"""Notifications to a real local HTTP receiver: the webhook's Alertmanager body, Apprise's
``json://``, retries after 500, the rate limit, and a hung receiver that delays nothing."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sysstream.alerts import Notifier
from sysstream.sansio import AlertEvent, Destination, DestinationKind, EventKind, Severity

from .alert_receiver import Receiver
from .conftest import RunningServer, receive_json, ws_client
from .test_alert_api import DialSource, rule_file, start

Factory = Callable[..., RunningServer]


def event(kind: EventKind = EventKind.FIRING, at: float = 1_700_000_000.0) -> AlertEvent:
    return AlertEvent(
        kind, "hot", {"host": "web-1"}, Severity.WARNING, 91.0, 80.0, at, at, "CPU hot"
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.01)


def test_webhook_retries_after_500_with_a_log_line_and_count_per_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with Receiver() as receiver:
        receiver.fail_next = 2
        hook = Destination(DestinationKind.WEBHOOK, receiver.url(), "hook", retries=3)
        notifier = Notifier([hook], backoff_initial=0.05)
        notifier.start()
        try:
            with caplog.at_level(logging.WARNING, logger="sysstream"):
                notifier.send(event())
                [body] = receiver.wait_for(1)
                wait_until(lambda: notifier.stats["hook"].sent == 1)
        finally:
            notifier.stop()
    assert receiver.attempts == 3
    assert body["status"] == "firing"
    assert body["alerts"][0]["labels"]["alertname"] == "hot"
    stats = notifier.stats["hook"]
    assert (stats.sent, stats.failures, stats.gave_up) == (1, 2, 0)
    failures = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert failures == [
        "notification to hook failed (attempt 1 of 4): HTTP 500",
        "notification to hook failed (attempt 2 of 4): HTTP 500",
    ]


def test_webhook_gives_up_after_its_retries() -> None:
    with Receiver() as receiver:
        receiver.fail_next = 100
        hook = Destination(DestinationKind.WEBHOOK, receiver.url(), "hook", retries=1)
        notifier = Notifier([hook], backoff_initial=0.05)
        notifier.start()
        try:
            notifier.send(event())
            wait_until(lambda: notifier.stats["hook"].gave_up == 1)
        finally:
            notifier.stop()
    assert receiver.attempts == 2
    assert notifier.stats["hook"].failures == 2


def test_apprise_json_url_delivers_title_and_body() -> None:
    with Receiver() as receiver:
        url = f"json://127.0.0.1:{receiver.port}/apprise"
        notifier = Notifier([Destination(DestinationKind.APPRISE, url, "json")])
        notifier.start()
        try:
            notifier.send(event())
            notifier.send(event(EventKind.RESOLVED, at=1_700_000_300.0))
            first, second = receiver.wait_for(2)
        finally:
            notifier.stop()
    assert receiver.paths == ["/apprise", "/apprise"]
    assert first["title"] == "[WARNING] hot on host=web-1"
    assert first["message"].startswith("CPU hot: 91 (threshold 80) since 2023-11-14T22:13:20")
    assert second["title"] == "[RESOLVED] hot on host=web-1"


def test_apprise_failures_are_retried_too() -> None:
    with Receiver() as receiver:
        receiver.fail_next = 1
        url = f"json://127.0.0.1:{receiver.port}/apprise"
        notifier = Notifier(
            [Destination(DestinationKind.APPRISE, url, "json")], backoff_initial=0.05
        )
        notifier.start()
        try:
            notifier.send(event())
            receiver.wait_for(1)
            wait_until(lambda: notifier.stats["json"].sent == 1)
        finally:
            notifier.stop()
    assert receiver.attempts == 2
    assert notifier.stats["json"].failures == 1


def test_rate_limit_per_destination(caplog: pytest.LogCaptureFixture) -> None:
    with Receiver() as receiver, caplog.at_level(logging.WARNING, logger="sysstream"):
        limited = Destination(DestinationKind.WEBHOOK, receiver.url("/a"), "a", per_minute=2)
        free = Destination(DestinationKind.WEBHOOK, receiver.url("/b"), "b", per_minute=100)
        notifier = Notifier([limited, free])
        notifier.start()
        try:
            for n in range(5):
                notifier.send(event(at=1_700_000_000.0 + n))
            wait_until(
                lambda: notifier.stats["a"].sent + notifier.stats["a"].dropped_rate_limit == 5
            )
            receiver.wait_for(7)
        finally:
            notifier.stop()
    assert sorted(receiver.paths) == ["/a"] * 2 + ["/b"] * 5
    assert notifier.stats["a"].dropped_rate_limit == 3
    assert notifier.stats["b"].dropped_rate_limit == 0
    drops = [r.getMessage() for r in caplog.records if "dropped" in r.msg]
    assert drops == ["notification to a dropped: over 2 per minute"] * 3


def test_severities_filter_destinations() -> None:
    with Receiver() as receiver:
        critical_only = Destination(
            DestinationKind.WEBHOOK, receiver.url(), "pager", severities=(Severity.CRITICAL,)
        )
        notifier = Notifier([critical_only])
        notifier.start()
        try:
            notifier.send(event())  # a warning: not for this destination
            critical = AlertEvent(
                EventKind.FIRING, "hot", {"host": "h"}, Severity.CRITICAL, 99.0, 95.0, 1.0, 1.0
            )
            notifier.send(critical)
            [body] = receiver.wait_for(1)
        finally:
            notifier.stop()
    assert body["alerts"][0]["labels"]["severity"] == "critical"
    assert receiver.attempts == 1


async def test_a_hung_receiver_does_not_delay_ticks(
    server_factory: Factory, tmp_path: Path
) -> None:
    with Receiver() as receiver:
        receiver.hang.set()
        rules = rule_file(tmp_path, receiver).replace(
            'name = "hook"', 'name = "hook"\ntimeout = "10s"\nretries = 0'
        )
        source = DialSource(interval=0.1)
        server = start(server_factory, source, alerts=rules)
        async with ws_client(server.ws_url()) as websocket:
            await receive_json(websocket)
            source.cpu = 99.0  # fires: the delivery hangs in the receiver for 10 s
            await asyncio.to_thread(wait_until, lambda: receiver.attempts == 1)
            source.cpu = 10.0  # resolves: queued behind the hung one
            arrivals = []
            for _ in range(20):
                await receive_json(websocket)
                arrivals.append(time.monotonic())
            assert receiver.attempts == 1  # still hung the whole time
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        # 0.1 s ticks; a delivery on the event loop would stall them for 10 s.
        assert max(gaps) < 2.0
        active = server.call(lambda: server.app.state.alerts.active())
        assert active == []  # evaluation carried on too: the alert resolved meanwhile


def notify_threads(name: str) -> list[threading.Thread]:
    """The live threads of destination ``name``: its worker and its attempts."""
    prefix = f"sysstream-notify-{name}"
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def test_a_webhook_that_dribbles_its_answer_is_cut_at_the_attempts_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A byte every 0.2 s never trips a 1 s socket timeout (it bounds each read): the
    # 38-byte answer once held the worker 7.6 s, and a byte every 4 s held it for good.
    with Receiver() as receiver:
        receiver.dribble = 0.2
        hook = Destination(DestinationKind.WEBHOOK, receiver.url(), "hook", timeout=1.0, retries=0)
        notifier = Notifier([hook])
        notifier.start()
        try:
            with caplog.at_level(logging.WARNING, logger="sysstream"):
                started = time.monotonic()
                notifier.send(event())
                wait_until(lambda: notifier.stats["hook"].gave_up == 1, timeout=5)
                took = time.monotonic() - started
            # The connection was shut down, so the attempt's thread ended with it.
            wait_until(lambda: receiver.cut_off == 1, timeout=5)
            wait_until(lambda: len(notify_threads("hook")) == 1, timeout=5)  # the worker
        finally:
            notifier.stop()
    assert 1.0 <= took < 2.0, took
    assert (notifier.stats["hook"].sent, notifier.stats["hook"].failures) == (0, 1)
    failures = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert failures == [
        "notification to hook failed (attempt 1 of 1): no complete answer within 1 s"
    ]


def test_an_apprise_receiver_that_dribbles_holds_one_thread_at_most() -> None:
    # Apprise's cto/rto are requests' timeouts, per read too; its connection is out of
    # reach, so its attempt may run on, but the worker moves on at the deadline and starts
    # no second attempt while the first runs.
    with Receiver() as receiver:
        receiver.dribble = 0.2
        url = f"json://127.0.0.1:{receiver.port}/apprise"
        json = Destination(DestinationKind.APPRISE, url, "json", timeout=1.0, retries=2)
        notifier = Notifier([json], backoff_initial=0.05)
        notifier.start()
        try:
            started = time.monotonic()
            notifier.send(event())
            wait_until(lambda: notifier.stats["json"].gave_up == 1, timeout=5)
            took = time.monotonic() - started
            assert len(notify_threads("json")) <= 2  # the worker and the attempt running on
        finally:
            notifier.stop()
    assert took < 2.5, took  # 1 s, then two attempts refused at once (and their backoff)
    assert (notifier.stats["json"].failures, receiver.attempts) == (3, 1)


@pytest.mark.parametrize("kind", [DestinationKind.WEBHOOK, DestinationKind.APPRISE])
def test_reloads_during_a_dribbled_answer_leave_no_thread_behind(kind: DestinationKind) -> None:
    # Each reload (SIGHUP) replaced the notifier and left the old worker blocked on the
    # receiver: one thread more per reload, for as long as the receiver dribbled.
    with Receiver() as receiver:
        receiver.dribble = 0.2
        url = (
            receiver.url()
            if kind is DestinationKind.WEBHOOK
            else receiver.url("/apprise").replace("http://", "json://")
        )
        destination = Destination(kind, url, "reloaded", timeout=5.0, retries=0)
        notifier: Notifier | None = None
        try:
            for reload in range(5):
                notifier = Notifier([destination], previous=notifier)
                notifier.start()
                before = receiver.attempts
                notifier.send(event(at=1_700_000_000.0 + reload))
                stats = notifier.stats["reloaded"]
                # Busy with it: an attempt reached the receiver, or was refused at once.
                wait_until(lambda s=stats, b=before: receiver.attempts > b or s.failures > 0)
                notifier.stop()
            # Every old worker ended at once; a webhook's attempts were cut, an Apprise
            # one runs on alone (the later workers started none beside it).
            left = 0 if kind is DestinationKind.WEBHOOK else 1
            wait_until(lambda: len(notify_threads("reloaded")) <= left, timeout=3)
        finally:
            if notifier is not None:
                notifier.stop()
    if kind is DestinationKind.APPRISE:
        assert receiver.attempts == 1
