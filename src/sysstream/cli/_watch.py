"""``sysstream watch``: a terminal client for the stream that survives server restarts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
import websockets
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text
from websockets.asyncio.client import connect

from ..sansio import Backoff

__all__ = ["WatchState", "watch"]

DEFAULT_URL = "ws://127.0.0.1:54112/api/system/metrics"


@dataclass(slots=True)
class WatchState:
    url: str
    status: str = "connecting"
    message: dict[str, Any] | None = None
    received: int = 0

    def render(self) -> Group:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold", width=10)
        table.add_column(justify="right", width=8)
        table.add_column(width=32)
        message = self.message or {}
        for key, value in message.items():
            if key in ("timestamp", "errors", "error"):
                continue
            if isinstance(value, int | float):
                bar = "█" * round(min(max(value, 0), 100) / 100 * 30)
                table.add_row(key, f"{value:5.1f} %", Text(bar, style=_colour(value)))
            else:
                table.add_row(key, "—", Text("unavailable", style="dim"))
        lines: list[Any] = [Text(f"{self.url}  {self.status}", style=_status_style(self.status))]
        lines.append(table)
        if "error" in message:
            lines.append(Text(message["error"], style="red"))
        for key, error in (message.get("errors") or {}).items():
            lines.append(Text(f"{key}: {error}", style="yellow"))
        if "timestamp" in message:
            lines.append(Text(f"sample at {message['timestamp']}", style="dim"))
        return Group(*lines)

    def line(self) -> str:
        message = self.message or {}
        if "error" in message:
            return f"{message.get('timestamp', '')} error: {message['error']}"
        values = " ".join(
            f"{key}={value}" for key, value in message.items() if key not in ("timestamp", "errors")
        )
        return f"{message.get('timestamp', '')} {values}"


def _colour(value: float) -> str:
    return "green" if value < 60 else ("yellow" if value < 85 else "red")


def _status_style(status: str) -> str:
    return "green" if status == "live" else "yellow"


async def watch(url: str = DEFAULT_URL, *, count: int | None = None, console: Console) -> int:
    """Show the stream at ``url`` until interrupted, or until ``count`` messages arrived.

    Reconnects with backoff whenever the server goes away. Returns the number of messages.
    """
    state = WatchState(url)
    backoff = Backoff()
    interactive = console.is_terminal
    live = Live(state.render(), console=console, auto_refresh=False) if interactive else None

    def show(status: str | None = None) -> None:
        if status is not None:
            state.status = status
            if live is None:
                console.print(f"[{status}]", highlight=False, markup=False)
        if live is not None:
            live.update(state.render(), refresh=True)

    if live is not None:
        live.start()
    try:
        while count is None or state.received < count:
            try:
                async with connect(url, open_timeout=10, max_size=2**20) as connection:
                    backoff.reset()
                    show("live")
                    async for raw in connection:
                        state.message = orjson.loads(raw)
                        state.received += 1
                        if live is None:
                            console.print(state.line(), highlight=False, markup=False)
                        show()
                        if count is not None and state.received >= count:
                            break
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                delay = backoff.next_delay()
                show(f"disconnected ({type(exc).__name__}); retrying in {delay:.1f} s")
                await asyncio.sleep(delay)
    finally:
        if live is not None:
            live.stop()
    return state.received
