"""The alert evaluator: the thin asyncio layer around :class:`~sysstream.sansio.AlertEngine`.

Hubs hand it samples through :meth:`AlertEvaluator.recorder` recorders, which only put
the sample on a bounded queue: evaluation never runs on the fan-out's critical path. The
evaluator's own task drains the queue, feeds the engine and carries out the events: kept
in memory and in the alert log (when there is a store), sent to stream subscribers, and
handed to the notifier unless silenced (in fleet mode, only by the hub that claims the
transition). Firing alerts and silences are restored at start, so a restart neither
forgets an alert nor notifies it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from .._sample import Sample
from .._settings import check_rule_file
from ..sansio import (
    AlertEngine,
    AlertEvent,
    EventKind,
    RuleError,
    RuleSet,
    Silence,
    Silences,
    encode_json,
    format_timestamp,
    parse_rule_text,
    parse_silence,
)
from ..store import AlertLog
from ._notify import Notifier, check_destinations

__all__ = ["AlertEvaluator", "Coordinator", "HostStatuses", "load_rule_file"]

logger = logging.getLogger("sysstream")

QUEUE_SIZE = 20_000  # samples waiting for evaluation (20 s of 1,000 hosts at 1 s)
MEMORY_EVENTS = 10_000  # events kept in memory for /api/alerts/history
HOUSEKEEPING_SECONDS = 1.0

# (host, offline, at): the fleet's view of each host, polled once a second.
HostStatuses = Callable[[], Iterable[tuple[str, bool, float]]]
Listener = Callable[[AlertEvent, bytes], None]


class Coordinator(Protocol):
    """What several hubs share (fleet mode): who notifies a transition, the active set
    and the silences."""

    async def claim(self, event: AlertEvent) -> bool | None: ...

    async def save_active(self, events: list[AlertEvent], active: list[dict[str, Any]]) -> None: ...

    async def load_active(self) -> list[dict[str, Any]]: ...

    async def save_silences(self, silences: list[dict[str, Any]]) -> None: ...

    async def load_silences(self) -> list[dict[str, Any]] | None: ...

    async def close(self) -> None: ...


def load_rule_file(path: str | None) -> RuleSet:
    """The rules in ``path`` (the built-ins alone for None); ``RuleError`` on any mistake."""
    if path is None:
        return parse_rule_text("")
    try:
        check_rule_file(path)  # the same checks and messages as at start
        with open(path, encoding="utf-8") as file:
            rules = parse_rule_text(file.read())
    except ValueError as exc:
        raise RuleError(str(exc)) from None
    try:
        check_destinations(rules.notify)
    except RuleError as exc:
        raise RuleError(f"{path}: {exc}") from None
    return rules


class _QueueRecorder:
    """A hub recorder that only enqueues (host, sample) for the evaluator."""

    __slots__ = ("_evaluator", "_queue", "host")

    def __init__(self, evaluator: AlertEvaluator, host: str) -> None:
        self._evaluator = evaluator
        self._queue = evaluator._queue
        self.host = host

    def record(self, sample: Sample) -> None:
        # On the fan-out path for every host's every tick: enqueue, inlined.
        if len(self._queue) < QUEUE_SIZE and self._evaluator._queued.is_set():
            self._queue.append((self.host, sample))
        else:
            self._evaluator.enqueue(self.host, sample)

    def __repr__(self) -> str:
        return f"AlertRecorder(host={self.host!r})"


class AlertEvaluator:
    def __init__(
        self,
        rules: RuleSet,
        *,
        rule_file: str | None = None,
        log: AlertLog | None = None,
        notifier: Notifier | None = None,
        coordinator: Coordinator | None = None,
        host_statuses: HostStatuses | None = None,
        stale_after: float = 60.0,
        evaluates: Callable[[str], bool] = lambda host: True,
    ) -> None:
        """``evaluates(host)``: whether samples of ``host`` can reach this evaluator (a
        standalone server's own host only, a fleet hub's agents only); a saved alert of
        any other host is not carried over a restart, since nothing could resolve it."""
        self.rule_file = rule_file
        self.evaluates = evaluates
        self.engine = AlertEngine(rules, stale_after=stale_after)
        self.silences = Silences()
        self.log = log
        self.notifier = notifier if notifier is not None else Notifier(rules.notify)
        self.coordinator = coordinator
        self.host_statuses = host_statuses
        self.recent: deque[dict[str, Any]] = deque(maxlen=MEMORY_EVENTS)
        self.listeners: list[Listener] = []
        self.dropped_samples = 0  # samples refused because the queue was full
        self.evaluations = 0
        self.evaluation_seconds = 0.0  # CPU spent in the engine, for /metrics and benchmarks
        # A deque and an event, not an asyncio.Queue: enqueue runs on the fan-out path for
        # every host's every tick, and this is a fraction of a Queue's cost.
        self._queue: deque[tuple[str, Sample]] = deque()
        self._queued = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._processed = asyncio.Condition()
        self._hooked_signal = False

    # Feeding

    def recorder(self, host: str) -> _QueueRecorder:
        return _QueueRecorder(self, host)

    def enqueue(self, host: str, sample: Sample) -> None:
        queue = self._queue
        if len(queue) >= QUEUE_SIZE:
            self.dropped_samples += 1
            return
        queue.append((host, sample))
        if not self._queued.is_set():
            self._queued.set()

    # Lifecycle

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("expected an evaluator not yet started, got a started one")
        if self.log is not None:
            await asyncio.to_thread(self.log.open)
        await self._restore()
        self.notifier.start()
        self._task = asyncio.create_task(self._run(), name="sysstream-alerts")
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            # Only the main thread may own signals (not so in tests that run servers in
            # threads); `sysstream serve` is the main thread.
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._reload_soon)
            self._hooked_signal = True

    async def stop(self) -> None:
        if self._hooked_signal:
            with contextlib.suppress(ValueError, RuntimeError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.notifier.stop()
        if self.coordinator is not None:
            await self.coordinator.close()
        if self.log is not None:
            await asyncio.to_thread(self.log.close)

    async def _restore(self) -> None:
        saved: list[dict[str, Any]] = []
        silences: list[dict[str, Any]] | None = None
        if self.coordinator is not None:
            saved = await self.coordinator.load_active()
            silences = await self.coordinator.load_silences()
        if not saved and self.log is not None:
            saved = await asyncio.to_thread(self.log.active)
        if silences is None and self.log is not None:
            silences = await asyncio.to_thread(self.log.silences)
        # A data dir kept by a fleet hub, then used by a standalone server (or the other
        # way round): the other mode's hosts never send a sample here.
        kept = [
            alert
            for alert in saved
            if isinstance(labels := alert.get("labels"), dict)
            and self.evaluates(str(labels.get("host")))
        ]
        restored = self.engine.restore(kept)
        if restored:
            logger.info("alerts: %d firing alert(s) carried over from before the restart", restored)
        if len(kept) < len(saved):
            logger.info(
                "alerts: %d saved alert(s) of hosts this server does not evaluate left behind",
                len(saved) - len(kept),
            )
            if self.log is not None:  # the saved active set, without them
                await asyncio.to_thread(self.log.record, [], self.engine.active())
        self._load_silences(silences or [])

    def _load_silences(self, saved: list[dict[str, Any]]) -> None:
        now = time.time()
        silences = []
        for entry in saved:
            try:
                silences.append(
                    Silence(
                        str(entry["id"]),
                        dict(entry["matchers"]),
                        float(entry["starts_epoch"]),
                        float(entry["ends_epoch"]),
                        str(entry.get("comment", "")),
                    )
                )
            except (KeyError, TypeError, ValueError):
                continue
        # The same silences keep their verdicts (a fleet hub reloads them at every GET).
        self.silences.replace(s for s in silences if s.ends > now)

    # Reload

    def _reload_soon(self) -> None:
        asyncio.get_running_loop().create_task(self.reload())

    async def reload(self) -> bool:
        """Read the rule file again (SIGHUP); on a mistake keep the rules in force."""
        try:
            rules = await asyncio.to_thread(load_rule_file, self.rule_file)
        except RuleError as exc:
            logger.error("alerts: reload refused, keeping the current rules: %s", exc)
            return False
        events = self.engine.replace_rules(rules, at=time.time())
        self.notifier.stop()
        self.notifier = Notifier(rules.notify, previous=self.notifier)
        self.notifier.start()
        await self._handle(events)
        logger.info("alerts: reloaded %d rule(s) from %s", len(rules.rules), self.rule_file)
        return True

    # Evaluation

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_housekeeping = loop.time()
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that races with the wait, and stop() would wait forever.
            if not self._queue:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, next_housekeeping - loop.time())):
                        await self._queued.wait()
            self._queued.clear()
            queue = self._queue
            batch = [queue.popleft() for _ in range(min(len(queue), 5000))]
            started = time.perf_counter()
            events: list[AlertEvent] = []
            for host, sample in batch:
                if sample.values:
                    events += self.engine.observe(host, sample.timestamp, sample.values)
            self.evaluations += len(batch)
            if loop.time() >= next_housekeeping:
                next_housekeeping = loop.time() + HOUSEKEEPING_SECONDS
                events += self._housekeeping()
            self.evaluation_seconds += time.perf_counter() - started
            if events:
                try:
                    await self._handle(events)
                except Exception:  # one bad event must not end evaluation
                    logger.exception("alerts: handling %d event(s) failed", len(events))
            if batch:
                async with self._processed:
                    self._processed.notify_all()

    def _housekeeping(self) -> list[AlertEvent]:
        events = self.engine.sweep()
        if self.host_statuses is not None:
            for host, offline, at in self.host_statuses():
                events += self.engine.host_status(host, offline, at)
        self.silences.expire(time.time())
        return events

    async def _handle(self, events: list[AlertEvent]) -> None:
        now = time.time()
        transitions: list[dict[str, Any]] = []
        for event in events:
            body = event.to_json()
            body["at_epoch"] = event.at
            if event.kind is not EventKind.REPEAT:
                self.recent.append(body)
                transitions.append(body)
            message = encode_json({"type": "alert", **body, "timestamp": format_timestamp(now)})
            for listener in self.listeners:
                try:
                    listener(event, message)
                except Exception:
                    logger.exception("alerts: listener %r failed", listener)
            if not event.kind.notifies:
                continue
            severity = event.severity.value if event.severity is not None else None
            if self.silences.silenced(event.rule, severity, event.labels, now):
                logger.info("alerts: %s %s on %s silenced", event.rule, event.kind, event.labels)
                continue
            claimed = True if self.coordinator is None else await self.coordinator.claim(event)
            if claimed is False:
                logger.info(
                    "alert %s %s on %s: claimed by another hub",
                    event.rule,
                    event.kind.value,
                    dict(event.labels),
                )
            if not claimed:  # None: Redis cannot tell (the coordinator logged why)
                continue
            logger.info(
                "alert %s %s (%s) on %s: value %s, threshold %s",
                event.rule,
                event.kind.value,
                severity,
                dict(event.labels),
                event.value,
                event.threshold,
            )
            self.notifier.send(event)
        active = self.engine.active()
        if self.coordinator is not None:
            await self.coordinator.save_active(events, active)
        if self.log is not None:
            await asyncio.to_thread(self.log.record, transitions, active)

    async def wait_processed(self) -> None:
        """Wait until the queue's current samples have been evaluated (tests, benchmarks)."""
        async with self._processed:
            await self._processed.wait_for(lambda: not self._queue)

    # Queries

    def active(self, host: str | None = None) -> list[dict[str, Any]]:
        now = time.time()
        found = []
        for alert in self.engine.active():
            if host is not None and alert["labels"].get("host") != host:
                continue
            alert = dict(alert)
            alert["silenced"] = self.silences.silenced(
                alert["rule"], alert["severity"], alert["labels"], now
            )
            found.append(alert)
        return found

    async def history(self, start: float, end: float) -> list[dict[str, Any]]:
        if self.log is not None and self.log.enabled:
            return await asyncio.to_thread(self.log.events, start, end)
        return [e for e in self.recent if start <= e["at_epoch"] <= end]

    def snapshot(self, host: str | None = None) -> bytes:
        """The ``{"type": "alerts", "active": [...]}`` message a stream subscriber gets."""
        body = {"type": "alerts", "active": self.active(host)}
        body["timestamp"] = format_timestamp(time.time())
        return encode_json(body)

    # Silences

    async def add_silence(self, request: Any) -> Silence:
        now = time.time()
        silence = parse_silence(request, uuid.uuid4().hex, now)
        self.silences.add(silence, now)
        await self._save_silences()
        return silence

    async def remove_silence(self, silence_id: str) -> bool:
        removed = self.silences.remove(silence_id)
        if removed:
            await self._save_silences()
        return removed

    async def _save_silences(self) -> None:
        saved = [
            {**s.to_json(), "starts_epoch": s.starts, "ends_epoch": s.ends}
            for s in self.silences.list(time.time())
        ]
        if self.coordinator is not None:
            await self.coordinator.save_silences(saved)
        if self.log is not None:
            await asyncio.to_thread(self.log.save_silences, saved)

    async def refresh_silences(self) -> None:
        """Take the shared silences (fleet mode): another hub may have added some."""
        if self.coordinator is not None:
            saved = await self.coordinator.load_silences()
            if saved is not None:
                self._load_silences(saved)
