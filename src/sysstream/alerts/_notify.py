"""Delivering notifications, off the event loop: one worker thread per destination.

:meth:`Notifier.send` only puts the event on each destination's bounded queue, so a dead
or hung receiver costs the event loop nothing; the worker gives each attempt a deadline,
retries with exponential backoff, and drops what exceeds the destination's rate limit.

The deadline is the whole attempt's, not a socket timeout's (which bounds each read, so a
receiver answering a byte every few seconds never reached it): the attempt runs on a
thread of its own, and the worker waits for it until the deadline. Then a webhook's
connection is cut and its thread ends; Apprise's connection is out of reach, so its thread
may linger, and until it ends that destination's next attempts fail at once rather than
start another: at most one lingering thread per destination, across reloads too.
Every failed attempt is a log line and a count in :class:`DeliveryStats` (exported to
Prometheus). Apprise delivers ``url`` destinations (ntfy, Slack, e-mail, ``json://``, ...);
``webhook`` destinations get Alertmanager's webhook JSON in a plain POST.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
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
from ._webhook import Cut, post

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


class _Attempt:
    """One delivery attempt on a thread of its own, which the worker may give up on."""

    def __init__(self, send: Callable[[Cut], None], name: str, on_end: Callable[[], None]):
        self.cut = Cut()
        self.error: DeliveryError | None = None
        self.finished = threading.Event()
        self._send = send
        self._on_end = on_end
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self._send(self.cut)
        except DeliveryError as exc:
            self.error = exc
        except Exception as exc:  # a plugin bug must not go unreported
            self.error = DeliveryError(f"{type(exc).__name__}: {exc}")
        finally:
            self.finished.set()
            self._on_end()


def _with_timeouts(url: str, timeout: float) -> str:
    """Apprise's per-URL connect and read timeouts (``cto``/``rto``), unless given."""
    if "rto=" in url or "cto=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}cto={timeout:g}&rto={timeout:g}"


class _Worker:
    def __init__(
        self, destination: Destination, backoff_initial: float, running: _Attempt | None = None
    ) -> None:
        self.destination = destination
        # The latest attempt, maybe still running past its deadline (an Apprise one), or
        # the one its predecessor left running before a reload.
        self.running = running
        self._changed = threading.Event()  # an attempt finished, or stop() was called
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
        self._changed.set()  # an attempt in flight is given up at once
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
        """Run one attempt on its own thread and wait for it until its deadline."""
        timeout = self.destination.timeout
        previous = self.running
        if previous is not None and not previous.finished.is_set():
            raise DeliveryError(f"the previous attempt is still running, past its {timeout:g} s")
        if self._stopping.is_set():
            raise DeliveryError("given up: the notifier stopped")
        attempt = _Attempt(
            lambda cut: self._send(event, cut),
            f"sysstream-notify-{self.destination.name}-attempt",
            self._changed.set,
        )
        self.running = attempt
        deadline = time.monotonic() + timeout
        attempt.thread.start()
        while True:
            self._changed.clear()
            if attempt.finished.is_set() or self._stopping.is_set():
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._changed.wait(left)
        if not attempt.finished.is_set():
            attempt.cut.now()  # a webhook's thread ends now; Apprise's when Apprise gives up
            if self._stopping.is_set():
                raise DeliveryError("given up: the notifier stopped")
            raise DeliveryError(f"no complete answer within {timeout:g} s")
        if attempt.error is not None:
            raise attempt.error

    def _send(self, event: AlertEvent, cut: Cut) -> None:
        """The delivery itself, on the attempt's thread."""
        destination = self.destination
        if self._apprise is not None:
            title, body = notification_text(event)
            if not self._apprise.notify(body=body, title=title):
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
            post(request, destination.timeout, cut)
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
            if cut.done:  # the worker gave up on this attempt and logged why
                raise DeliveryError("cut at its deadline") from None
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"{type(exc).__name__}: {reason}") from None


class Notifier:
    """Every destination's worker; :meth:`send` never blocks."""

    def __init__(
        self,
        destinations: Iterable[Destination],
        *,
        backoff_initial: float = 1.0,
        previous: Notifier | None = None,
    ):
        """``previous``: the notifier this one replaces (a reload); an attempt of its
        still running counts against the same destination here."""
        left: dict[Destination, _Attempt | None] = {}
        if previous is not None:
            left = {worker.destination: worker.running for worker in previous._workers}
        self._workers: list[_Worker] = [
            _Worker(d, backoff_initial, left.get(d)) for d in destinations
        ]
        self._started = False

    @property
    def stats(self) -> dict[str, DeliveryStats]:
        return {worker.destination.name: worker.stats for worker in self._workers}

    def start(self) -> None:
        self._started = True
        for worker in self._workers:
            worker.thread.start()

    def stop(self) -> None:
        """Ask the workers to finish: each gives up its attempt in flight at once."""
        for worker in self._workers:
            worker.stop()

    def send(self, event: AlertEvent) -> None:
        severity = event.severity
        for worker in self._workers:
            if severity is None or severity in worker.destination.severities:
                worker.offer(event)
