"""A :class:`~sysstream.sampling._source.Source` fed from Redis: one remote host's ticks, handed in
by the hub's single Redis subscription, for that host's :class:`~sysstream.MetricsHub`.

When no tick comes (Redis unreachable, the agent silent), the source still yields one
sample per interval, with every requested group failed for the reason it is given, so
clients get the contract's ``{"error": …}`` message and stay connected; the next real
tick flows as usual.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from .._sample import Sample

__all__ = ["UNAVAILABLE", "RemoteSource", "is_placeholder"]

UNAVAILABLE = "source unavailable: "
# Ticks delivered faster than the hub takes them queue here; beyond this the oldest go
# (a hub that far behind serves the latest, as a slow client does).
_QUEUE = 8


def is_placeholder(sample: Sample) -> bool:
    """True for the stand-in samples a :class:`RemoteSource` yields while there is no data.

    They go to clients but not to history: a gap in history is the truth, and it leaves
    room for a backfill from the agent's backlog once Redis is back.
    """
    return not sample.values and all(e.startswith(UNAVAILABLE) for e in sample.errors.values())


class RemoteSource:
    """Yields the ticks passed to :meth:`deliver`, renumbered in arrival order.

    ``unavailable()`` is asked whenever an interval passes without a tick; it returns why
    there is no data (yield a placeholder) or None (the tick is merely late: keep waiting).
    """

    def __init__(self, host: str, interval: float, unavailable: Callable[[], str | None]) -> None:
        self.host = host
        self.interval = interval
        self._unavailable = unavailable
        self._pending: deque[Sample] = deque(maxlen=_QUEUE)
        self._arrived = asyncio.Event()
        self._tick = 0
        self.closed = False

    def deliver(self, sample: Sample, interval: float) -> None:
        if self.closed:
            raise RuntimeError(f"expected an open source, got host {self.host}'s closed one")
        self.interval = interval
        self._pending.append(sample)
        self._arrived.set()

    async def next_sample(self, groups: frozenset[str]) -> Sample:
        while not self._pending:
            self._arrived.clear()
            try:
                async with asyncio.timeout(self.interval):
                    await self._arrived.wait()
            except TimeoutError:
                reason = self._unavailable()
                if reason is not None:
                    return self._placeholder(UNAVAILABLE + reason, groups)
        return self._renumbered(self._pending.popleft(), groups)

    def _renumbered(self, sample: Sample, groups: frozenset[str]) -> Sample:
        # The agent's own tick numbers restart with the agent; the hub's views need them
        # to grow, so ticks are counted here, in the order they reach this hub.
        self._tick += 1
        missing = groups - sample.values.keys() - sample.errors.keys()
        errors = sample.errors
        if missing:
            errors = {**errors, **dict.fromkeys(missing, f"not sampled by host {self.host}")}
        return Sample(self._tick, sample.timestamp, sample.values, errors)

    def _placeholder(self, reason: str, groups: frozenset[str]) -> Sample:
        self._tick += 1
        return Sample(self._tick, time.time(), errors=dict.fromkeys(groups, reason))

    def close(self) -> None:
        self.closed = True
