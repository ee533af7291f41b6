from __future__ import annotations

import orjson
import pytest

from sysstream import View
from sysstream._registry import DEFAULT_FIELDS, GROUPS
from sysstream.sansio._control import ControlError, parse_control, parse_query


def subscribe(**message: object) -> str:
    return orjson.dumps({"type": "subscribe", **message}).decode()


def test_query_defaults_to_the_seed_view() -> None:
    assert parse_query({}, tick=1.0, history_limit=3600) == (View(DEFAULT_FIELDS, 1), 0.0)


def test_query_fields_interval_and_history() -> None:
    view, history = parse_query(
        {"fields": "cpu,net,load", "interval": "2", "history": "300"}, tick=1.0, history_limit=3600
    )
    assert view == View(("cpu", "net", "load"), every=2)
    assert history == 300.0


def test_query_fields_may_have_spaces_and_alerts_opt_in() -> None:
    view, _ = parse_query({"fields": " cpu , net,", "alerts": "1"}, tick=1.0, history_limit=60)
    assert view == View(("cpu", "net"), every=1, alerts=True)
    assert parse_query({"alerts": "false"}, tick=1.0, history_limit=60)[0].alerts is False
    assert parse_query({"interval": "3600"}, tick=1.0, history_limit=60)[0].every == 3600


def test_interval_in_ticks_of_a_fractional_tick() -> None:
    assert parse_control(subscribe(fields=["cpu"], interval=1.5), tick=0.5).view.every == 3


def test_acknowledgement_names_the_new_view() -> None:
    request = parse_control(subscribe(fields=["load", "cpu"], interval=2), tick=1.0)
    assert request.acknowledgement(1.0) == {
        "type": "subscribed",
        "fields": ["load", "cpu"],
        "interval": 2,
    }


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not json", "expected a JSON object, got text that is not JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"type": "unsubscribe"}', "expected type 'subscribe', got \"unsubscribe\""),
        ('{"fields": ["cpu"]}', "expected type 'subscribe', got null"),
        (subscribe(), "expected 'fields' in subscribe"),
        (subscribe(fields=[]), "expected at least one field"),
        (subscribe(fields="cpu"), "expected fields as a list of names"),
        (subscribe(fields=[1, 2]), "expected fields as a list of names, got [1,2]"),
        (subscribe(fields=["cpu", "gpu"]), "unknown field 'gpu'"),
        (subscribe(fields=["cpu", "cpu"]), "expected each field once"),
        (subscribe(fields=["cpu"] * (len(GROUPS) + 1)), f"expected at most {len(GROUPS)} fields"),
        (subscribe(fields=["cpu"], interval=0), "expected interval from 1 to 3600 s, got 0"),
        (subscribe(fields=["cpu"], interval=1.5), "whole multiple of the 1 s tick, got 1.5"),
        (subscribe(fields=["cpu"], interval=3601), "expected interval from 1 to 3600 s, got 3601"),
        (subscribe(fields=["cpu"], alerts="yes"), 'expected alerts as true or false, got "yes"'),
        (subscribe(fields=["cpu"], alerts=1), "expected alerts as true or false, got 1"),
        ('{"type": "subscribe", "fields": ["cpu"], "interval": 1' + "0" * 400 + "}", "JSON"),
        (subscribe(fields=["cpu"], interval="2"), "expected interval"),
        (subscribe(fields=["cpu"], interval=True), "expected interval in seconds, got true"),
        (subscribe(fields=["cpu"], interval=None), "expected interval in seconds, got null"),
        (subscribe(fields=["cpu"], extra=1), "unknown key 'extra' in subscribe"),
        ("[" * 5000 + "]" * 5000, "expected a JSON object, got text that is not JSON"),
    ],
)
def test_invalid_control_messages(text: str, error: str) -> None:
    with pytest.raises(ControlError) as raised:
        parse_control(text, tick=1.0)
    assert error in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"fields": ""}, "expected at least one field"),
        ({"fields": "cpu,nope"}, "unknown field 'nope'"),
        ({"interval": "fast"}, 'expected interval in seconds, got "fast"'),
        ({"interval": "nan"}, "expected interval in seconds"),
        ({"history": "-5"}, "expected history from 0 to 3600 s"),
        ({"history": "7200"}, 'expected history from 0 to 3600 s, got "7200"'),
    ],
)
def test_invalid_query_parameters(params: dict[str, str], error: str) -> None:
    with pytest.raises(ControlError, match=error.replace("(", r"\(")):
        parse_query(params, tick=1.0, history_limit=3600)
