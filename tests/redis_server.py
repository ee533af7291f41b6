"""A real ``redis-server`` (Debian's package) on a free port, for the fleet tests.

Started without persistence, so a restart is a Redis that lost everything, as after a
crash of a cache-only deployment. Killed, not stopped, to test faults. Also how a test
cancels a Redis command at each step of the event loop.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis

__all__ = ["RedisServer", "cancel_at_each_step", "free_port"]

READY_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    def __init__(self, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("expected redis-server on PATH (apt-get install redis-server)")
        self.binary = binary
        self.password = password
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--loglevel", "warning"]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
        try:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.process.returncode}")
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"redis-server not ready on port {self.port}")
                time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: connections drop at once, nothing is flushed."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)


async def cancel_at_each_step(
    command: Callable[[], Awaitable[Any]], connect: Callable[[], Awaitable[Any]]
) -> int:
    """Start ``command`` and cancel it after 0, 1, 2, ... loop iterations until one
    finishes first; each cancelled one must end cancelled within 5 s, not return.

    A cancellation landing in the iteration where a write completes is the one that
    redis-py's ``wait_for`` around writes swallowed on Python 3.11. ``connect`` runs before
    each try, so every command starts on an open connection and the steps line up.
    Returns how many commands were cancelled (so a caller can check there were several).
    """
    for steps in range(1000):
        await connect()
        task = asyncio.ensure_future(command())
        for _ in range(steps):
            await asyncio.sleep(0)
        if not task.cancel():  # it finished first: every step before it was tried
            await task
            return steps
        async with asyncio.timeout(5):
            done, _ = await asyncio.wait((task,))
        assert task in done and task.cancelled(), f"cancelled after {steps} steps, it returned"
    raise AssertionError("the command never finished within 1000 steps")
