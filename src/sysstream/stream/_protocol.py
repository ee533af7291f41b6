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
* a stalled client (keepalive ping unanswered within ``ws_ping_timeout`` of the ping, or
  held past the stall timeout) gets a best-effort 1011 close frame and is aborted: a
  graceful close would wait for a buffer that never drains;
* keepalive pings from one timer per event loop (:class:`Keepalive`) instead of two timer
  handles per connection, and pongs read without websockets' parser when a read holds
  exactly one pong at a frame boundary (:class:`~sysstream.sansio.FrameBoundary`, linear
  in the bytes read); at 10,000 clients uvicorn's per-connection pings cost as much CPU as
  the fan-out itself (docs/benchmarks.md);
* inbound pings and pongs are rate-limited like control messages (a flood is closed
  with 1008), on every route of the app;
* less memory per connection: a slim receive queue and writable flag in place of
  ``asyncio.Queue``/``asyncio.Event`` (a deque each), and the handshake's request and
  response dropped once accepted;
* on server shutdown sysstream's own (detached) streams get close code 1001 (going away);
  the app's other routes get uvicorn's 1012;
* a handshake refused with an HTTP response (ASGI's denial-response extension) ends
  without uvicorn logging it as an error.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any, Protocol, cast

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from ..sansio import Close, ControlRateLimit, FrameBoundary, Reply
from ._sinks import TransportSink

__all__ = ["TRANSPORT_EXTENSION", "MessageHandler", "WebSocketProtocol"]

TRANSPORT_EXTENSION = "sysstream.transport"
PONG_HEADER = 0x8A  # FIN + pong opcode
MASKED_PING_PAYLOAD = 0x84  # client frames are masked; our pings carry 4 bytes
INVALID_DATA = 1007  # a text message that is not UTF-8
POLICY_VIOLATION = 1008  # a ping or pong flood
INTERNAL_ERROR = 1011  # uvicorn's code for an unanswered keepalive ping
GOING_AWAY = 1001  # sysstream's streams on server shutdown


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
    sends the bucket one ping frame, built once; with a ``timeout``, one timer per sweep
    (not per connection) fires ``timeout`` after that ping and times out the connections
    that have not answered it. As in uvicorn, a connection with a ping in flight and a
    timeout gets no new ping until the pong (or the timeout) comes.
    """

    SLOTS = 10
    _running: dict[tuple[asyncio.AbstractEventLoop, float, float | None], Keepalive] = {}

    def __init__(
        self, loop: asyncio.AbstractEventLoop, interval: float, timeout: float | None
    ) -> None:
        self.loop = loop
        self.interval = interval
        self.timeout = timeout
        self.buckets: list[dict[WebSocketProtocol, None]] = [{} for _ in range(self.SLOTS)]
        self.members = 0
        self._fill = 0  # the bucket the next connection joins
        self._due = 0  # the bucket the next sweep visits
        self._timer: asyncio.TimerHandle | None = None
        self._expiries: dict[bytes, asyncio.TimerHandle] = {}  # by ping payload

    @classmethod
    def of(
        cls, loop: asyncio.AbstractEventLoop, interval: float, timeout: float | None
    ) -> Keepalive:
        """The loop's keepalive for these settings, created on first use."""
        keepalive = cls._running.get((loop, interval, timeout))
        if keepalive is None:
            keepalive = cls._running[loop, interval, timeout] = cls(loop, interval, timeout)
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
        if not self.members:  # the last one out stops the timers
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            for expiry in self._expiries.values():
                expiry.cancel()
            self._expiries.clear()
            self._running.pop((self.loop, self.interval, self.timeout), None)

    def _sweep(self) -> None:
        self._timer = self.loop.call_later(self.interval / self.SLOTS, self._sweep)
        bucket = self.buckets[self._due]
        self._due = (self._due + 1) % self.SLOTS
        if not bucket:
            return
        payload = os.urandom(4)
        frame = b"\x89\x04" + payload
        now = self.loop.time()
        for protocol in list(bucket):
            protocol.keepalive_ping(frame, payload, now)
        if self.timeout is not None:
            expiry = self.loop.call_later(self.timeout, self._expire, bucket, payload)
            self._expiries[payload] = expiry

    def _expire(self, bucket: dict[WebSocketProtocol, None], payload: bytes) -> None:
        self._expiries.pop(payload, None)
        for protocol in list(bucket):
            if protocol.pending_ping_payload == payload:
                protocol.keepalive_timeout()


class WebSocketProtocol(WebSocketsSansIOProtocol):
    _close_sent = False
    sink: TransportSink | None = None
    handler: MessageHandler | None = None  # set once the app has detached the connection
    _keepalive: Keepalive | None = None
    _bucket: dict[WebSocketProtocol, None] | None = None
    _boundary: FrameBoundary | None = None  # client frames followed from the handshake on
    _control_frames: ControlRateLimit | None = None  # created by the first ping or pong

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
        # Client frames are followed from here on. A client that sent frames before the
        # 101 only confuses its own connection, which websockets' parser then closes.
        self._boundary = FrameBoundary()
        if self.ping_interval is not None and self.ping_interval > 0:
            self._keepalive = Keepalive.of(self.loop, self.ping_interval, self.ping_timeout)
            self._bucket = self._keepalive.add(self)

    def stop_keepalive(self) -> None:
        super().stop_keepalive()
        if self._keepalive is not None and self._bucket is not None:
            self._keepalive.remove(self, self._bucket)
        self._keepalive = self._bucket = None

    def keepalive_ping(self, frame: bytes, payload: bytes, now: float) -> None:
        """Called by :class:`Keepalive` once per interval: ping, unless one is in flight."""
        if self.close_sent or self.transport.is_closing():
            return
        if self.pending_ping_payload is not None and self.ping_timeout is not None:
            return  # the timeout decides; uvicorn does not stack pings either
        self.pending_ping_payload = payload
        self.ping_sent_at = now
        self.transport.write(frame)

    def keepalive_timeout(self) -> None:
        # The close frame is best-effort: a client that stopped reading may never drain its
        # buffer, so the connection is aborted rather than closed gracefully.
        self.pong_timer = None
        self.pending_ping_payload = None
        if self.transport.is_closing():
            return
        if self.sink is not None:
            self.sink.stalled()  # counted as a drop, as a client cut by the fan-out is
        if not self.close_sent:
            self.conn.fail(INTERNAL_ERROR, "keepalive ping timeout")
            self.transport.write(b"".join(self.conn.data_to_send()))
        self.abort()

    def data_received(self, data: bytes) -> None:
        # A read holding exactly one masked 4-byte pong at a frame boundary (the common
        # case) skips websockets' generator-based parser; anything else goes through it.
        boundary = self._boundary
        if boundary is None:  # the handshake
            super().data_received(data)
            return
        if (
            len(data) == 10
            and data[0] == PONG_HEADER
            and data[1] == MASKED_PING_PAYLOAD
            and boundary.at_boundary
            and not websockets_buffer(self.conn)
        ):
            expected = self.pending_ping_payload
            if expected is not None and unmask(data[6:], data[2:6]) == expected:
                self.pending_ping_payload = None
                self.last_ping_rtt = self.loop.time() - self.ping_sent_at
                return
        pings = boundary.feed(data)
        if pings and not self.pings_allowed(pings):
            # Refused before websockets parses (and answers) any of them: a flood costs
            # this check, not a parse and a pong per frame.
            self.fail(POLICY_VIOLATION, "too many pings")
            return
        super().data_received(data)

    def pings_allowed(self, count: int) -> bool:
        """Pings and pongs share the control messages' token bucket (per connection)."""
        limit = self._control_frames
        if limit is None:
            limit = self._control_frames = ControlRateLimit()
        now = self.loop.time()
        return all(limit.allow(now) for _ in range(count))

    def fail(self, code: int, reason: str) -> None:
        """Close at once for a client's fault: the close frame, then the socket (as
        uvicorn does on a protocol error); the app, if it still serves the connection,
        gets the disconnect with ``code``."""
        if self.close_sent or self.transport.is_closing():
            return
        if self.handler is None:
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.fail(code, reason)  # websockets discards whatever the client sends next
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.close()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent when the handshake was refused
        if scope is not None:
            # "drained": wait until the write buffer is below its low-water mark or the
            # connection is gone (the router holds a history message's budget until then).
            extension = {
                "attach": self.attach_sink,
                "detach": self.detach,
                "drained": self.writable.wait,
            }
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
        # uvicorn's run_asgi (0.54 and 0.55: tests/test_uvicorn_seam.py compares the
        # source), except that a detached connection stays open when the app returns: the
        # protocol carries it from then on. uvicorn offers no hook for that last step.
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

    # FrameWriter, for TransportSink. The hub writes a ready sink's frames with the
    # transport's own write, unchecked; so every way a connection stops accepting frames
    # (a close frame sent, the transport closing) must reach the sink's refresh: setting
    # close_sent (here or in uvicorn) does, and so do the overrides that close without it.

    @property
    def accepts_frames(self) -> bool:
        return not self._close_sent and not self.transport.is_closing()

    @property
    def frame_writer(self) -> Callable[[bytes], object]:
        return self.transport.write

    @property
    def close_sent(self) -> bool:
        return self._close_sent

    @close_sent.setter
    def close_sent(self, sent: bool) -> None:
        self._close_sent = sent
        if sent and self.sink is not None:
            self.sink.refresh()

    def handle_close(self, event: Any) -> None:
        super().handle_close(event)  # the client's close: answered, transport closed
        self.stop_frames()

    def stop_frames(self) -> None:
        if self.sink is not None:
            self.sink.refresh()

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
            self.sink.refresh()
            self.sink = None  # break the cycle protocol -> sink -> protocol
        handler, self.handler = self.handler, None
        super().connection_lost(exc)
        if handler is not None:
            handler.close()

    async def send(self, message: Any) -> None:
        await super().send(message)
        # uvicorn 0.54 leaves a handshake refused with a denial response (403/401/503 from
        # sysstream's checks) "incomplete" and logs an ERROR when the app returns
        # (Kludex/uvicorn#3138): the refusal is complete once its body is written.
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            self.handshake_complete = True

    def shutdown(self) -> None:
        if self.handler is None:
            super().shutdown()  # the app's own routes: uvicorn's 1012
            self.stop_frames()
            return
        # sysstream's streams: 1001 "going away" (docs/protocol.md); no app to tell.
        self.stop_keepalive()
        if not self.close_sent and not self.transport.is_closing():
            self.conn.send_close(GOING_AWAY, "server shutting down")
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
        self.transport.close()


def websockets_buffer(conn: Any) -> bytearray:
    """The bytes websockets has received but not parsed yet (a private attribute, named
    in sysstream.stream._seam)."""
    return cast(bytearray, conn.reader.buffer)


def unmask(payload: bytes, key: bytes) -> bytes:
    """RFC 6455 unmasking as one XOR of whole numbers (the payloads here are 4 bytes)."""
    size = len(payload)
    mask = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(payload) ^ int.from_bytes(mask)).to_bytes(size)
