"""The local source's tick handling: timeouts, hung readers, slow cadences."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from sysstream.sampling._source import LocalSource


class Reader:
    def __init__(self, value: Any = 1.0) -> None:
        self.value = value
        self.calls = 0
        self.release = threading.Event()
        self.hang = False

    def collect(self, now: float) -> Any:
        self.calls += 1
        if self.hang:
            self.release.wait(10)
        return self.value


async def test_a_hung_reader_times_out_without_blocking_the_others() -> None:
    readers = {"cpu": Reader(), "disk": Reader(), "memory": Reader()}
    source = LocalSource(readers, interval=0.1, collect_timeout=0.05)
    try:
        readers["disk"].hang = True
        first = await source.next_sample(frozenset(readers))
        assert first.errors["disk"] == "timed out after 0.05 s"
        # "memory" sorts after "disk" in the same job, so it had to wait this once.
        assert "waiting behind disk" in first.errors["memory"]
        assert first.values == {"cpu": 1.0}
        second = await source.next_sample(frozenset(readers))
        assert second.errors == {"disk": "timed out after 0.05 s (still running)"}
        assert second.values == {"cpu": 1.0, "memory": 1.0}
        assert readers["disk"].calls == 1  # not called again while hung
        readers["disk"].hang = False
        readers["disk"].release.set()
        for _ in range(3):  # the hung call returns in the background, then reads resume
            sample = await source.next_sample(frozenset(readers))
        assert sample.errors == {}
        assert sample.values == {"cpu": 1.0, "disk": 1.0, "memory": 1.0}
    finally:
        readers["disk"].release.set()
        source.close()


async def test_a_hung_optional_reader_never_delays_the_contract_fields() -> None:
    # "containers" sorts before "cpu": read in name order, it would blank the seed's fields.
    readers = {name: Reader() for name in ("containers", "cpu", "disk", "memory", "net")}
    readers["containers"].hang = True
    source = LocalSource(readers, interval=0.1, collect_timeout=0.05)
    try:
        sample = await source.next_sample(frozenset(readers))
        assert sample.values == {"cpu": 1.0, "disk": 1.0, "memory": 1.0}
        assert sample.errors == {
            "containers": "timed out after 0.05 s",
            "net": "not read: waiting behind containers, which timed out",
        }
    finally:
        readers["containers"].release.set()
        source.close()


async def test_a_failing_reader_is_reported_and_the_rest_are_read() -> None:
    class Broken:
        def collect(self, now: float) -> Any:
            raise PermissionError("no access to /proc/diskstats")

    source = LocalSource({"cpu": Reader(), "disk_io": Broken()}, interval=0.05)
    try:
        sample = await source.next_sample(frozenset({"cpu", "disk_io"}))
    finally:
        source.close()
    assert sample.values == {"cpu": 1.0}
    assert sample.errors == {"disk_io": "PermissionError: no access to /proc/diskstats"}


async def test_slow_groups_are_read_on_their_ticks_and_repeated_between() -> None:
    processes = Reader({"count": 1})
    source = LocalSource({"processes": processes}, interval=0.02)
    try:
        samples = [await source.next_sample(frozenset({"processes"})) for _ in range(11)]
    finally:
        source.close()
    assert all(s.values["processes"] == {"count": 1} for s in samples)
    assert processes.calls == 3  # ticks 1, 6 and 11: every 5th


async def test_only_asked_groups_are_read() -> None:
    readers = {"cpu": Reader(), "temps": Reader()}
    source = LocalSource(readers, interval=0.02)
    try:
        sample = await source.next_sample(frozenset({"cpu", "unknown"}))
    finally:
        source.close()
    assert sample.values == {"cpu": 1.0}
    assert readers["temps"].calls == 0


class CancellingReader:
    """Cancels ``task`` a few event-loop turns after its read returns: one of the turns
    is the moment the read's future completes but the awaiting task has not yet woken."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.task: asyncio.Task[Any] | None = None
        self.turns = 0
        self.cancelled = False  # the cancel reached a task still running

    def collect(self, now: float) -> Any:
        self.loop.call_soon_threadsafe(self._cancel_after, self.task, self.turns)
        return 1.0

    def _cancel_after(self, task: asyncio.Task[Any] | None, turns: int) -> None:
        if turns:
            self.loop.call_soon(self._cancel_after, task, turns - 1)
        elif task is not None:
            self.cancelled = task.cancel()


async def test_a_cancelled_tick_is_cancelled_even_as_its_read_completes() -> None:
    # Python 3.11's wait_for returned the result, swallowing the cancellation, when the
    # read finished as it was cancelled: the hub then never stopped (issue 13).
    reader = CancellingReader(asyncio.get_running_loop())
    source = LocalSource({"cpu": reader}, interval=0.001)
    swallowed = cancelled = 0
    try:
        for attempt in range(300):
            reader.turns, reader.cancelled = attempt % 6, False
            reader.task = task = asyncio.create_task(source.next_sample(frozenset({"cpu"})))
            done, _ = await asyncio.wait((task,), timeout=5)
            assert done, "a cancelled tick did not end within 5 s"
            swallowed += reader.cancelled and not task.cancelled()
            cancelled += reader.cancelled
    finally:
        source.close()
    assert cancelled > 100  # the cancellations did land mid-tick
    assert swallowed == 0
