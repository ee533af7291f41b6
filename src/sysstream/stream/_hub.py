"""The hub: one source, many clients. Pulls a sample per tick, encodes it once per view,
and hands the same bytes to every client of that view.

The hub is the seam between sampling and serving: anything that yields :class:`Sample`
objects can feed it (this host's psutil sampler, a Redis subscription), and anything
that implements ``record(sample)`` can watch what it publishes (history, storage).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from .._registry import DEFAULT_FIELDS
from .._sample import Sample
from .._settings import DEFAULT_MAX_VIEWS
from ..sampling import Source, describe_exception
from ..sansio import DEFAULT_VIEW, ControlError, View, encode_sample, text_frame
from ._history import History
from ._sinks import Sink, Write

__all__ = ["FanoutStats", "HubState", "MetricsHub", "Recorder", "ViewLimitError"]

logger = logging.getLogger("sysstream")


class Recorder(Protocol):
    def record(self, sample: Sample) -> None:
        """Called with every published sample, on the event loop; must not block."""


class ViewLimitError(ControlError):
    """A new distinct view was asked for while the hub already serves its maximum."""


class HubState(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"


@dataclass(slots=True)
class FanoutStats:
    """The hub's own figures, for /healthz and /metrics."""

    ticks: int = 0
    messages: int = 0  # messages handed to clients
    drops: int = 0  # clients cut for stalling (not draining, or a keepalive ping unanswered)
    last_tick_at: float | None = None  # loop.time() of the last published tick
    last_fanout_seconds: float = 0.0  # sample ready to last client written
    max_fanout_seconds: float = 0.0
    views: int = 0
    encodings: int = 0  # encodings done in the last tick (one per due view)
    source_errors: int = 0


@dataclass(slots=True, eq=False)
class _Audience:
    """The clients of one view, split by how a frame reaches them (see ._sinks): the
    ready ones by their transport's ``write`` alone, the others through ``deliver``."""

    view: View
    ready: dict[Sink, Write] = field(default_factory=dict)
    waiting: dict[Sink, None] = field(default_factory=dict)  # ordered set, O(1) removal

    def __len__(self) -> int:
        return len(self.ready) + len(self.waiting)

    def sinks(self) -> list[Sink]:
        return [*self.ready, *self.waiting]

    def add(self, sink: Sink) -> None:
        self.waiting[sink] = None
        sink.listen(self)

    def remove(self, sink: Sink) -> None:
        sink.listen(None)
        self.ready.pop(sink, None)
        self.waiting.pop(sink, None)

    def sink_ready(self, sink: Sink, write: Write) -> None:
        self.waiting.pop(sink, None)
        self.ready[sink] = write

    def sink_waiting(self, sink: Sink) -> None:
        self.ready.pop(sink, None)
        self.waiting[sink] = None


class MetricsHub:
    def __init__(
        self,
        source: Source,
        *,
        always: Iterable[str] = DEFAULT_FIELDS,
        recorders: Iterable[Recorder] = (),
        history: History | None = None,
        max_views: int = DEFAULT_MAX_VIEWS,
    ) -> None:
        if max_views < 1:
            raise ValueError(f"expected max_views of at least 1, got {max_views}")
        self.source = source
        self.history = history
        self.state = HubState.CREATED
        self.stats = FanoutStats()
        self.latest: Sample | None = None
        self.recorders: list[Recorder] = list(recorders)
        if history is not None:
            self.recorders.insert(0, history)
        self._always = frozenset(always)
        self._audiences: dict[View, _Audience] = {}
        self._views_of: dict[Sink, View] = {}
        self.max_views = max_views
        # How many distinct views want each group: a view's arrival or departure touches
        # only its own groups, so subscription churn costs the same at 10 views or 10,000.
        self._group_views: Counter[str] = Counter()
        self._groups = self._always
        self._task: asyncio.Task[None] | None = None
        self._ticked = asyncio.Condition()
        # The active-alerts message a client that subscribes to alerts gets first (set by
        # the app when it evaluates alerts; docs/alerts.md).
        self.alert_snapshot: Callable[[], bytes] | None = None

    # Clients

    @property
    def interval(self) -> float:
        """Seconds between ticks: the source's interval."""
        return self.source.interval

    @property
    def clients(self) -> int:
        return len(self._views_of)

    def admits(self, view: View) -> bool:
        """True when ``view`` is served already or there is room for one more view."""
        return view in self._audiences or len(self._audiences) < self.max_views

    def attach(self, sink: Sink, view: View = DEFAULT_VIEW) -> None:
        """Deliver ``view`` to ``sink`` from the next tick; :class:`ViewLimitError` when
        ``view`` would be one distinct view more than ``max_views``."""
        if sink in self._views_of:
            raise ValueError("expected a new sink, got one already attached")
        audience = self._audiences.get(view)
        if audience is None:
            if not self.admits(view):
                raise self.limit_error()
            audience = self._audiences[view] = _Audience(view)
            self._count_groups(view, +1)
        self._views_of[sink] = view
        audience.add(sink)
        if view.alerts and self.alert_snapshot is not None:
            payload = self.alert_snapshot()
            sink.deliver(text_frame(payload), payload.decode(), time.monotonic())

    def detach(self, sink: Sink) -> None:
        view = self._views_of.pop(sink, None)
        if view is None:
            return
        if sink.dropped:  # cut by the fan-out, an alert's delivery or the keepalive
            self.stats.drops += 1
        audience = self._audiences[view]
        audience.remove(sink)
        if not audience:
            del self._audiences[view]
            self._count_groups(view, -1)

    def move(self, sink: Sink, view: View) -> None:
        """Change ``sink``'s view from the next tick; on :class:`ViewLimitError` it keeps
        the view it had."""
        current = self._views_of.get(sink)
        if view not in self._audiences and len(self._audiences) >= self.max_views:
            # Room only if the sink was the last client of its view, which it leaves.
            leaving = self._audiences.get(current) if current is not None else None
            if leaving is None or len(leaving) > 1:
                raise self.limit_error()
        self.detach(sink)
        self.attach(sink, view)

    def limit_error(self) -> ViewLimitError:
        """The refusal of one view too many, naming the limit."""
        return ViewLimitError(
            f"too many distinct subscriptions on this server (at most {self.max_views}, "
            "--max-views); subscribe to fields and an interval already in use"
        )

    def _count_groups(self, view: View, change: int) -> None:
        counts = self._group_views
        changed = False
        for name in view.fields:
            before = counts[name]
            if before + change:
                counts[name] = before + change
            else:
                del counts[name]
            changed = changed or not before or not before + change  # wanted or unwanted now
        if changed:
            self._groups = self._always.union(counts)

    def broadcast_alert(self, payload: bytes) -> None:
        """Send an alert event to the clients whose view asked for alerts (and no other)."""
        frame = text = None
        stalled: list[Sink] = []
        for view, audience in self._audiences.items():
            if not view.alerts:
                continue
            if frame is None:
                frame, text = text_frame(payload), payload.decode()
            assert text is not None
            now = time.monotonic()  # the loop's clock, which sinks measure stalls with
            stalled.extend(s for s in audience.sinks() if not s.deliver(frame, text, now))
        for sink in stalled:
            self.detach(sink)

    def abort_clients(self) -> None:
        """Cut every client at once (the hub's source is going away for good); each
        connection's own close path detaches it and releases its slot."""
        for sink in list(self._views_of):
            sink.abort()

    # Lifecycle

    async def start(self) -> None:
        if self.state is not HubState.CREATED:
            raise RuntimeError(f"expected a created hub, got one {self.state.value}")
        self.state = HubState.RUNNING
        self._task = asyncio.create_task(self._run(), name="sysstream-hub")

    async def stop(self) -> None:
        if self.state is not HubState.RUNNING:
            return
        self.state = HubState.STOPPED
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.source.close()

    async def wait_for_tick(self, after: int = 0) -> Sample:
        """Wait until a sample with a tick number above ``after`` is published."""
        async with self._ticked:
            await self._ticked.wait_for(
                lambda: self.latest is not None and self.latest.tick > after
            )
            assert self.latest is not None
            return self.latest

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        tick = 0
        # The state, not only the cancellation, ends the loop: a cancellation swallowed
        # by anything awaited below (Python 3.11's wait_for does) cannot keep it alive.
        while self.state is HubState.RUNNING:
            try:
                sample = await self.source.next_sample(self._groups)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken source must not end the stream
                self.stats.source_errors += 1
                logger.warning("sample source failed: %s", describe_exception(exc))
                tick += 1
                reason = describe_exception(exc)
                sample = Sample(tick, time.time(), errors=dict.fromkeys(self._groups, reason))
                await asyncio.sleep(self.source.interval)
            tick = sample.tick
            self.publish(sample, loop.time())
            async with self._ticked:
                self._ticked.notify_all()

    # Fan-out

    def publish(self, sample: Sample, now: float) -> None:
        """Record ``sample`` and deliver it to every client whose view is due."""
        started = time.perf_counter()
        self.latest = sample
        for recorder in self.recorders:
            try:
                recorder.record(sample)
            except Exception:
                logger.exception("recorder %r failed", recorder)
        delivered = encodings = 0
        stalled: list[Sink] = []
        for view, audience in self._audiences.items():
            if sample.tick % view.every:
                continue
            payload = encode_sample(sample, view.fields)
            frame, text = text_frame(payload), payload.decode()
            encodings += 1
            # The floor's loop: one C call per ready client. Both sets are copied first: a
            # write that fills a buffer pauses its sink, which moves to `waiting` at once
            # (and must not be offered this frame a second time).
            writes = list(audience.ready.values())
            others = list(audience.waiting)
            for write in writes:
                write(frame)
            for sink in others:
                if not sink.deliver(frame, text, now):
                    stalled.append(sink)
            delivered += len(writes) + len(others)
        for sink in stalled:
            self.detach(sink)
        elapsed = time.perf_counter() - started
        stats = self.stats
        stats.ticks += 1
        stats.messages += delivered - len(stalled)
        stats.last_tick_at = now
        stats.last_fanout_seconds = elapsed
        stats.max_fanout_seconds = max(stats.max_fanout_seconds, elapsed)
        stats.views = len(self._audiences)
        stats.encodings = encodings
        if stalled:
            logger.info("dropped %d stalled client(s)", len(stalled))
