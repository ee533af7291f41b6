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

import logging
from typing import Any

import orjson
from redis.exceptions import RedisError

from .._redis import answered_within, open_redis
from ..sansio import AlertEvent, AlertState, EventKind, redact_url

__all__ = ["ACTIVE_KEY", "SILENCES_KEY", "RedisCoordinator", "claim_key"]

logger = logging.getLogger("sysstream")

PREFIX = "sysstream:alerts:"
ACTIVE_KEY = PREFIX + "active"
SILENCES_KEY = PREFIX + "silences"
CLAIM_SECONDS = 7 * 86400  # far longer than any hub's lag behind another


def claim_key(event: AlertEvent) -> str:
    severity = event.severity.value if event.severity is not None else "-"
    return f"{PREFIX}claim:{event.fingerprint}:{event.kind.value}:{severity}:{event.at:.3f}"


class RedisCoordinator:
    def __init__(self, url: str) -> None:
        self.url = url
        self._client = open_redis(url)
        self.claims_won = 0
        self.claims_lost = 0

    async def claim(self, event: AlertEvent) -> bool:
        try:
            async with answered_within():
                won = await self._client.set(claim_key(event), b"1", nx=True, ex=CLAIM_SECONDS)
        except (RedisError, OSError) as exc:
            logger.warning(
                "alerts: cannot claim %s %s at %s (%s); not notifying from this hub",
                event.rule,
                event.kind.value,
                redact_url(self.url),
                exc,
            )
            return False
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
        try:
            pipe = self._client.pipeline(transaction=True)
            if gone:
                pipe.hdel(ACTIVE_KEY, *gone)
            if present:
                pipe.hset(ACTIVE_KEY, mapping=present)
            async with answered_within():
                await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.warning("alerts: cannot save the active set to Redis: %s", exc)

    async def load_active(self) -> list[dict[str, Any]]:
        try:
            async with answered_within():
                saved = await self._client.hgetall(ACTIVE_KEY)
        except (RedisError, OSError) as exc:
            logger.warning("alerts: cannot read the active set from Redis: %s", exc)
            return []
        return _decoded(saved.values())

    async def save_silences(self, silences: list[dict[str, Any]]) -> None:
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(SILENCES_KEY)
            if silences:
                pipe.hset(SILENCES_KEY, mapping={s["id"]: orjson.dumps(s) for s in silences})
            async with answered_within():
                await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.warning("alerts: cannot save silences to Redis: %s", exc)

    async def load_silences(self) -> list[dict[str, Any]] | None:
        try:
            async with answered_within():
                saved = await self._client.hgetall(SILENCES_KEY)
        except (RedisError, OSError):
            return None  # keep the ones in memory
        return _decoded(saved.values())

    async def close(self) -> None:
        await self._client.aclose()


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
