from __future__ import annotations

from rich.console import Console

from sysstream.cli._watch import WatchState
from sysstream.sansio._backoff import Backoff


def test_backoff_doubles_to_a_ceiling_and_resets() -> None:
    backoff = Backoff(initial=0.5, maximum=4)
    delays = [backoff.next_delay(jitter=lambda: 1.0) for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay(jitter=lambda: 0.0) == 0.25  # jitter takes up to half off


def test_plain_line_and_error_line() -> None:
    state = WatchState("ws://x", message={"cpu": 1.5, "memory": 2.0, "timestamp": "T"})
    assert state.line() == "T cpu=1.5 memory=2.0"
    state.message = {"error": "Metric collection failed: boom", "timestamp": "T"}
    assert state.line() == "T error: Metric collection failed: boom"


def test_render_shows_values_failures_and_status() -> None:
    state = WatchState(
        "ws://x",
        status="live",
        message={"cpu": 91.0, "disk": None, "timestamp": "T", "errors": {"disk": "gone"}},
    )
    console = Console(record=True, width=80)
    console.print(state.render())
    text = console.export_text()
    assert "ws://x  live" in text
    assert "91.0 %" in text
    assert "unavailable" in text
    assert "disk: gone" in text
