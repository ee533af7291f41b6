"""The hub side of fleet mode: one Redis subscription per process, feeding one
:class:`~sysstream.MetricsHub` per remote host.

:class:`Fleet` pattern-subscribes to every host's tick channel, decodes each message once
(:mod:`sysstream.sansio._wire`) and hands the sample to that host's
:class:`~sysstream.fleet._source.RemoteSource`; the host's hub then encodes it once per
view, as the local hub does. On each (re)connect it reads the known hosts and their
backlogs into history, so a hub that starts late, or was cut off, fills the gap. While
Redis is unreachable it retries with backoff and every host's stream carries the
contract's error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .._registry import ALWAYS_FIELDS
from .._sample import Sample
from .._settings import DEFAULT_MAX_VIEWS
from ..sampling import describe_exception
from ..sansio import (
    HOSTS_KEY,
    MISSED_INTERVALS,
    TICKS_PATTERN,
    Backoff,
    HostRecord,
    HostStatus,
    Tick,
    WireError,
    backlog_key,
    check_host_id,
    decode_tick,
    host_of_channel,
    redact_url,
)
from ..stream import History, MetricsHub, Recorder
from ._source import RemoteSource, is_placeholder

__all__ = ["Fleet", "HostHistory", "RedisState", "RemoteHost"]

logger = logging.getLogger("sysstream")

# A malformed message is logged at most this often per host: one bad agent must not
# flood the log once per tick.
COMPLAINT_EVERY = 60.0
# The pub/sub connection is pinged when idle this long, so a silently dropped connection
# (no RST, e.g. a NAT timeout) is noticed and reconnected.
HEALTH_CHECK_SECONDS = 5
_POLL_SECONDS = 1.0


class RedisState(enum.Enum):
    CONNECTING = "connecting"  # never connected yet
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"  # lost; retrying with backoff
    STOPPED = "stopped"


class HostHistory(History):
    """A host's history ring that keeps real ticks only, in time order.

    The stand-in samples yielded while there is no data are not kept, and a tick not
    newer than the last one kept (read again from the backlog) is skipped, so a backfill
    after an outage slots into the gap it left.
    """

    def __init__(self, seconds: float, interval: float) -> None:
        super().__init__(seconds, interval)
        self.newest = -math.inf
        self.extra: list[Recorder] = []  # per-host recorders fed the same ticks (the store)

    def record(self, sample: Sample) -> None:
        if is_placeholder(sample) or sample.timestamp <= self.newest:
            return
        self.newest = sample.timestamp
        super().record(sample)
        for recorder in self.extra:
            try:
                recorder.record(sample)
            except Exception:
                logger.exception("recorder %r failed", recorder)


class RemoteHost:
    """One remote host on this hub: what is known of it, its source, hub and history."""

    def __init__(self, fleet: Fleet, record: HostRecord, history_seconds: float) -> None:
        self.record = record
        self.source = RemoteSource(record.host, record.interval, self._unavailable)
        self.history = HostHistory(history_seconds, record.interval)
        self.hub = MetricsHub(
            self.source, always=ALWAYS_FIELDS, history=self.history, max_views=fleet.max_views
        )
        self._fleet = fleet

    def _unavailable(self) -> str | None:
        return self._fleet.unavailable(self.record)

    def receive(self, tick: Tick, seen_at: float) -> None:
        """A live tick: on to the hub, unless it was already read from the backlog."""
        if self.record.observe(tick.sample, tick.interval, seen_at):
            self.source.deliver(tick.sample, tick.interval)
            if self.record.transition(seen_at) is HostStatus.ONLINE:
                logger.info("host %s online", self.record.host)

    def backfill(self, ticks: Iterable[Tick], last_seen: float) -> int:
        """Ticks read from the backlog, oldest first: into history, not to clients."""
        kept = 0
        for tick in ticks:
            if self.record.observe(tick.sample, tick.interval, tick.sample.timestamp):
                self.history.record(tick.sample)
                kept += 1
        if self.record.last_seen is None or last_seen > self.record.last_seen:
            self.record.last_seen = last_seen
        if self.record.latest is not None and self.hub.latest is None:
            self.hub.latest = self.record.latest  # GET …/metrics answers at once
        return kept


class Fleet:
    """Every remote host this hub serves, fed by one Redis subscription.

    ``recorders_for(host)`` gives extra per-host recorders (a store keyed by host id).
    """

    def __init__(
        self,
        url: str,
        *,
        history_seconds: float,
        max_views: int = DEFAULT_MAX_VIEWS,
        recorders_for: Callable[[str], Iterable[Recorder]] = lambda host: (),
        max_backoff: float = 5.0,
    ) -> None:
        self.url = url
        self.history_seconds = history_seconds
        self.max_views = max_views  # per host
        self.hosts: dict[str, RemoteHost] = {}
        self.state = RedisState.CONNECTING
        self.skipped = 0  # malformed messages dropped
        self._recorders_for = recorders_for
        self._backoff = Backoff(initial=0.2, maximum=max_backoff)
        self._complained: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    # Lifecycle

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("expected a fleet not yet started, got a started one")
        self._task = asyncio.create_task(self._run(), name="sysstream-fleet")

    async def stop(self) -> None:
        self.state = RedisState.STOPPED
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for remote in self.hosts.values():
            await remote.hub.stop()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    # Queries

    def unavailable(self, record: HostRecord) -> str | None:
        """Why ``record``'s host has no data now, or None when a tick is merely late."""
        if self.state is not RedisState.CONNECTED:
            return "redis connection lost" if self.hosts else "redis not connected"
        now = time.time()
        if record.transition(now) is HostStatus.OFFLINE:
            logger.warning(
                "host %s offline (no tick for %d intervals)", record.host, MISSED_INTERVALS
            )
        return record.silence(now)

    def summaries(self) -> list[dict[str, Any]]:
        now = time.time()
        return [self.hosts[name].record.summary(now) for name in sorted(self.hosts)]

    # Redis

    async def _run(self) -> None:
        shown = redact_url(self.url)
        while True:
            client = aioredis.Redis.from_url(
                self.url,
                socket_connect_timeout=5,
                socket_keepalive=True,
                health_check_interval=HEALTH_CHECK_SECONDS,
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                # Subscribe before reading the backlog: ticks published meanwhile wait in
                # the socket and are dispatched after it, the duplicates dropped.
                await pubsub.psubscribe(TICKS_PATTERN)
                await self._discover(client)
                self._set_connected(shown)
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=_POLL_SECONDS
                    )
                    if message is not None and message["type"] == "pmessage":
                        await self._dispatch(message["channel"], message["data"])
            except (RedisError, OSError) as exc:
                self._set_disconnected(shown, exc)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()
            await asyncio.sleep(self._backoff.next_delay())

    def _set_connected(self, shown: str) -> None:
        if self.state is not RedisState.CONNECTED:
            logger.info("fleet: subscribed to %s (%d hosts known)", shown, len(self.hosts))
        self.state = RedisState.CONNECTED
        self._backoff.reset()
        self._connected.set()

    def _set_disconnected(self, shown: str, exc: BaseException) -> None:
        if self.state is RedisState.CONNECTED or self._backoff.attempt == 0:
            logger.warning(
                "fleet: redis at %s unreachable (%s); retrying with backoff",
                shown,
                describe_exception(exc),
            )
        if self.state is not RedisState.STOPPED:
            self.state = (
                RedisState.DISCONNECTED if self._connected.is_set() else RedisState.CONNECTING
            )

    async def _discover(self, client: aioredis.Redis) -> None:
        """Read the known hosts and the part of each backlog this hub has not seen."""
        known = cast(
            "list[tuple[bytes, float]]", await client.zrange(HOSTS_KEY, 0, -1, withscores=True)
        )
        hosts: list[tuple[str, float]] = []
        for raw, score in known:
            try:
                hosts.append((check_host_id(raw.decode(errors="replace")), score))
            except ValueError as exc:
                self._complain("?", f"{HOSTS_KEY} lists a bad host: {exc}")
        now = time.time()
        pipe = client.pipeline(transaction=False)
        for host, last_seen in hosts:
            pipe.xrevrange(backlog_key(host), count=self._backlog_wanted(host, now, last_seen))
        replies: list[list[tuple[bytes, dict[bytes, bytes]]]] = await pipe.execute()
        for (host, last_seen), entries in zip(hosts, replies, strict=True):
            ticks: list[Tick] = []
            for _entry_id, fields in reversed(entries):
                try:
                    ticks.append(decode_tick(fields.get(b"tick", b""), host=host))
                except WireError as exc:
                    self._complain(host, f"bad backlog entry: {exc}")
            interval = ticks[-1].interval if ticks else None
            remote = await self._host(host, interval)
            kept = remote.backfill(ticks, last_seen)
            if kept:
                logger.debug("fleet: backfilled %d ticks of host %s", kept, host)

    def _backlog_wanted(self, host: str, now: float, last_seen: float) -> int:
        remote = self.hosts.get(host)
        interval = remote.record.interval if remote is not None else 1.0
        span = self.history_seconds
        if remote is not None and remote.history.newest > -math.inf:
            span = min(span, now - remote.history.newest)
        return max(1, math.ceil(span / interval) + 2)

    async def _dispatch(self, channel: bytes, data: bytes) -> None:
        host = "?"
        try:
            host = host_of_channel(channel)
            tick = decode_tick(data, host=host)
        except WireError as exc:
            self._complain(host, str(exc))
            return
        remote = await self._host(host, tick.interval)
        remote.receive(tick, time.time())

    async def _host(self, host: str, interval: float | None) -> RemoteHost:
        remote = self.hosts.get(host)
        if remote is None:
            record = HostRecord(host, interval or 1.0)
            remote = self.hosts[host] = RemoteHost(self, record, self.history_seconds)
            remote.history.extra.extend(self._recorders_for(host))
            await remote.hub.start()
            logger.info("fleet: serving host %s", host)
        return remote

    def _complain(self, host: str, problem: str) -> None:
        self.skipped += 1
        now = time.monotonic()
        if now - self._complained.get(host, -math.inf) >= COMPLAINT_EVERY:
            self._complained[host] = now
            logger.warning("fleet: skipped a malformed message from host %s: %s", host, problem)
