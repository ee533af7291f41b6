"""How sysstream opens Redis: one client factory for the agent, the fleet hub and alert
coordination, so every connection keeps the same two promises: each command is bounded in
time, and a task cancelled in the middle of one stops.

redis-py bounds a write with ``asyncio.wait_for`` whenever the client has a socket timeout
(redis-py 8 sets one, 5 s, by default). On Python 3.11 ``wait_for`` swallows a
cancellation that arrives as the write completes, so an agent or hub stopped at that
moment ran on forever (a fleet test hung in CI). Clients from :func:`open_redis` have no
socket timeout; callers bound each command, or each pipeline, with :func:`answered_within`
(``asyncio.timeout``, which lets a cancellation through).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis

__all__ = ["COMMAND_TIMEOUT", "answered_within", "open_redis"]

# Seconds one command (or one pipeline) may take before it counts as a failure.
COMMAND_TIMEOUT = 5.0


def open_redis(
    url: str, *, connect_timeout: float = COMMAND_TIMEOUT, **options: Any
) -> aioredis.Redis:
    """A client for ``url`` that connects within ``connect_timeout`` and never puts
    ``asyncio.wait_for`` around a command (see the module docstring)."""
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout,
        socket_timeout=None,
        socket_keepalive=True,
        **options,
    )


@asynccontextmanager
async def answered_within(seconds: float = COMMAND_TIMEOUT) -> AsyncIterator[None]:
    """Bound the Redis commands in the block; past ``seconds``, :class:`TimeoutError`
    saying so (redis-py disconnects, so the next command starts on a clean connection)."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise TimeoutError(f"no answer from Redis within {seconds:g} s") from None
