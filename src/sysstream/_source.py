"""Sources of samples. The hub pulls ticks from a source and never knows where they
come from: :class:`LocalSource` samples this host; fleet mode adds a Redis-fed one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import time
from collections.abc import Mapping
from typing import Any, Protocol

from ._collectors import Collector
from ._sample import Sample
from ._schedule import TickSchedule

__all__ = ["LocalSource", "Source"]


class Source(Protocol):
    """Produces one :class:`Sample` per tick."""

    interval: float

    async def next_sample(self, groups: frozenset[str]) -> Sample:
        """Wait for the next tick and return its sample of (at least) ``groups``."""

    def close(self) -> None:
        """Release threads and connections."""


class LocalSource:
    """Samples this host with psutil on a fixed cadence, off the event loop.

    Each group is read in a worker thread. A group still running when the tick's deadline
    passes (a hung NFS mount under ``disk``) is reported as timed out, and skipped on later
    ticks until its read returns, so one stuck source never blocks the others or piles up
    threads.
    """

    def __init__(
        self,
        collectors: Mapping[str, Collector],
        *,
        interval: float,
        collect_timeout: float | None = None,
    ) -> None:
        self.interval = interval
        self.collect_timeout = collect_timeout if collect_timeout else min(interval / 2, 5.0)
        self._collectors = dict(collectors)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=len(self._collectors) + 2, thread_name_prefix="sysstream-sampler"
        )
        self._running: dict[str, asyncio.Future[Any]] = {}
        self._schedule: TickSchedule | None = None

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(self._collectors)

    async def next_sample(self, groups: frozenset[str]) -> Sample:
        loop = asyncio.get_running_loop()
        if self._schedule is None:
            self._schedule = TickSchedule(self.interval, loop.time())
        deadline = self._schedule.advance(loop.time())
        await asyncio.sleep(max(0.0, deadline - loop.time()))
        return await self._collect(self._schedule.tick, groups & self.groups, deadline)

    async def _collect(self, tick: int, groups: frozenset[str], now: float) -> Sample:
        loop = asyncio.get_running_loop()
        timestamp = time.time()
        errors: dict[str, str] = {}
        started: dict[str, asyncio.Future[Any]] = {}
        for name in sorted(groups):
            if name in self._running:
                errors[name] = f"timed out after {self.collect_timeout:g} s (still running)"
                continue
            future = loop.run_in_executor(self._pool, self._collectors[name].collect, now)
            future.add_done_callback(functools.partial(self._finished, name))
            self._running[name] = started[name] = future
        if started:
            await asyncio.wait(started.values(), timeout=self.collect_timeout)
        values: dict[str, Any] = {}
        for name, future in started.items():
            if not future.done():
                errors[name] = f"timed out after {self.collect_timeout:g} s"
            elif (exc := future.exception()) is not None:
                errors[name] = describe_exception(exc)
            else:
                values[name] = future.result()
        return Sample(tick=tick, timestamp=timestamp, values=values, errors=errors)

    def _finished(self, name: str, future: asyncio.Future[Any]) -> None:
        del self._running[name]
        if not future.cancelled():
            future.exception()  # a late failure was already reported as a timeout

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def describe_exception(exc: BaseException) -> str:
    text = str(exc) or "no details"
    return f"{type(exc).__name__}: {text}".splitlines()[0]
