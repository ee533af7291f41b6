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
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from .._redis import COMMAND_TIMEOUT, answered_within, open_redis
from .._registry import ALWAYS_FIELDS
from .._sample import Sample
from .._settings import DEFAULT_MAX_HOSTS, DEFAULT_MAX_VIEWS
from ..sampling import describe_exception
from ..sansio import (
    HOSTS_KEY,
    MAX_AGE,
    MAX_CLOCK_AHEAD,
    MISSED_INTERVALS,
    TICKS_PATTERN,
    WIRE_REASONS,
    Backoff,
    HostRecord,
    HostStatus,
    Tick,
    WireError,
    WireReason,
    backlog_key,
    check_host_id,
    check_timestamp,
    decode_tick,
    host_of_channel,
    redact_url,
)
from ..stream import History, MetricsHub, Recorder
from ._source import RemoteSource, is_placeholder

__all__ = ["DROP_REASONS", "Fleet", "HostHistory", "RedisState", "RemoteHost"]

logger = logging.getLogger("sysstream")

# Malformed messages are logged at most this often, all hosts and channels together:
# neither one bad agent nor many forged channels may flood the log. Each is counted.
COMPLAINT_EVERY = 60.0
# Why a hub drops a message: the wire check it failed, or its host being one past
# --max-hosts. Counted per reason (Prometheus: sysstream_fleet_dropped_messages_total).
DROP_REASONS: tuple[str, ...] = (*WIRE_REASONS, "max_hosts")
# History kept in memory per host, whatever its agent sends: the full catalogue every
# second for an hour is ~11 MB (1-3 KB a tick).
MAX_HOST_HISTORY_BYTES = 16 * 1024 * 1024
# The pub/sub connection is pinged when nothing arrived on it for this long, and counted
# dead when nothing, not even the answer, arrived for twice as long: a frozen Redis or a
# silently dropped connection (no RST, e.g. a NAT timeout) is noticed and reconnected.
HEALTH_CHECK_SECONDS = 5.0
_POLL_SECONDS = 1.0
# Reading every host's backlog is a round trip per page of up to --max-hosts streams.
BACKLOG_TIMEOUT = 6 * COMMAND_TIMEOUT
# Backlog entries read per host per round trip: a page of full-catalogue ticks is ~200 KB,
# of the largest ticks a hub accepts (128 KiB) 8 MiB.
BACKLOG_PAGE = 64

_Listed = tuple[str, float | None]  # a host in the hosts set and its last tick, if credible
_Entry = tuple[bytes, dict[bytes, bytes]]  # a backlog entry: its id and its fields


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
        super().__init__(seconds, interval, max_bytes=MAX_HOST_HISTORY_BYTES)
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

    def backfill(self, ticks: Iterable[Tick], last_seen: float | None, now: float) -> int:
        """Ticks read from the backlog, oldest first: into history, not to clients.

        What Redis says of when the host was last seen (its score, its ticks' stamps) is
        taken as no later than ``now``: stamps may run up to MAX_CLOCK_AHEAD ahead, and a
        host seen "in the future" would look online for that long."""
        kept = 0
        for tick in ticks:
            if self.record.observe(tick.sample, tick.interval, min(tick.sample.timestamp, now)):
                self.history.record(tick.sample)
                kept += 1
        if last_seen is not None:
            last_seen = min(last_seen, now)
            if self.record.last_seen is None or last_seen > self.record.last_seen:
                self.record.last_seen = last_seen
        if self.record.latest is not None and self.hub.latest is None:
            self.hub.latest = self.record.latest  # GET …/metrics answers at once
        return kept


class Fleet:
    """Every remote host this hub serves, fed by one Redis subscription.

    ``recorders_for(host)`` gives extra per-host recorders (a store keyed by host id);
    ``on_forget(host)`` is called when the hub stops serving a host it never had a tick
    of, to let go of what was tied to it (the host's alert subscription).
    """

    def __init__(
        self,
        url: str,
        *,
        history_seconds: float,
        max_views: int = DEFAULT_MAX_VIEWS,
        max_hosts: int = DEFAULT_MAX_HOSTS,
        recorders_for: Callable[[str], Iterable[Recorder]] = lambda host: (),
        on_forget: Callable[[str], None] = lambda host: None,
        max_backoff: float = 5.0,
    ) -> None:
        self.url = url
        self.history_seconds = history_seconds
        self.max_views = max_views  # per host
        self.max_hosts = max_hosts
        self.hosts: dict[str, RemoteHost] = {}
        # The served hosts no tick of which was accepted yet, oldest first: names anyone
        # may list in Redis. Each holds its --max-hosts slot only until a host that does
        # publish needs it.
        self.silent: dict[str, None] = {}
        self.state = RedisState.CONNECTING
        # Messages dropped since start, by reason (DROP_REASONS).
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self.unlogged = 0  # complaints not logged since start: over the log throttle
        self._recorders_for = recorders_for
        self._on_forget = on_forget
        self._backoff = Backoff(initial=0.2, maximum=max_backoff)
        self._complained_at = -math.inf
        self._unreported = 0  # complaints since the last one logged
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
            client = open_redis(self.url)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                # Subscribe before reading the backlog: ticks published meanwhile wait in
                # the socket and are dispatched after it, the duplicates dropped.
                async with answered_within():
                    await pubsub.psubscribe(TICKS_PATTERN)
                await self._discover(client)
                self._set_connected(shown)
                await self._receive(pubsub)
            except (RedisError, OSError) as exc:
                self._set_disconnected(shown, exc)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()
            await asyncio.sleep(self._backoff.next_delay())

    async def _receive(self, pubsub: PubSub) -> None:
        """Dispatch ticks until the connection fails or goes silent (see
        :data:`HEALTH_CHECK_SECONDS`; our own PING, as redis-py's health check swallows
        its answer and never says when none came)."""
        loop = asyncio.get_running_loop()
        heard = loop.time()  # when anything last arrived on the connection
        pinged = False
        while True:
            message = await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=_POLL_SECONDS
            )
            now = loop.time()
            if message is not None:
                heard, pinged = now, False
                if message["type"] == "pmessage":
                    await self._dispatch(message["channel"], message["data"])
            elif now - heard > 2 * HEALTH_CHECK_SECONDS:
                raise TimeoutError(
                    f"no answer from Redis within {HEALTH_CHECK_SECONDS:g} s of a ping"
                )
            elif now - heard > HEALTH_CHECK_SECONDS and not pinged:
                await pubsub.ping()
                pinged = True

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
        now = time.time()
        # Any agent may add names to the host set (docs/fleet.md, Trust): read at most
        # --max-hosts of the most recently seen ones, and as many of any others to fill
        # what room is left, never the whole set (two million names took the hub longer
        # than the command timeout to parse, so it never connected).
        pipe = client.pipeline(transaction=False)
        pipe.zrange(
            HOSTS_KEY, now + MAX_CLOCK_AHEAD, now - MAX_AGE, desc=True, byscore=True,
            offset=0, num=self.max_hosts, withscores=True,
        )  # fmt: skip
        pipe.zrange(HOSTS_KEY, 0, self.max_hosts - 1, withscores=True)
        async with answered_within():
            recent, others = await pipe.execute()
        known: dict[bytes, float] = {}
        for raw, score in cast("list[tuple[bytes, float]]", [*recent, *others]):
            known.setdefault(raw, score)
        listed: dict[str, float | None] = {}
        for raw, score in known.items():
            try:
                host = check_host_id(raw.decode(errors="replace"))
            except ValueError as exc:
                self._complain("?", f"{HOSTS_KEY} lists a bad host: {exc}", "host")
                continue
            last_seen: float | None = score
            try:
                check_timestamp(score, now, f"{HOSTS_KEY} score")
            except WireError as exc:
                self._complain(host, str(exc), exc.reason)
                last_seen = None  # its ticks, if real, will tell
            listed[host] = last_seen
        # The hosts this hub serves compete too, read or not (the most recent names may
        # all be invented ones).
        for host, served in self.hosts.items():
            listed.setdefault(host, served.record.last_seen)
        unproven = [host for host in listed if host not in self.hosts or host in self.silent]
        async with answered_within():
            newest = await self._newest_ticks(client, unproven, now)
        hosts = self._within_limit(listed, newest, now)
        chosen = {host for host, _ in hosts}
        for host in [host for host in self.silent if host not in chosen]:
            await self._forget(host, "hosts with ticks in Redis took its place")
        wanted = {host: self._backlog_wanted(host, now, last_seen) for host, last_seen in hosts}
        async with answered_within(BACKLOG_TIMEOUT):
            backlogs = await self._read_backlogs(client, wanted)
        for host, last_seen in hosts:
            entries = backlogs[host]
            ticks: list[Tick] = []
            for _entry_id, fields in reversed(entries):
                try:
                    ticks.append(decode_tick(fields.get(b"tick", b""), host=host, now=now))
                except WireError as exc:
                    self._complain(host, f"bad backlog entry: {exc}", exc.reason)
            interval = ticks[-1].interval if ticks else None
            remote = await self._host(host, interval)
            if remote is None:
                continue
            kept = remote.backfill(ticks, last_seen, now)
            if remote.record.latest is not None:
                self.silent.pop(host, None)
            if kept:
                logger.debug("fleet: backfilled %d ticks of host %s", kept, host)

    async def _newest_ticks(
        self, client: aioredis.Redis, hosts: list[str], now: float
    ) -> dict[str, float]:
        """When each of ``hosts`` whose backlog ends in a valid tick last ticked (no later
        than ``now``): one entry per host, so that names listed without any data (anyone
        may list one) rank below the hosts that publish."""
        pipe = client.pipeline(transaction=False)
        for host in hosts:
            pipe.xrevrange(backlog_key(host), count=1)
        found: dict[str, float] = {}
        for host, entries in zip(hosts, await pipe.execute(), strict=True):
            for _entry_id, fields in entries:
                with contextlib.suppress(WireError):
                    tick = decode_tick(fields.get(b"tick", b""), host=host, now=now)
                    found[host] = min(tick.sample.timestamp, now)
        return found

    async def _read_backlogs(
        self, client: aioredis.Redis, wanted: dict[str, int]
    ) -> dict[str, list[_Entry]]:
        """The newest ``wanted[host]`` entries of each host's backlog, newest first, read
        a page per host per round trip and at most :data:`MAX_HOST_HISTORY_BYTES` (plus
        a page) per host: an agent may XADD what it likes to its backlog, and reading it
        whole (an hour of 120 KB entries) once took a hub to 900 MB."""
        found: dict[str, list[_Entry]] = {host: [] for host in wanted}
        size = dict.fromkeys(wanted, 0)
        after = dict.fromkeys(wanted, "+")
        pending = [host for host, count in wanted.items() if count > 0]
        while pending:
            pipe = client.pipeline(transaction=False)
            for host in pending:
                count = min(BACKLOG_PAGE, wanted[host] - len(found[host]))
                pipe.xrevrange(backlog_key(host), max=after[host], count=count)
            pages: list[list[_Entry]] = await pipe.execute()
            reading = []
            for host, page in zip(pending, pages, strict=True):
                entries = found[host]
                entries += page
                size[host] += sum(len(k) + len(v) for _, fields in page for k, v in fields.items())
                if (
                    len(page) == BACKLOG_PAGE
                    and len(entries) < wanted[host]
                    and size[host] < MAX_HOST_HISTORY_BYTES
                ):
                    after[host] = "(" + page[-1][0].decode()
                    reading.append(host)
            pending = reading
        return found

    def _within_limit(
        self, listed: dict[str, float | None], newest: dict[str, float], now: float
    ) -> list[_Listed]:
        """Up to ``max_hosts`` of ``listed`` (host: last seen): the hosts this hub has
        ticks of keep their place, then those with a tick in their backlog, the most
        recent first, then names with no data at all; the rest are counted and logged."""

        def rank(host: str) -> tuple[int, float]:
            if host in self.hosts and host not in self.silent:
                return (2, 0.0)
            if host in newest:
                return (1, newest[host])
            seen = listed[host]
            return (0, -math.inf if seen is None else min(seen, now))

        ordered = sorted(listed, key=rank, reverse=True)
        kept, left = ordered[: self.max_hosts], ordered[self.max_hosts :]
        ignored = sum(1 for host in left if host not in self.hosts)
        if ignored:
            self.dropped["max_hosts"] += ignored
            self._log_throttled(
                f"fleet: {HOSTS_KEY} lists at least {len(listed)} hosts; this hub serves at "
                f"most {self.max_hosts} (--max-hosts) and ignores {ignored}"
            )
        return [(host, listed[host]) for host in kept]

    def _backlog_wanted(self, host: str, now: float, last_seen: float | None) -> int:
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
            now = time.time()
            tick = decode_tick(data, host=host, now=now)
        except WireError as exc:
            self._complain(host, str(exc), exc.reason)
            return
        if host not in self.hosts and len(self.hosts) >= self.max_hosts and self.silent:
            # A host that publishes takes the slot of the oldest one that never did.
            await self._forget(next(iter(self.silent)), f"host {host} publishes and needs its slot")
        remote = await self._host(host, tick.interval)
        if remote is not None:
            remote.receive(tick, now)
            self.silent.pop(host, None)

    async def _host(self, host: str, interval: float | None) -> RemoteHost | None:
        """The host's :class:`RemoteHost`, created on first sight; None (counted and
        logged) when it would be one host more than ``max_hosts``."""
        remote = self.hosts.get(host)
        if remote is None:
            if len(self.hosts) >= self.max_hosts:
                self.dropped["max_hosts"] += 1
                self._log_throttled(
                    f"fleet: ignored host {host}: this hub serves at most {self.max_hosts} "
                    "hosts (--max-hosts)"
                )
                return None
            record = HostRecord(host, interval or 1.0)
            remote = self.hosts[host] = RemoteHost(self, record, self.history_seconds)
            self.silent[host] = None
            remote.history.extra.extend(self._recorders_for(host))
            await remote.hub.start()
            logger.info("fleet: serving host %s", host)
        return remote

    async def _forget(self, host: str, why: str) -> None:
        """Stop serving ``host``, which never had a tick here: its clients are cut (they
        reconnect and get 404), its hub stopped, and ``on_forget`` lets go of the rest. It
        has no history, store rows or alert series: those come from ticks only."""
        remote = self.hosts.pop(host)
        self.silent.pop(host, None)
        remote.hub.abort_clients()
        await remote.hub.stop()
        self._on_forget(host)
        logger.info("fleet: stopped serving host %s, which never published: %s", host, why)

    @property
    def skipped(self) -> int:
        """Malformed messages dropped since start, whatever the reason."""
        return sum(self.dropped[reason] for reason in WIRE_REASONS)

    @property
    def refused(self) -> int:
        """Valid ticks (or listed hosts) dropped: their host would be one past max_hosts."""
        return self.dropped["max_hosts"]

    def _complain(self, host: str, problem: str, reason: WireReason) -> None:
        self.dropped[reason] += 1
        self._log_throttled(f"fleet: skipped a malformed message from host {host}: {problem}")

    def _log_throttled(self, line: str) -> None:
        """Log ``line`` unless a line was logged within ``COMPLAINT_EVERY`` seconds; the
        next one logged says how many were held back meanwhile."""
        now = time.monotonic()
        if now - self._complained_at < COMPLAINT_EVERY:
            self._unreported += 1
            self.unlogged += 1
            return
        if self._unreported:
            line += f" ({self._unreported} more not logged in the last {COMPLAINT_EVERY:g} s)"
        self._complained_at, self._unreported = now, 0
        logger.warning("%s", line)
