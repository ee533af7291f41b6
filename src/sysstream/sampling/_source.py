"""Sources of samples. The hub pulls ticks from a source and never knows where they
come from: :class:`LocalSource` samples this host; fleet mode adds a Redis-fed one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._registry import DEFAULT_FIELDS, GROUPS
from .._sample import Partial, Sample
from ..sansio import TickSchedule
from ._collectors import Collector

__all__ = ["LocalSource", "Source", "describe_exception"]


class Source(Protocol):
    """Produces one :class:`Sample` per tick."""

    interval: float

    async def next_sample(self, groups: frozenset[str]) -> Sample:
        """Wait for the next tick and return its sample of (at least) ``groups``."""

    def close(self) -> None:
        """Release threads and connections."""


@dataclass(slots=True)
class _Job:
    """One tick's reads, run in order in one worker thread. ``current`` names the group
    being read, so a job cut off at the deadline says which reader hung."""

    names: list[str]
    results: dict[str, tuple[bool, Any]] = field(default_factory=dict)
    current: str | None = None


class LocalSource:
    """Samples this host with psutil on a fixed cadence, off the event loop.

    A tick's reads run in one worker thread (one hand-off per tick, not per group). A read
    still running at the deadline (a hung NFS mount under ``mounts``) is reported as timed
    out, and that group is skipped on later ticks until the read returns, so one stuck
    reader never blocks the tick, the other groups, or piles up threads. Groups with a
    slower cadence (``processes``) are read on their ticks and repeated in between.
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
            max_workers=4, thread_name_prefix="sysstream-sampler"
        )
        self._hung: dict[str, asyncio.Future[None]] = {}
        self._slow_values: dict[str, tuple[int, Any]] = {}
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
        timestamp = time.time()
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        due: list[str] = []
        for name in sorted(groups, key=_reading_order):
            if name in self._hung:
                errors[name] = f"timed out after {self.collect_timeout:g} s (still running)"
            elif (cached := self._slow_values.get(name)) and tick - cached[0] < GROUPS[name].every:
                values[name] = cached[1]
            else:
                due.append(name)
        if due:
            job = _Job(due)
            future = asyncio.get_running_loop().run_in_executor(self._pool, self._run, job, now)
            # asyncio.wait, not wait_for(shield(…)): it never cancels the read, and on
            # Python 3.11 wait_for swallows a cancellation that arrives as the read
            # completes, so the hub's task would never stop (issue 13).
            done, _ = await asyncio.wait((future,), timeout=self.collect_timeout)
            if not done:
                hung = job.current
                if hung is not None:
                    self._hung[hung] = future
                    future.add_done_callback(functools.partial(self._unhang, hung))
            for name in due:
                ok, result = job.results.get(name, (False, None))
                if ok:
                    if isinstance(result, Partial):
                        result, errors[name] = result.value, result.reason
                    values[name] = result
                    if GROUPS[name].every > 1:
                        self._slow_values[name] = (tick, result)
                elif result is not None:
                    errors[name] = result
                elif name == job.current:
                    errors[name] = f"timed out after {self.collect_timeout:g} s"
                else:
                    errors[name] = f"not read: waiting behind {job.current}, which timed out"
        return Sample(tick=tick, timestamp=timestamp, values=values, errors=errors)

    def _unhang(self, name: str, _future: asyncio.Future[None]) -> None:
        del self._hung[name]

    def _run(self, job: _Job, now: float) -> None:
        for name in job.names:
            job.current = name
            try:
                job.results[name] = (True, self._collectors[name].collect(now))
            except Exception as exc:  # reported in the sample; the other groups go on
                job.results[name] = (False, describe_exception(exc))
        job.current = None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for collector in self._collectors.values():
            close = getattr(collector, "close", None)  # collectors with a thread of their own
            if close is not None:
                close()


def _reading_order(name: str) -> tuple[bool, str]:
    """The contract's fields first: a slow optional reader (containers, mounts) that times
    out can only delay the groups after it in the job, never cpu, memory or disk."""
    return (name not in DEFAULT_FIELDS, name)


def describe_exception(exc: BaseException) -> str:
    text = str(exc) or "no details"
    return f"{type(exc).__name__}: {text}".splitlines()[0]
