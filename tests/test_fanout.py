from __future__ import annotations

from sysstream.sansio._fanout import Offer, Outbox, OutboxState


def test_free_outbox_sends_at_once() -> None:
    outbox: Outbox[str] = Outbox(stall_timeout=10)
    assert outbox.offer("a", now=0) is Offer.SEND
    assert outbox.state is OutboxState.FREE


def test_held_outbox_keeps_only_the_latest_message() -> None:
    outbox: Outbox[str] = Outbox(stall_timeout=10)
    outbox.hold(now=0)
    assert outbox.offer("a", now=1) is Offer.QUEUED
    assert outbox.offer("b", now=2) is Offer.QUEUED
    assert outbox.replaced == 1
    assert outbox.release() == "b"
    assert outbox.state is OutboxState.FREE
    assert outbox.release() is None


def test_outbox_held_past_the_timeout_is_stalled_and_dropped() -> None:
    outbox: Outbox[str] = Outbox(stall_timeout=5)
    outbox.hold(now=100)
    assert outbox.offer("a", now=104.9) is Offer.QUEUED
    assert not outbox.is_stalled(104.9)
    assert outbox.is_stalled(105)
    assert outbox.offer("b", now=105) is Offer.STALLED
    assert outbox.state is OutboxState.DROPPED
    assert outbox.pending is None
    assert outbox.offer("c", now=106) is Offer.CLOSED
    outbox.close()  # the connection then goes: why it went is kept
    assert outbox.state is OutboxState.DROPPED


def test_a_drop_from_outside_ends_delivery_and_a_close_is_not_a_drop() -> None:
    dropped: Outbox[str] = Outbox(stall_timeout=5)
    dropped.drop()  # e.g. a keepalive ping left unanswered
    assert dropped.state is OutboxState.DROPPED
    assert dropped.offer("a", now=0) is Offer.CLOSED
    closed: Outbox[str] = Outbox(stall_timeout=5)
    closed.close()
    assert closed.state is OutboxState.CLOSED


def test_hold_keeps_the_time_it_was_first_held() -> None:
    outbox: Outbox[str] = Outbox(stall_timeout=5)
    outbox.hold(now=0)
    outbox.hold(now=4)  # still held: the stall clock does not restart
    assert outbox.offer("a", now=5) is Offer.STALLED


def test_release_after_close_returns_nothing() -> None:
    outbox: Outbox[str] = Outbox(stall_timeout=5)
    outbox.close()
    assert outbox.release() is None


def test_a_released_message_is_not_sent_again_at_the_next_release() -> None:
    outbox: Outbox[str] = Outbox(stall_timeout=10)
    outbox.hold(now=0)
    assert outbox.offer("a", now=1) is Offer.QUEUED
    assert outbox.release() == "a"
    outbox.hold(now=2)  # the write of "a" holds the writer; nothing newer was offered
    assert outbox.release() is None


def test_closing_lets_go_of_the_pending_message() -> None:
    outbox: Outbox[str] = Outbox(stall_timeout=10)
    outbox.hold(now=0)
    assert outbox.offer("a", now=1) is Offer.QUEUED
    outbox.close()
    assert (outbox.state, outbox.pending) == (OutboxState.CLOSED, None)
