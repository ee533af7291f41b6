"""``sysstream agent``: sample this host and publish each tick to Redis for the hubs.

The agent serves nothing. Each tick it samples every group kept in history (the same
psutil sampler as ``serve``) and writes it in one pipeline: to the host's pub/sub channel
for live streams, to its capped backlog stream for hubs that start late, and to the set
of known hosts (:mod:`sysstream.sansio._wire` has the keys and format). While Redis is
unreachable ticks are dropped and the agent retries with exponential backoff; sampling
never waits for Redis longer than :data:`PUBLISH_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
import time

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .._redis import answered_within, open_redis
from .._registry import GROUPS
from .._sample import Sample
from .._settings import ExistingDirectory, LogLevel, validated
from ..sampling import LocalSource, build_collectors, describe_exception
from ..sansio import (
    HOSTS_KEY,
    Backoff,
    backlog_key,
    check_host_id,
    check_redis_url,
    encode_tick,
    redact_url,
    ticks_channel,
)

__all__ = ["AgentSettings", "Publisher", "PublisherState", "load_agent_settings", "run_agent"]

logger = logging.getLogger("sysstream")

# Bounds one publish (and a connect): a tick stuck on a dead or frozen Redis must not hold
# up the next samples.
PUBLISH_TIMEOUT = 2.0


def _default_host_id() -> str:
    name = socket.gethostname().split(".")[0]
    try:
        return check_host_id(name)
    except ValueError:
        return "localhost"


class AgentSettings(BaseSettings):
    """What ``sysstream agent`` reads at start: flags and ``SYSSTREAM_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="SYSSTREAM_", frozen=True, extra="ignore")

    redis_url: str = Field(
        description="Redis URL to publish to (redis://, rediss://, with password).",
        json_schema_extra={"flag_alias": "--redis"},
    )
    host_id: str = Field(
        default_factory=_default_host_id,
        description="This host's id in the fleet (letters, digits, '.', '_', '-').",
    )
    interval: float = Field(1.0, ge=0.05, le=3600, description="Seconds between samples.")
    disk_path: ExistingDirectory = Field(
        "/", description="Filesystem whose usage the `disk` field reports."
    )
    backlog: int = Field(
        600, ge=1, le=100_000, description="Ticks kept in Redis for hubs that start late."
    )
    log_level: LogLevel = Field("info", description="Log level of the agent.")

    @field_validator("redis_url")
    @classmethod
    def _redis_url_parses(cls, value: str) -> str:
        return check_redis_url(value)

    @field_validator("host_id")
    @classmethod
    def _host_id_is_a_key(cls, value: str) -> str:
        return check_host_id(value)


def load_agent_settings(**overrides: object) -> AgentSettings:
    """Like :func:`~sysstream.load_settings`, for the agent; one-line :class:`SettingsError`."""
    return validated(AgentSettings, **overrides)


class PublisherState(enum.Enum):
    CONNECTING = "connecting"  # nothing published yet
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"  # waiting out a backoff delay
    CLOSED = "closed"


class Publisher:
    """Writes one host's ticks to Redis; after a failure, skips ticks until the backoff
    delay has passed, then tries again (redis-py reconnects on the next command)."""

    def __init__(self, url: str, host: str, *, backlog: int, max_backoff: float = 10.0) -> None:
        self.host = host
        self.backlog = backlog
        self.state = PublisherState.CONNECTING
        self.published = 0
        self.dropped = 0
        self._shown = redact_url(url)
        self._channel = ticks_channel(host)
        self._backlog_key = backlog_key(host)
        self._backoff = Backoff(initial=0.2, maximum=max_backoff)
        # Retries are ours (the backoff above), not redis-py's per command.
        self._client = open_redis(url, connect_timeout=PUBLISH_TIMEOUT, retry=Retry(NoBackoff(), 0))

    async def publish(self, interval: float, sample: Sample) -> bool:
        """Publish one tick; False when it was dropped (Redis unreachable)."""
        if self.state is PublisherState.CLOSED:
            raise RuntimeError("expected an open publisher, got a closed one")
        if not self._backoff.ready(time.monotonic()):
            self.dropped += 1
            return False
        payload = encode_tick(self.host, interval, sample)
        try:
            async with answered_within(PUBLISH_TIMEOUT), self._client.pipeline(False) as pipe:
                pipe.publish(self._channel, payload)
                pipe.xadd(self._backlog_key, {"tick": payload}, maxlen=self.backlog)
                pipe.zadd(HOSTS_KEY, {self.host: sample.timestamp})
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return False
        if self.state is not PublisherState.CONNECTED:
            logger.info("agent %s: publishing to %s", self.host, self._shown)
        self.state = PublisherState.CONNECTED
        self._backoff.reset()
        self.published += 1
        return True

    def _failed(self, exc: BaseException) -> None:
        self.dropped += 1
        if self.state is not PublisherState.DISCONNECTED:
            logger.warning(
                "agent %s: redis at %s unreachable (%s); retrying with backoff",
                self.host,
                self._shown,
                describe_exception(exc),
            )
        self.state = PublisherState.DISCONNECTED
        self._backoff.failed(time.monotonic())

    async def close(self) -> None:
        self.state = PublisherState.CLOSED
        await self._client.aclose()


def published_groups(available: frozenset[str]) -> frozenset[str]:
    """The groups an agent samples each tick: those kept in history."""
    return frozenset(name for name in available if GROUPS[name].history)


async def run_agent(settings: AgentSettings) -> None:
    """Sample and publish until cancelled."""
    source = LocalSource(build_collectors(disk_path=settings.disk_path), interval=settings.interval)
    groups = published_groups(source.groups)
    publisher = Publisher(settings.redis_url, settings.host_id, backlog=settings.backlog)
    logger.info(
        "agent %s: sampling %s every %g s",
        settings.host_id,
        ", ".join(sorted(groups)),
        settings.interval,
    )
    try:
        while True:
            sample = await source.next_sample(groups)
            await publisher.publish(settings.interval, sample)
    finally:
        source.close()
        await asyncio.shield(publisher.close())
