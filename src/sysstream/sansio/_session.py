"""A streaming client's control channel with no I/O: one inbound message in, what to do out.

A :class:`ControlSession` owns what happens to the messages a connected client sends: the
rate limit (a flood gets close code 1008), subscriptions (a valid ``subscribe`` moves the
client's sink to the new view and is acknowledged; anything else gets an error reply and
changes nothing) and the end of the stream (detach from the hub, release what the client
held). Both ways of serving a client drive the same session: the router's ASGI loop
(``_serve_controls``) and :class:`sysstream.WebSocketProtocol` once the connection has been
handed over to it.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ._control import ControlError, View, parse_control
from ._messages import encode_error, encode_json, format_timestamp
from ._ratelimit import ControlRateLimit

__all__ = ["POLICY_VIOLATION", "Close", "ControlSession", "Reply", "SessionState", "Subscriptions"]


class Subscriptions(Protocol):
    """What a session needs of the hub (:class:`sysstream.MetricsHub` is one)."""

    @property
    def interval(self) -> float:
        """Seconds between ticks."""

    def move(self, sink: Any, view: View) -> None:
        """Move ``sink`` to ``view``; raises :class:`ControlError` (and changes nothing)
        when the hub cannot serve one more view."""

    def detach(self, sink: Any) -> None: ...


POLICY_VIOLATION = 1008


@dataclass(frozen=True, slots=True)
class Reply:
    """Send ``payload`` (UTF-8 JSON) to the client as a text message."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with ``code`` and ``reason``."""

    code: int
    reason: str


FLOOD = Close(POLICY_VIOLATION, "too many control messages")


class SessionState(enum.Enum):
    OPEN = "open"  # taking control messages
    CLOSING = "closing"  # a Close was returned: no more messages, waiting for the end
    CLOSED = "closed"  # the client is gone: detached from the hub, `on_close` called


class ControlSession:
    """The control channel of one client whose ``sink`` is attached to ``hub``.

    :meth:`receive` is fed each complete message and returns the :class:`Reply` or
    :class:`Close` to carry out; :meth:`close` is called once when the client is gone and
    detaches the sink and calls ``on_close`` (the router releases the connection slot there).
    """

    __slots__ = ("_clock", "_on_close", "_rate", "hub", "sink", "state")

    def __init__(
        self,
        hub: Subscriptions,
        sink: object,
        *,
        on_close: Callable[[], None] | None = None,
        rate: ControlRateLimit | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hub = hub
        self.sink = sink
        self.state = SessionState.OPEN
        self._on_close = on_close
        self._rate = rate if rate is not None else ControlRateLimit()
        self._clock = clock

    def receive(self, message: str | bytes) -> Reply | Close:
        """One message from the client: text is a control message, bytes a binary frame."""
        if self.state is not SessionState.OPEN:
            raise RuntimeError(f"expected an open session, got one {self.state.value}")
        if not self._rate.allow(self._clock()):
            self.state = SessionState.CLOSING
            return FLOOD
        tick = self.hub.interval
        try:
            if not isinstance(message, str):
                raise ControlError("expected a JSON text message, got a binary frame")
            request = parse_control(message, tick)
            self.hub.move(self.sink, request.view)  # may refuse: too many distinct views
        except ControlError as exc:
            return Reply(encode_error(str(exc)))
        acknowledgement = request.acknowledgement(tick)
        acknowledgement["timestamp"] = format_timestamp(time.time())
        return Reply(encode_json(acknowledgement))

    def close(self) -> None:
        """The client is gone (by any path): stop delivering to it and release its slot."""
        if self.state is SessionState.CLOSED:
            raise RuntimeError("expected an open or closing session, got one closed")
        self.state = SessionState.CLOSED
        self.hub.detach(self.sink)
        if self._on_close is not None:
            self._on_close()
