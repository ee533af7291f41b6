"""sysstream's WebSocket protocol for uvicorn (``--ws sysstream:WebSocketProtocol``).

It is uvicorn's websockets-sans-I/O protocol plus what a broadcast server needs:

* an ASGI scope extension, ``"sysstream.transport"``, through which the stream endpoint
  gets a :class:`~sysstream.stream._sinks.TransportSink` that writes the tick's pre-built frame
  straight to the transport, with back-pressure from ``pause_writing``/``resume_writing``;
* a handover (``detach`` in the same extension): the endpoint gives the connection a
  :class:`MessageHandler` (the router's :class:`~sysstream.sansio._session.ControlSession`) and
  returns; the protocol carries the connection from then on, handing it each message and
  telling it when the connection is lost, so no ASGI task (and none of the framework's
  suspended coroutines) is kept per connection;
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
from typing import Any, Protocol, cast

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from ..sansio import Close, Reply
from ._sinks import TransportSink

__all__ = ["TRANSPORT_EXTENSION", "MessageHandler", "WebSocketProtocol"]

TRANSPORT_EXTENSION = "sysstream.transport"
PONG_HEADER = 0x8A  # FIN + pong opcode
MASKED_PING_PAYLOAD = 0x84  # client frames are masked; our pings carry 4 bytes
INVALID_DATA = 1007  # a text message that is not UTF-8


class MessageHandler(Protocol):
    """What a detached connection reports to (see :meth:`WebSocketProtocol.detach`)."""

    def receive(self, message: str | bytes) -> Reply | Close:
        """One complete message (text or binary); returns what to send back."""

    def close(self) -> None:
        """The connection is gone; called exactly once."""


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

    def drain(self) -> list[Any]:
        """Take every queued item at once (the app will not ``get`` them)."""
        items, self._items = self._items, []
        return items

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
    handler: MessageHandler | None = None  # set once the app has detached the connection
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
            extension = {"attach": self.attach_sink, "detach": self.detach}
            scope["extensions"][TRANSPORT_EXTENSION] = extension

    def attach_sink(self, stall_timeout: float) -> TransportSink:
        """Create the fast-path sink for this connection (once the handshake is accepted)."""
        if not self.handshake_complete:
            raise RuntimeError("expected an accepted WebSocket, got one still in handshake")
        self.sink = TransportSink(self, stall_timeout, self.loop.time)
        return self.sink

    # Handover: the connection carries on without its ASGI task

    def detach(self, handler: MessageHandler) -> None:
        """Serve the rest of the connection from here, without the ASGI app.

        From now on every complete message goes to ``handler.receive`` and its reply or
        close is carried out at once, instead of being queued for the app; the connection
        stays open when the app returns, so the app's task (and the ASGI stack it holds)
        can end; ``handler.close()`` is called exactly once, when the connection is lost
        (closed by either side, reset, aborted as stalled, or shut down with the server).
        """
        if not self.handshake_complete or self.initial_response is not None:
            raise RuntimeError("expected an accepted WebSocket, got one still in handshake")
        if self.handler is not None:
            raise RuntimeError("expected a connection served by its app, got one detached")
        if self.disconnected:  # lost while the app was still busy with it
            handler.close()
            return
        self.handler = handler
        del self.scope  # nothing reads the app's request from here on
        for event in cast(Inbox, self.queue).drain():  # what came while the app was busy
            if event["type"] == "websocket.receive":
                text = event.get("text")
                self.deliver(text if text is not None else event["bytes"])
        if self.read_paused:  # uvicorn stops reading until the app takes each message
            self.read_paused = False
            self.transport.resume_reading()

    def send_receive_event_to_app(self) -> None:
        if self.handler is None:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.curr_msg_data_type == "bytes":
            self.deliver(data)
            return
        try:
            text = data.decode()
        except UnicodeDecodeError:
            self.close_with(INVALID_DATA, "expected UTF-8 text")
            return
        self.deliver(text)

    def deliver(self, message: str | bytes) -> None:
        """Hand one message to the handler and carry out its answer."""
        if self.handler is None or not self.accepts_frames:
            return  # past our close frame: dropped until the client's close arrives
        outcome = self.handler.receive(message)
        if isinstance(outcome, Close):
            self.close_with(outcome.code, outcome.reason)
            return
        # Written even while the transport is paused: replies are few (the handler limits
        # their rate) and a client that stops reading is aborted as stalled.
        self.conn.send_text(outcome.payload)
        self.transport.write(b"".join(self.conn.data_to_send()))

    def close_with(self, code: int, reason: str) -> None:
        """Start the closing handshake. Aborted if the client has not completed it within
        ``close_timeout``: its buffer may never drain, and a plain close waits for that."""
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.close_timer = self.loop.call_later(self.close_timeout, self.abort)

    async def run_asgi(self) -> None:
        # uvicorn 0.54's run_asgi, except that a detached connection stays open when the
        # app returns: the protocol carries it from then on.
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if self.close_timer is None and self.handler is None:
            self.transport.close()

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
        handler, self.handler = self.handler, None
        super().connection_lost(exc)
        if handler is not None:
            handler.close()

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
