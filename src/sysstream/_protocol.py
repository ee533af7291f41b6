"""sysstream's WebSocket protocol for uvicorn (``--ws sysstream.WebSocketProtocol``).

It is uvicorn's websockets-sans-I/O protocol plus what a broadcast server needs:

* an ASGI scope extension, ``"sysstream.transport"``, through which the stream endpoint
  gets a :class:`~sysstream._sinks.TransportSink` that writes the tick's pre-built frame
  straight to the transport, with back-pressure from ``pause_writing``/``resume_writing``;
* a stalled client (keepalive ping unanswered, or held past the stall timeout) is
  aborted at once; a graceful close would wait for a buffer that never drains;
* on server shutdown clients get close code 1001 (going away), not 1012;
* a handshake refused with an HTTP response (ASGI's denial-response extension) ends
  without uvicorn logging it as an error.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from ._sinks import TransportSink

__all__ = ["TRANSPORT_EXTENSION", "WebSocketProtocol"]

TRANSPORT_EXTENSION = "sysstream.transport"


class WebSocketProtocol(WebSocketsSansIOProtocol):
    sink: TransportSink | None = None

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
