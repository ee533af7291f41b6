"""Fan-out policy with no I/O: what happens to a message offered to one client.

Each client has an :class:`Outbox` holding at most one undelivered message. While the
client's writer is free, a message goes out at once. While it is held (a send in flight,
or the transport's buffer over its high-water mark), a newer message replaces the pending
one: latest wins, so memory per client is bounded by one message. A client held for
longer than the stall timeout is reported stalled and dropped by the caller; so is one
whose connection finds it stalled another way (a keepalive ping left unanswered), through
:meth:`Outbox.drop`. A dropped outbox says so (``DROPPED``), so whoever detaches the
client can count it.
"""

from __future__ import annotations

import enum
from typing import Generic, TypeVar

__all__ = ["Offer", "Outbox", "OutboxState"]

M = TypeVar("M")


class OutboxState(enum.Enum):
    FREE = "free"  # the next message can be written now
    HELD = "held"  # the writer cannot take more; newer messages replace `pending`
    CLOSED = "closed"  # the client is gone
    DROPPED = "dropped"  # the client was cut for stalling


class Offer(enum.Enum):
    SEND = "send"  # write the message now
    QUEUED = "queued"  # kept as the pending message (replacing an older one)
    STALLED = "stalled"  # held past the stall timeout: drop the client
    CLOSED = "closed"  # nothing to do


class Outbox(Generic[M]):
    __slots__ = ("held_since", "pending", "replaced", "stall_timeout", "state")

    def __init__(self, stall_timeout: float) -> None:
        self.stall_timeout = stall_timeout
        self.state = OutboxState.FREE
        self.pending: M | None = None
        self.held_since = 0.0
        self.replaced = 0  # messages that were superseded before they could go out

    def offer(self, message: M, now: float) -> Offer:
        if self.state is OutboxState.FREE:
            return Offer.SEND
        if self.state is not OutboxState.HELD:
            return Offer.CLOSED
        if now - self.held_since >= self.stall_timeout:
            self.drop()
            return Offer.STALLED
        if self.pending is not None:
            self.replaced += 1
        self.pending = message
        return Offer.QUEUED

    def hold(self, now: float) -> None:
        """The writer is busy from ``now`` (send started, or transport paused)."""
        if self.state is OutboxState.FREE:
            self.state = OutboxState.HELD
            self.held_since = now

    def release(self) -> M | None:
        """The writer is free again; returns the pending message to write next, if any.

        The outbox stays free: a caller whose write holds the writer again calls
        :meth:`hold` before the next offer.
        """
        if self.state is not OutboxState.HELD:
            return None
        self.state = OutboxState.FREE
        message, self.pending = self.pending, None
        return message

    def is_stalled(self, now: float) -> bool:
        return self.state is OutboxState.HELD and now - self.held_since >= self.stall_timeout

    @property
    def dropped(self) -> bool:
        """True once the client was cut for stalling."""
        return self.state is OutboxState.DROPPED

    def drop(self) -> None:
        """The client stalled: nothing more goes to it (it is to be cut)."""
        self.state = OutboxState.DROPPED
        self.pending = None

    def close(self) -> None:
        """The client is gone (a dropped one stays ``DROPPED``: that is why it went)."""
        if self.state is not OutboxState.DROPPED:
            self.state = OutboxState.CLOSED
        self.pending = None
