"""Fleet mode's alert coordination through Redis: each transition notified once.

Every hub evaluates every host (they all hear the same ticks), and transitions are stamped
with the sample's own time, so all hubs compute the same transition with the same key.
Before notifying, a hub claims the transition with ``SET key 1 NX EX`` on
``sysstream:alerts:claim:<fingerprint>:<event>:<severity>:<time>``: exactly one hub wins
and notifies; the others only update their state. The winner also writes the active set
(``sysstream:alerts:active``), which a hub that starts (or restarts) mid-alert restores, so
it neither forgets nor re-notifies. Silences live in ``sysstream:alerts:silences`` so every
hub mutes the same alerts.

If Redis cannot be reached, a hub notifies nothing: the others, or the same hub once Redis
is back, carry on (a hub without Redis hears no ticks anyway).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import orjson
from redis.exceptions import RedisError

from .._redis import answered_within, open_redis
from ..sansio import AlertEvent, AlertState, Backoff, EventKind, redact_url

__all__ = ["ACTIVE_KEY", "SILENCES_KEY", "RedisCoordinator", "claim_key"]

logger = logging.getLogger("sysstream")
_T = TypeVar("_T")

PREFIX = "sysstream:alerts:"
ACTIVE_KEY = PREFIX + "active"
SILENCES_KEY = PREFIX + "silences"
CLAIM_SECONDS = 7 * 86400  # far longer than any hub's lag behind another


def claim_key(event: AlertEvent) -> str:
    severity = event.severity.value if event.severity is not None else "-"
    return f"{PREFIX}claim:{event.fingerprint}:{event.kind.value}:{severity}:{event.at:.3f}"


class _Failed(enum.Enum):
    FAILED = "failed"


_FAILED = _Failed.FAILED  # what a command that failed, or was not tried, gives


class RedisCoordinator:
    """Claims, the active set and the silences in Redis. After a command fails, none is
    tried until a backoff delay has passed: a frozen Redis would otherwise cost every
    event of an outage (a whole fleet going offline at once) its full timeout, and the
    evaluator would fall minutes behind."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = open_redis(url)
        self._backoff = Backoff(initial=1.0, maximum=30.0)  # commands skipped while it runs
        self.claims_won = 0
        self.claims_lost = 0
        self.skipped = 0  # commands not tried: Redis failed moments before

    async def claim(self, event: AlertEvent) -> bool | None:
        """Whether this hub notifies ``event``: True for the one hub that claimed it first,
        None when Redis cannot tell (a hub that cannot reach Redis notifies nothing)."""
        key = claim_key(event)
        won = await self._command(
            "claim a transition", lambda: self._client.set(key, b"1", nx=True, ex=CLAIM_SECONDS)
        )
        if won is _FAILED:
            return None
        if won:
            self.claims_won += 1
        else:
            self.claims_lost += 1
        return bool(won)

    async def save_active(self, events: list[AlertEvent], active: list[dict[str, Any]]) -> None:
        """Write the firing series these events touched (every hub writes the same)."""
        firing = {a["fingerprint"]: a for a in active if a["state"] == AlertState.FIRING.value}
        touched = {e.fingerprint for e in events if e.kind is not EventKind.PENDING}
        if not touched:
            return
        gone = [f for f in touched if f not in firing]
        present: dict[Any, Any] = {f: orjson.dumps(firing[f]) for f in touched if f in firing}
        pipe = self._client.pipeline(transaction=True)
        if gone:
            pipe.hdel(ACTIVE_KEY, *gone)
        if present:
            pipe.hset(ACTIVE_KEY, mapping=present)
        await self._command("save the active set", pipe.execute)

    async def load_active(self) -> list[dict[str, Any]]:
        saved = await self._command("read the active set", lambda: self._client.hgetall(ACTIVE_KEY))
        return [] if saved is _FAILED else _decoded(saved.values())

    async def save_silences(self, silences: list[dict[str, Any]]) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(SILENCES_KEY)
        if silences:
            pipe.hset(SILENCES_KEY, mapping={s["id"]: orjson.dumps(s) for s in silences})
        await self._command("save the silences", pipe.execute)

    async def load_silences(self) -> list[dict[str, Any]] | None:
        """The shared silences; None when Redis cannot tell (keep the ones in memory)."""
        saved = await self._command("read the silences", lambda: self._client.hgetall(SILENCES_KEY))
        return None if saved is _FAILED else _decoded(saved.values())

    async def close(self) -> None:
        await self._client.aclose()

    async def _command(
        self, doing: str, command: Callable[[], Awaitable[_T]]
    ) -> _T | Literal[_Failed.FAILED]:
        """``command()``, bounded; ``_FAILED`` when it failed or was skipped."""
        if not self._backoff.ready(time.monotonic()):
            self.skipped += 1
            return _FAILED
        try:
            async with answered_within():
                result = await command()
        except (RedisError, OSError) as exc:
            if self._backoff.attempt == 0:  # the first failure of an outage
                logger.warning(
                    "alerts: cannot %s at %s (%s); notifying nothing from this hub until "
                    "Redis answers (retrying with backoff)",
                    doing,
                    redact_url(self.url),
                    exc,
                )
            self._backoff.failed(time.monotonic())
            return _FAILED
        if self._backoff.attempt:
            logger.info("alerts: redis at %s answers again", redact_url(self.url))
            self._backoff.reset()
        return result


def _decoded(values: Any) -> list[dict[str, Any]]:
    found = []
    for raw in values:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found
