"""``sysstream._redis``: a client from ``open_redis`` stops a command when its task is
cancelled, at whatever step the cancellation lands (a real redis-server)."""

from __future__ import annotations

from sysstream._redis import open_redis

from .redis_server import cancel_at_each_step


async def test_a_command_cancelled_at_any_step_ends_cancelled(redis_url: str) -> None:
    client = open_redis(redis_url)
    try:
        cancelled = await cancel_at_each_step(lambda: client.set("key", "value"), client.ping)
        assert cancelled >= 2  # the command was caught in flight, not only before it began
        assert await client.get("key") == b"value"  # the one left to finish did its work
    finally:
        await client.aclose()
