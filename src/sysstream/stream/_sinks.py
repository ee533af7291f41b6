"""Per-client writers: where the hub's encoded messages go.

:class:`TransportSink` is the fast path: the frame built once per tick is written straight
to the connection's transport (offered by :class:`sysstream.WebSocketProtocol`). While
nothing is held and the connection is open it is *ready*, and it says so to its
:class:`SinkListener` (the hub's audience of its view), handing over the transport's own
``write``: the hub then writes each tick's frame to every ready client with one C call, as
the floor does, and calls :meth:`Sink.deliver` only for the others. :class:`AsgiSink` is
the portable path for any ASGI server: one sender task per client awaiting ``send_text``;
it is never ready. Both apply the same :class:`~sysstream.sansio._fanout.Outbox` policy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from starlette.websockets import WebSocket

from ..sansio import Offer, Outbox, OutboxState

__all__ = ["AsgiSink", "Sink", "SinkListener", "TransportSink", "Write"]

logger = logging.getLogger("sysstream")
FREE = OutboxState.FREE


Write = Callable[[bytes], object]


class SinkListener(Protocol):
    """Who keeps track of which sinks take frames by a plain write (the hub's audiences)."""

    def sink_ready(self, sink: Sink, write: Write) -> None:
        """From now on ``write(frame)`` is all a frame for ``sink`` needs."""

    def sink_waiting(self, sink: Sink) -> None:
        """From now on frames for ``sink`` go through :meth:`Sink.deliver`."""


class Sink(Protocol):
    def deliver(self, frame: bytes, text: str, now: float) -> bool:
        """Hand over one tick's message; False when the client stalled and was dropped."""

    def abort(self) -> None:
        """Drop the client at once, without waiting for its buffer to drain."""

    def listen(self, listener: SinkListener | None) -> None:
        """Report readiness to ``listener`` now and on every change (``None``: stop)."""

    @property
    def dropped(self) -> bool:
        """True once the client was cut for stalling (the hub counts it on detach)."""


class FrameWriter(Protocol):
    """What a fast-path connection offers: its transport's ``write`` (no checks) and
    whether it may still send; it calls :meth:`TransportSink.refresh` when it stops."""

    @property
    def accepts_frames(self) -> bool: ...

    @property
    def frame_writer(self) -> Write: ...

    def abort(self) -> None: ...


class TransportSink:
    """Writes pre-built frames to one connection; the connection reports back-pressure
    through :meth:`pause` and :meth:`resume` (asyncio's pause_writing/resume_writing)
    and calls :meth:`refresh` when it stops accepting frames (closing, closed)."""

    __slots__ = ("_clock", "_listener", "_write", "_writer", "outbox")

    def __init__(self, writer: FrameWriter, stall_timeout: float, clock: Callable[[], float]):
        self._writer = writer
        self._write = writer.frame_writer
        self._clock = clock
        self._listener: SinkListener | None = None
        self.outbox: Outbox[bytes] = Outbox(stall_timeout)

    @property
    def ready(self) -> bool:
        """True while a frame can be written at once: nothing held, connection open."""
        return self.outbox.state is FREE and self._writer.accepts_frames

    @property
    def dropped(self) -> bool:
        return self.outbox.dropped

    def listen(self, listener: SinkListener | None) -> None:
        self._listener = listener
        self.refresh()

    def refresh(self) -> None:
        """Tell the listener whether the sink is ready (after any change of either half)."""
        listener = self._listener
        if listener is None:
            return
        if self.ready:
            listener.sink_ready(self, self._write)
        else:
            listener.sink_waiting(self)

    def deliver(self, frame: bytes, text: str, now: float) -> bool:
        # The hub writes a ready sink's frames itself; this is the path of the others
        # (held, closing) and of one-off messages such as alert events.
        offer = self.outbox.offer(frame, now)
        if offer is Offer.SEND:
            if self._writer.accepts_frames:
                self._write(frame)
            return True
        if offer is Offer.STALLED:
            self._writer.abort()
            self.refresh()
            return False
        return True

    def pause(self) -> None:
        self.outbox.hold(self._clock())
        self.refresh()

    def resume(self) -> None:
        frame = self.outbox.release()
        if frame is not None and self._writer.accepts_frames:
            self._write(frame)  # may pause again at once, which refresh then reports
        self.refresh()

    def stalled(self) -> None:
        """The connection found the client stalled (a keepalive ping unanswered) and is
        cutting it: no more frames, and the hub counts a drop."""
        self.outbox.drop()
        self.refresh()

    def abort(self) -> None:
        self.outbox.close()
        self._writer.abort()
        self.refresh()


class AsgiSink:
    """One sender task per client for servers without the fast path.

    A stalled client's pending ``send_text`` is cancelled and the client detached; the
    ASGI server still owns the socket, and closes it once it can (see docs/protocol.md).
    """

    __slots__ = ("_cancel", "_next", "_wakeup", "outbox", "websocket")

    def __init__(self, websocket: WebSocket, stall_timeout: float, cancel: Callable[[], None]):
        self.websocket = websocket
        self.outbox: Outbox[str] = Outbox(stall_timeout)
        self._cancel = cancel
        self._next: str | None = None
        self._wakeup = asyncio.Event()

    @property
    def dropped(self) -> bool:
        return self.outbox.dropped

    def listen(self, listener: SinkListener | None) -> None:
        """Never ready for plain writes: every message goes through :meth:`deliver`."""
        if listener is not None:
            listener.sink_waiting(self)

    def deliver(self, frame: bytes, text: str, now: float) -> bool:
        offer = self.outbox.offer(text, now)
        if offer is Offer.SEND:
            self.outbox.hold(now)
            self._next = text
            self._wakeup.set()
            return True
        if offer is Offer.STALLED:
            self.abort()
            return False
        return True

    async def run(self) -> None:
        """Send messages as they are offered, until cancelled or the client goes away."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            message, self._next = self._next, None
            while message is not None:
                await self.websocket.send_text(message)
                message = self.outbox.release()
                if message is not None:
                    self.outbox.hold(loop.time())

    def abort(self) -> None:
        self.outbox.close()
        self._cancel()
