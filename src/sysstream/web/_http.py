"""sysstream's HTTP protocol for uvicorn: bounds on what a connection may hold.

uvicorn's ``httptools`` protocol keeps a connection as long as its peer likes: nothing
bounds the time a client may take to send a request (a connection that sends nothing, or
half a request line, is held forever), the size of a request head (llhttp accepts any), or
how long a response may sit unread in the write buffer. :class:`HttpProtocol` is that
protocol (uvicorn's ``--http`` extension point) plus:

* a **request deadline**: from the moment a connection opens, or its previous response
  completes, it has ``request_timeout`` seconds to deliver a complete request head (a
  WebSocket handshake is one); past it the connection is aborted;
* a **head bound**: at most ``max_head_bytes`` of request line and headers and
  ``max_headers`` header lines, else ``431 Request Header Fields Too Large`` and a close;
* a **write deadline**: a response whose unsent bytes do not shrink for ``write_timeout``
  seconds (a client that stopped reading) is aborted, so its buffer is freed;
* a **connection cap** that keeps descriptors in reserve for sampling, the store and logs:
  at ``max_connections``, a new connection evicts the oldest one still sending its request
  head (slow clients lose to prompt ones); with none to evict it gets 503.

The limits live on a subclass made per server by :meth:`HttpProtocol.configured`, since
uvicorn builds protocols from its config alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HttpLimits", "HttpProtocol"]

REFUSED_FULL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 12\r\nconnection: close\r\n\r\nserver full\n"
)
HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\ncontent-length: 31\r\n"
    b"connection: close\r\n\r\nrequest header fields too large"
)


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one HTTP connection may cost (docs/security.md)."""

    request_timeout: float = 10.0  # seconds to send a complete request head
    write_timeout: float = 10.0  # seconds a response may go without the client reading
    # 16 KiB is h11's default and twice what most proxies pass (nginx: 8 KiB per line);
    # 100 lines is Apache's LimitRequestFields and Python's http.client maximum.
    max_head_bytes: int = 16 * 1024
    max_headers: int = 100
    max_connections: int | None = None  # HTTP and WebSocket connections together

    def __post_init__(self) -> None:
        if self.request_timeout <= 0 or self.write_timeout <= 0:
            raise ValueError(
                f"expected timeouts > 0, got {self.request_timeout} and {self.write_timeout}"
            )
        if self.max_head_bytes < 1024 or self.max_headers < 1:
            raise ValueError(
                "expected a head of at least 1024 bytes and 1 header, got "
                f"{self.max_head_bytes} and {self.max_headers}"
            )


class HttpProtocol(HttpToolsProtocol):
    limits: ClassVar[HttpLimits] = HttpLimits()
    # Connections still sending a request head, oldest first: the eviction order at the
    # connection cap. One per configured subclass, so one per server.
    waiting: ClassVar[dict[HttpProtocol, None]] = {}
    # Connections aborted whose connection_lost has not run yet: their descriptors are
    # closed, but uvicorn still counts them among its connections.
    dropped: ClassVar[set[HttpProtocol]] = set()

    _deadline: asyncio.TimerHandle | None = None
    _write_check: asyncio.TimerHandle | None = None
    _unsent = 0  # write-buffer size at the last write check
    _in_head = True  # between a message's start and its headers' end (or before a message)
    _head_bytes = 0  # bytes read since the head began: bounds a head still arriving
    _parsed_bytes = 0  # request line and header lines parsed: bounds a head read at once
    _header_count = 0
    _refused = False  # answered 431: the rest of the input is ignored

    @classmethod
    def configured(cls, limits: HttpLimits) -> type[HttpProtocol]:
        """A subclass bound to ``limits``, for ``uvicorn.Config(http=...)``."""
        return type(cls.__name__, (cls,), {"limits": limits, "waiting": {}, "dropped": set()})

    # Connection cap and request deadline

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        cap = self.limits.max_connections
        full = cap is not None and len(self.connections) - len(self.dropped) >= cap
        if full and self.waiting:
            oldest = next(iter(self.waiting))
            oldest.drop()  # leaves `waiting` and, on connection_lost, `connections`
            full = False
        super().connection_made(transport)
        if full:
            self.logger.warning("connection refused: %d connections open", len(self.connections))
            transport.write(REFUSED_FULL)
            transport.close()
            return
        self._await_request()

    def _await_request(self) -> None:
        self._in_head = True
        self._head_bytes = self._parsed_bytes = self._header_count = 0
        self.waiting.pop(self, None)
        self.waiting[self] = None  # to the end: the newest waiter is evicted last
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.limits.request_timeout, self.drop)

    def _request_arrived(self) -> None:
        self.waiting.pop(self, None)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def drop(self) -> None:
        """Abort the connection now: no response, and whatever is buffered is discarded."""
        self._request_arrived()
        if not self.transport.is_closing() or self.transport.get_write_buffer_size():
            self.dropped.add(self)
            self.transport.abort()

    # Head bounds

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Judged after parsing: a read that completes the head may carry body bytes too.
        if self._in_head and self._head_bytes > self.limits.max_head_bytes:
            self._refuse_head()

    def on_message_begin(self) -> None:
        self._in_head = True
        self._parsed_bytes = self._header_count = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._parsed_bytes += len(url)
        if self._parsed_bytes > self.limits.max_head_bytes:
            self._refuse_head()
            return
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._parsed_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if (
            self._header_count > self.limits.max_headers
            or self._parsed_bytes > self.limits.max_head_bytes
        ):
            self._refuse_head()
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._in_head = False
        self._request_arrived()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def _refuse_head(self) -> None:
        self._request_arrived()
        self._refused = True
        if not self.transport.is_closing():
            self.logger.warning(
                "request head refused: over %d bytes or %d header lines",
                self.limits.max_head_bytes,
                self.limits.max_headers,
            )
            self.transport.write(HEAD_TOO_LARGE)
            self.transport.close()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._await_request()  # the keep-alive timeout closes it sooner if idle

    # Write deadline

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_check is None:
            self._unsent = self.transport.get_write_buffer_size()
            self._write_check = self.loop.call_later(self.limits.write_timeout, self._check_write)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_check is not None:
            self._write_check.cancel()
            self._write_check = None

    def _check_write(self) -> None:
        unsent = self.transport.get_write_buffer_size()
        if unsent >= self._unsent:  # not a byte taken in a whole write timeout
            self._write_check = None
            self.logger.info("client stopped reading: aborted with %d bytes unsent", unsent)
            self.drop()
            return
        self._unsent = unsent
        self._write_check = self.loop.call_later(self.limits.write_timeout, self._check_write)

    def timeout_keep_alive_handler(self) -> None:
        # A plain close waits for the buffer to drain, which a client that stopped reading
        # never lets happen: the descriptor would stay open.
        if self.transport.get_write_buffer_size():
            self.drop()
        else:
            super().timeout_keep_alive_handler()

    def shutdown(self) -> None:
        if self.flow.write_paused:  # a stalled response never completes: abort now
            self.drop()
            return
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self.dropped.discard(self)
        self._request_arrived()
        if self._write_check is not None:
            self._write_check.cancel()
            self._write_check = None
        super().connection_lost(exc)
