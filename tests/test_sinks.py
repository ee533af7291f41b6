"""Per-client writers, with a fake transport and a fake ASGI WebSocket."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio

from sysstream.stream._sinks import AsgiSink, Sink, TransportSink, Write


class FakeWriter:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.accepts_frames = True
        self.aborted = False

    @property
    def frame_writer(self) -> Write:
        return self.written.append

    def abort(self) -> None:
        self.aborted = True


class Readiness:
    """A SinkListener that records what it was told."""

    def __init__(self) -> None:
        self.reports: list[str] = []
        self.write: Write | None = None

    def sink_ready(self, sink: Sink, write: Write) -> None:
        self.reports.append("ready")
        self.write = write

    def sink_waiting(self, sink: Sink) -> None:
        self.reports.append("waiting")
        self.write = None


def listened_sink() -> tuple[FakeWriter, TransportSink, Readiness]:
    writer = FakeWriter()
    sink = TransportSink(writer, stall_timeout=5, clock=lambda: 0.0)
    listener = Readiness()
    sink.listen(listener)
    return writer, sink, listener


def test_transport_sink_reports_ready_only_while_free_and_open() -> None:
    writer, sink, listener = listened_sink()
    assert listener.reports == ["ready"]
    assert listener.write is not None
    listener.write(b"direct")  # what the hub does with a ready sink's write
    assert writer.written == [b"direct"]
    sink.pause()
    sink.resume()
    writer.accepts_frames = False  # the connection sent its close frame
    sink.refresh()
    assert listener.reports == ["ready", "waiting", "ready", "waiting"]
    sink.listen(None)
    sink.refresh()
    assert listener.reports == ["ready", "waiting", "ready", "waiting"]


def test_transport_sink_is_not_ready_once_aborted() -> None:
    writer, sink, listener = listened_sink()
    sink.abort()
    assert listener.reports == ["ready", "waiting"]
    assert writer.aborted


def test_transport_sink_that_stalls_is_reported_waiting() -> None:
    _, sink, listener = listened_sink()
    sink.pause()
    assert not sink.deliver(b"x", "x", now=5)
    assert listener.reports[-1] == "waiting"


def test_transport_sink_writes_while_free_and_keeps_the_latest_while_paused() -> None:
    clock = [0.0]
    writer = FakeWriter()
    sink = TransportSink(writer, stall_timeout=5, clock=lambda: clock[0])
    assert sink.deliver(b"1", "1", now=0)
    sink.pause()
    assert sink.deliver(b"2", "2", now=1)
    assert sink.deliver(b"3", "3", now=2)
    sink.resume()
    assert writer.written == [b"1", b"3"]


def test_transport_sink_aborts_a_client_paused_past_the_timeout() -> None:
    writer = FakeWriter()
    sink = TransportSink(writer, stall_timeout=5, clock=lambda: 0.0)
    sink.pause()
    assert not sink.deliver(b"x", "x", now=5)
    assert writer.aborted


def test_transport_sink_stops_writing_once_closing() -> None:
    writer = FakeWriter()
    sink = TransportSink(writer, stall_timeout=5, clock=lambda: 0.0)
    writer.accepts_frames = False
    assert sink.deliver(b"x", "x", now=0)
    assert writer.written == []


class BlockingWebSocket:
    """send_text blocks until released, like a client whose buffer is full."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.release = asyncio.Event()

    async def send_text(self, text: str) -> None:
        await self.release.wait()
        self.sent.append(text)


async def test_asgi_sink_sends_latest_after_a_slow_send_and_drops_when_stalled() -> None:
    websocket: Any = BlockingWebSocket()
    async with anyio.create_task_group() as tasks:
        sink = AsgiSink(websocket, stall_timeout=5, cancel=tasks.cancel_scope.cancel)
        tasks.start_soon(sink.run)
        assert sink.deliver(b"", "1", now=0)
        await asyncio.sleep(0)  # the sender picks up "1" and blocks
        assert sink.deliver(b"", "2", now=1)
        assert sink.deliver(b"", "3", now=2)
        websocket.release.set()
        await asyncio.wait_for(_until(lambda: websocket.sent == ["1", "3"]), 5)
        websocket.release.clear()
        assert sink.deliver(b"", "4", now=10)  # sender now blocked on "4" since t=10
        await asyncio.sleep(0)
        assert sink.deliver(b"", "5", now=14)
        assert not sink.deliver(b"", "6", now=15)  # held for 5 s: dropped, task group cancelled
    assert websocket.sent == ["1", "3"]


async def _until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.01)
