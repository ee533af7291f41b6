"""The control session without sockets: messages in, replies or a close out, hub views moved."""

from __future__ import annotations

import orjson
import pytest

from sysstream import MetricsHub, View
from sysstream.sansio._ratelimit import ControlRateLimit
from sysstream.sansio._session import Close, ControlSession, Reply, SessionState

from .test_hub import ListSink, sample


class SecondSource:
    """A source whose tick is one second; the session only reads its interval."""

    interval = 1.0

    async def next_sample(self, groups: frozenset[str]) -> None:
        raise AssertionError("the hub is never started here")

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def session_with(
    rate: ControlRateLimit | None = None,
) -> tuple[ControlSession, MetricsHub, ListSink, list[str], Clock]:
    hub = MetricsHub(SecondSource())  # type: ignore[arg-type]
    sink = ListSink()
    hub.attach(sink, View(("cpu",)))
    ended: list[str] = []
    clock = Clock()
    session = ControlSession(
        hub, sink, on_close=lambda: ended.append("released"), rate=rate, clock=clock
    )
    return session, hub, sink, ended, clock


def reply_of(outcome: Reply | Close) -> dict[str, object]:
    assert isinstance(outcome, Reply), f"expected a reply, got {outcome!r}"
    message = orjson.loads(outcome.payload)
    assert isinstance(message, dict)
    return message


def test_subscribe_moves_the_sink_and_is_acknowledged() -> None:
    session, hub, sink, _, _ = session_with()
    subscribe = orjson.dumps({"type": "subscribe", "fields": ["load", "memory"], "interval": 2})
    ack = reply_of(session.receive(subscribe.decode()))
    assert ack["type"] == "subscribed"
    assert (ack["fields"], ack["interval"]) == (["load", "memory"], 2)
    assert isinstance(ack["timestamp"], str) and ack["timestamp"].endswith("Z")
    hub.publish(sample(3), now=0.0)  # not a multiple of 2: nothing for this view
    hub.publish(sample(4), now=0.0)
    assert [list(message) for message in sink.messages()] == [["load", "memory", "timestamp"]]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b'{"type":"subscribe","fields":["cpu"]}', "expected a JSON text message, got a binary"),
        ("not json", "expected a JSON object, got text that is not JSON"),
        ('{"type":"subscribe","fields":["gpu"]}', "unknown field 'gpu'"),
        (
            '{"type":"subscribe","fields":["cpu"],"interval":1.5}',
            "expected interval a whole multiple of the 1 s tick",
        ),
    ],
)
def test_invalid_messages_get_an_error_and_change_nothing(message: str | bytes, error: str) -> None:
    session, hub, sink, ended, _ = session_with()
    reply = reply_of(session.receive(message))
    assert isinstance(reply["error"], str) and reply["error"].startswith(error), reply
    assert session.state is SessionState.OPEN
    hub.publish(sample(1), now=0.0)
    assert [list(message) for message in sink.messages()] == [["cpu", "timestamp"]]
    assert ended == []


def test_a_flood_is_answered_with_close_1008_and_nothing_after() -> None:
    session, hub, _, ended, clock = session_with(ControlRateLimit(rate=1, burst=2))
    bad = "[]"
    assert "error" in reply_of(session.receive(bad))
    assert "error" in reply_of(session.receive(bad))
    assert session.receive(bad) == Close(1008, "too many control messages")
    assert session.state is SessionState.CLOSING
    clock.now += 60  # tokens again, but the session is over
    with pytest.raises(RuntimeError, match="expected an open session, got one closing"):
        session.receive(bad)
    assert ended == [] and hub.clients == 1  # still attached until the connection is gone


def test_the_rate_refills_with_time() -> None:
    session, _, _, _, clock = session_with(ControlRateLimit(rate=1, burst=1))
    assert isinstance(session.receive("[]"), Reply)
    clock.now += 1.0
    assert isinstance(session.receive("[]"), Reply)


def test_close_detaches_and_releases_exactly_once() -> None:
    session, hub, _, ended, _ = session_with()
    session.close()
    assert (hub.clients, ended, session.state) == (0, ["released"], SessionState.CLOSED)
    with pytest.raises(RuntimeError, match="expected an open or closing session, got one closed"):
        session.close()
    with pytest.raises(RuntimeError, match="expected an open session, got one closed"):
        session.receive("[]")
    assert ended == ["released"]


def test_close_after_a_flood_still_releases() -> None:
    session, hub, _, ended, _ = session_with(ControlRateLimit(rate=1, burst=1))
    session.receive("[]")
    assert isinstance(session.receive("[]"), Close)
    session.close()
    assert (hub.clients, ended) == (0, ["released"])
