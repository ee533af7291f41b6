"""Delivering notifications, off the event loop: one worker thread per destination.

:meth:`Notifier.send` only puts the event on each destination's bounded queue, so a dead
or hung receiver costs the event loop nothing; the worker sends with a timeout per attempt,
retries with exponential backoff, and drops what exceeds the destination's rate limit.
Every failed attempt is a log line and a count in :class:`DeliveryStats` (exported to
Prometheus). Apprise delivers ``url`` destinations (ntfy, Slack, e-mail, ``json://``, ...);
``webhook`` destinations get Alertmanager's webhook JSON in a plain POST.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass

import apprise
import orjson

from .._version import __version__
from ..sansio import (
    AlertEvent,
    Backoff,
    ControlRateLimit,
    Destination,
    DestinationKind,
    RuleError,
    notification_text,
    webhook_body,
)

__all__ = ["DeliveryStats", "Notifier", "check_destinations"]

logger = logging.getLogger("sysstream")

QUEUE_SIZE = 100  # per destination: events waiting while the receiver is slow or down
_STOP = object()


class DeliveryError(Exception):
    """One failed attempt; ``str()`` is a short reason (the URL is never in it)."""


@dataclass(slots=True)
class DeliveryStats:
    sent: int = 0
    failures: int = 0  # failed attempts (each one logged)
    dropped_rate_limit: int = 0
    dropped_queue_full: int = 0
    gave_up: int = 0  # events whose every attempt failed


def check_destinations(destinations: Iterable[Destination]) -> None:
    """Raise :class:`RuleError` for an Apprise URL that Apprise does not understand."""
    for destination in destinations:
        apprise_url = destination.kind is DestinationKind.APPRISE
        if apprise_url and apprise.Apprise.instantiate(destination.url) is None:
            raise RuleError(
                f"notify {destination.name!r}, field 'url': Apprise does not understand"
                f" {destination.url.split('://')[0]}:// URLs (see the Apprise wiki)"
            )


def _with_timeouts(url: str, timeout: float) -> str:
    """Apprise's per-URL connect and read timeouts (``cto``/``rto``), unless given."""
    if "rto=" in url or "cto=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}cto={timeout:g}&rto={timeout:g}"


class _Worker:
    def __init__(self, destination: Destination, backoff_initial: float) -> None:
        self.destination = destination
        self.stats = DeliveryStats()
        self.queue: queue.Queue[object] = queue.Queue(maxsize=QUEUE_SIZE)
        self._rate = ControlRateLimit(
            rate=destination.per_minute / 60.0, burst=destination.per_minute
        )
        self._backoff_initial = backoff_initial
        self._stopping = threading.Event()
        self._apprise: apprise.Apprise | None = None
        if destination.kind is DestinationKind.APPRISE:
            self._apprise = apprise.Apprise()
            if not self._apprise.add(_with_timeouts(destination.url, destination.timeout)):
                raise RuleError(f"notify {destination.name!r}: Apprise does not understand the URL")
        self.thread = threading.Thread(
            target=self._run, name=f"sysstream-notify-{destination.name}", daemon=True
        )

    def offer(self, event: AlertEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.stats.dropped_queue_full += 1
            logger.warning(
                "notification to %s dropped: %d already waiting", self.destination, QUEUE_SIZE
            )

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(queue.Full):  # the worker checks the flag between attempts
            self.queue.put_nowait(_STOP)

    def _run(self) -> None:
        while not self._stopping.is_set():
            item = self.queue.get()
            if item is _STOP or not isinstance(item, AlertEvent):
                return
            if not self._rate.allow(time.monotonic()):
                self.stats.dropped_rate_limit += 1
                logger.warning(
                    "notification to %s dropped: over %d per minute",
                    self.destination,
                    self.destination.per_minute,
                )
                continue
            self._deliver(item)

    def _deliver(self, event: AlertEvent) -> None:
        destination = self.destination
        backoff = Backoff(initial=self._backoff_initial, maximum=30.0)
        attempts = destination.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                self._attempt(event)
            except DeliveryError as exc:
                self.stats.failures += 1
                logger.warning(
                    "notification to %s failed (attempt %d of %d): %s",
                    destination,
                    attempt,
                    attempts,
                    exc,
                )
                if attempt < attempts and not self._stopping.wait(backoff.next_delay()):
                    continue
                self.stats.gave_up += 1
                return
            self.stats.sent += 1
            return

    def _attempt(self, event: AlertEvent) -> None:
        destination = self.destination
        if self._apprise is not None:
            title, body = notification_text(event)
            try:
                delivered = self._apprise.notify(body=body, title=title)
            except Exception as exc:  # a plugin bug must not end the worker
                raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
            if not delivered:
                raise DeliveryError("Apprise reported the delivery failed")
            return
        request = urllib.request.Request(
            destination.url,
            data=orjson.dumps(webhook_body(event)),
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"sysstream/{__version__}",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=destination.timeout) as response:
                response.read(65536)
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"{type(exc).__name__}: {reason}") from None


class Notifier:
    """Every destination's worker; :meth:`send` never blocks."""

    def __init__(self, destinations: Iterable[Destination], *, backoff_initial: float = 1.0):
        self._workers = [_Worker(d, backoff_initial) for d in destinations]
        self._started = False

    @property
    def stats(self) -> dict[str, DeliveryStats]:
        return {worker.destination.name: worker.stats for worker in self._workers}

    def start(self) -> None:
        self._started = True
        for worker in self._workers:
            worker.thread.start()

    def stop(self) -> None:
        """Ask the workers to finish; a worker blocked on a hung receiver ends by its timeout."""
        for worker in self._workers:
            worker.stop()

    def send(self, event: AlertEvent) -> None:
        severity = event.severity
        for worker in self._workers:
            if severity is None or severity in worker.destination.severities:
                worker.offer(event)
