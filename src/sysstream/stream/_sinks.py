"""Per-client writers: where the hub's encoded messages go.

:class:`TransportSink` is the fast path: the frame built once per tick is written straight
to the connection's transport (offered by :class:`sysstream.WebSocketProtocol`).
:class:`AsgiSink` is the portable path for any ASGI server: one sender task per client
awaiting ``send_text``. Both apply the same :class:`~sysstream.sansio._fanout.Outbox` policy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from starlette.websockets import WebSocket

from ..sansio import Offer, Outbox, OutboxState

__all__ = ["AsgiSink", "Sink", "TransportSink"]

logger = logging.getLogger("sysstream")
FREE = OutboxState.FREE


class Sink(Protocol):
    def deliver(self, frame: bytes, text: str, now: float) -> bool:
        """Hand over one tick's message; False when the client stalled and was dropped."""

    def abort(self) -> None:
        """Drop the client at once, without waiting for its buffer to drain."""


class FrameWriter(Protocol):
    """What a fast-path connection offers: a transport plus whether it may still send."""

    @property
    def accepts_frames(self) -> bool: ...

    def write_frame(self, frame: bytes) -> None: ...

    def abort(self) -> None: ...


class TransportSink:
    """Writes pre-built frames to one connection; the connection reports back-pressure
    through :meth:`pause` and :meth:`resume` (asyncio's pause_writing/resume_writing)."""

    __slots__ = ("_clock", "_write", "_writer", "outbox")

    def __init__(self, writer: FrameWriter, stall_timeout: float, clock: Callable[[], float]):
        self._writer = writer
        self._write = writer.write_frame
        self._clock = clock
        self.outbox: Outbox[bytes] = Outbox(stall_timeout)

    def deliver(self, frame: bytes, text: str, now: float) -> bool:
        # Called for every client on every tick: the common case (writer free) is decided
        # here without a call into the outbox; the outcome is what `offer` would give.
        outbox = self.outbox
        if outbox.state is FREE:
            if self._writer.accepts_frames:
                self._write(frame)
            return True
        offer = outbox.offer(frame, now)
        if offer is Offer.SEND:
            if self._writer.accepts_frames:
                self._writer.write_frame(frame)
            return True
        if offer is Offer.STALLED:
            self._writer.abort()
            return False
        return True

    def pause(self) -> None:
        self.outbox.hold(self._clock())

    def resume(self) -> None:
        frame = self.outbox.release()
        if frame is not None and self._writer.accepts_frames:
            self._writer.write_frame(frame)

    def abort(self) -> None:
        self.outbox.close()
        self._writer.abort()


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
