"""sysstream's WebSocket protocol for uvicorn (``--ws sysstream.WebSocketProtocol``).

It is uvicorn's websockets-sans-I/O protocol plus what a broadcast server needs:

* an ASGI scope extension, ``"sysstream.transport"``, through which the stream endpoint
  gets a :class:`~sysstream._sinks.TransportSink` that writes the tick's pre-built frame
  straight to the transport, with back-pressure from ``pause_writing``/``resume_writing``;
* a stalled client (keepalive ping unanswered, or held past the stall timeout) is
  aborted at once; a graceful close would wait for a buffer that never drains;
* keepalive pings from one timer per event loop (:class:`Keepalive`) instead of two timer
  handles per connection, and pongs read without websockets' parser when a read holds
  exactly one pong; at 10,000 clients uvicorn's per-connection pings cost as much CPU as
  the fan-out itself (docs/benchmarks.md);
* less memory per connection: a slim receive queue and writable flag in place of
  ``asyncio.Queue``/``asyncio.Event`` (a deque each), and the handshake's request and
  response dropped once accepted;
* on server shutdown clients get close code 1001 (going away), not 1012;
* a handshake refused with an HTTP response (ASGI's denial-response extension) ends
  without uvicorn logging it as an error.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from ._sinks import TransportSink

__all__ = ["TRANSPORT_EXTENSION", "WebSocketProtocol"]

TRANSPORT_EXTENSION = "sysstream.transport"
PONG_HEADER = 0x8A  # FIN + pong opcode
MASKED_PING_PAYLOAD = 0x84  # client frames are masked; our pings carry 4 bytes


class Inbox:
    """What uvicorn's protocol needs of its receive queue (``put_nowait``, ``get``,
    ``empty``), without ``asyncio.Queue``'s three deques and event per connection."""

    __slots__ = ("_items", "_waiters")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiters: list[asyncio.Future[None]] = []

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
                break

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    async def get(self) -> Any:
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                self._waiters.remove(waiter)
        return self._items.pop(0)


class Flag:
    """``asyncio.Event``'s ``set``/``clear``/``is_set``/``wait``, allocating waiters only
    while someone waits (uvicorn's ``writable`` flag is almost always set)."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        waiters = self._waiters = self._waiters or []
        waiters.append(waiter)
        try:
            await waiter
        finally:
            waiters.remove(waiter)
        return True


class Keepalive:
    """Pings every registered connection once per ``interval`` from a single timer.

    Connections are spread over ``SLOTS`` buckets and one bucket is swept every
    ``interval / SLOTS``, so pings (and their pongs) never arrive in one burst. A sweep
    aborts a connection whose previous ping, sent one interval earlier, is unanswered,
    and sends the others this sweep's ping (one frame, built once, shared by the bucket).
    """

    SLOTS = 10
    _running: dict[tuple[asyncio.AbstractEventLoop, float], Keepalive] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.buckets: list[dict[WebSocketProtocol, None]] = [{} for _ in range(self.SLOTS)]
        self.members = 0
        self._fill = 0  # the bucket the next connection joins
        self._due = 0  # the bucket the next sweep visits
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop, interval: float) -> Keepalive:
        """The loop's keepalive for ``interval``, created on first use."""
        keepalive = cls._running.get((loop, interval))
        if keepalive is None:
            keepalive = cls._running[loop, interval] = cls(loop, interval)
        return keepalive

    def add(self, protocol: WebSocketProtocol) -> dict[WebSocketProtocol, None]:
        bucket = self.buckets[self._fill]
        self._fill = (self._fill + 1) % self.SLOTS
        bucket[protocol] = None
        self.members += 1
        if self._timer is None:
            self._timer = self.loop.call_later(self.interval / self.SLOTS, self._sweep)
        return bucket

    def remove(self, protocol: WebSocketProtocol, bucket: dict[WebSocketProtocol, None]) -> None:
        if protocol in bucket:
            del bucket[protocol]
            self.members -= 1
        if not self.members:  # the last one out stops the timer
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._running.pop((self.loop, self.interval), None)

    def _sweep(self) -> None:
        self._timer = self.loop.call_later(self.interval / self.SLOTS, self._sweep)
        bucket = self.buckets[self._due]
        self._due = (self._due + 1) % self.SLOTS
        if bucket:
            payload = os.urandom(4)
            frame = b"\x89\x04" + payload
            now = self.loop.time()
            for protocol in list(bucket):
                protocol.keepalive_round(frame, payload, now)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    sink: TransportSink | None = None
    _keepalive: Keepalive | None = None
    _bucket: dict[WebSocketProtocol, None] | None = None
    _scan_tail = b""  # a client frame not yet complete: the fast pong path waits for it

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Duck-typed stand-ins: uvicorn only calls the methods these implement.
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]

    # Keepalive: one timer per loop (see Keepalive), and a fast path for pongs.

    def start_keepalive(self) -> None:
        # uvicorn calls this right after writing the accept response: the handshake's
        # request and response are no longer needed.
        self.request = self.response = None  # type: ignore[assignment]
        if self.ping_interval is not None and self.ping_interval > 0:
            self._keepalive = Keepalive.of(self.loop, self.ping_interval)
            self._bucket = self._keepalive.add(self)

    def stop_keepalive(self) -> None:
        super().stop_keepalive()
        if self._keepalive is not None and self._bucket is not None:
            self._keepalive.remove(self, self._bucket)
        self._keepalive = self._bucket = None

    def keepalive_round(self, frame: bytes, payload: bytes, now: float) -> None:
        """Called by :class:`Keepalive` once per interval: time out, or ping again."""
        if self.pending_ping_payload is not None and self.ping_timeout is not None:
            self.keepalive_timeout()
            return
        if self.close_sent or self.transport.is_closing():
            return
        self.pending_ping_payload = payload
        self.ping_sent_at = now
        self.transport.write(frame)

    def data_received(self, data: bytes) -> None:
        # A read holding exactly one masked 4-byte pong at a frame boundary (the common
        # case) skips websockets' generator-based parser; anything else goes through it.
        if (
            len(data) == 10
            and data[0] == PONG_HEADER
            and data[1] == MASKED_PING_PAYLOAD
            and not self._scan_tail
            and self.handshake_complete
            and not self.conn.reader.buffer
        ):
            expected = self.pending_ping_payload
            if expected is not None and unmask(data[6:], data[2:6]) == expected:
                self.pending_ping_payload = None
                self.last_ping_rtt = self.loop.time() - self.ping_sent_at
            return
        super().data_received(data)
        if self.handshake_complete:
            self._scan_tail = incomplete_frame(self._scan_tail + data)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent when the handshake was refused
        if scope is not None:
            scope["extensions"][TRANSPORT_EXTENSION] = {"attach": self.attach_sink}

    def attach_sink(self, stall_timeout: float) -> TransportSink:
        """Create the fast-path sink for this connection (once the handshake is accepted)."""
        if not self.handshake_complete:
            raise RuntimeError("expected an accepted WebSocket, got one still in handshake")
        self.sink = TransportSink(self, stall_timeout, self.loop.time)
        return self.sink

    # FrameWriter, for TransportSink

    @property
    def accepts_frames(self) -> bool:
        return not self.close_sent and not self.transport.is_closing()

    def write_frame(self, frame: bytes) -> None:
        self.transport.write(frame)

    def abort(self) -> None:
        self.close_sent = True
        self.transport.abort()

    # Back-pressure and faults

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.sink is not None:
            self.sink.pause()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.sink is not None:
            self.sink.resume()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.sink is not None:
            self.sink.outbox.close()
            self.sink = None  # break the cycle protocol -> sink -> protocol
        super().connection_lost(exc)

    def keepalive_timeout(self) -> None:
        # The client stopped reading: its buffers may never drain, so a closing handshake
        # would keep the socket (and its memory) forever.
        self.pong_timer = None
        self.pending_ping_payload = None
        if not self.transport.is_closing():
            self.abort()

    async def send(self, message: Any) -> None:
        await super().send(message)
        # uvicorn 0.54 leaves a handshake refused with a denial response (403/401/503 from
        # sysstream's checks) "incomplete" and logs an ERROR when the app returns
        # (Kludex/uvicorn#3138): the refusal is complete once its body is written.
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            self.handshake_complete = True

    def shutdown(self) -> None:
        if self.handshake_complete and not self.close_sent and self.initial_response is None:
            self.stop_keepalive()
            self.queue.put_nowait({"type": "websocket.disconnect", "code": 1001})
            self.conn.send_close(1001, "server shutting down")
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self.transport.close()
            return
        super().shutdown()


def unmask(payload: bytes, key: bytes) -> bytes:
    return bytes(byte ^ key[i & 3] for i, byte in enumerate(payload))


def incomplete_frame(data: bytes) -> bytes:
    """The trailing bytes of ``data`` (client frames, from a frame boundary on) that do not
    yet make a whole frame: empty when ``data`` ends at a frame boundary."""
    offset, size = 0, len(data)
    while size - offset >= 2:
        second = data[offset + 1]
        length, start = second & 0x7F, offset + 2
        if length >= 126:
            width = 2 if length == 126 else 8
            if size - start < width:
                break
            length, start = int.from_bytes(data[start : start + width], "big"), start + width
        end = start + (4 if second & 0x80 else 0) + length
        if end > size:
            break
        offset = end
    return data[offset:]
