"""``sysstream watch`` in a terminal: the full-screen dashboard, on Textual.

Why Textual rather than rich's ``Live``: the dashboard needs keys (quit, pause, sort, a filter
prompt, a host picker), a screen that reflows when the terminal is resized, scrolling when it
is too short, and a test pilot that drives the real app in a virtual terminal
(``App.run_test``); ``Live`` gives only the redraw. Textual is rich's sibling from the same
maintainers, so the panels are the same rich renderables ``watch --once`` prints
(:mod:`sysstream.cli._panels`), and it honours ``NO_COLOR``.

The app owns no logic of its own: the stream's events go to a
:class:`~sysstream.sansio.WatchModel`, and each refresh draws the model's panels.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.events import Resize
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from ..sansio import Endpoint, Schema, WatchModel, printable
from ._panels import render_panel, render_status
from ._watch import (
    Refused,
    fetch_alert_rules,
    fetch_hosts,
    fetch_processes,
    fetch_schema,
    follow,
)

__all__ = ["HostPicker", "WatchApp"]

NARROW = 70  # below this many columns, panels stack in one column
HUB = "\x00hub"  # the picker's id for the hub's own machine (never a valid host id)
PROCESS_ROWS = 50  # rows of the full list asked for while filtering


class HostPicker(ModalScreen[str | None]):
    """A hub's hosts to choose from; dismissed with the host id (``None``: the hub itself)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Back")]
    DEFAULT_CSS = """
    HostPicker { align: center middle; }
    HostPicker > OptionList { width: 60; max-width: 100%; height: auto; max-height: 80%;
                              border: round $accent; }
    """

    def __init__(self, hosts: list[dict[str, Any]], current: str | None) -> None:
        super().__init__()
        self.hosts = hosts
        self.current = current

    def compose(self) -> ComposeResult:
        options = [Option("this hub's own machine", id=HUB)]
        for host in self.hosts:
            cpu = host.get("cpu")
            shown = f"{cpu:.1f} %" if isinstance(cpu, int | float) else "—"
            status = printable(str(host.get("status", "")))
            options.append(Option(f"{host['id']}  {status}  cpu {shown}", id=host["id"]))
        picker = OptionList(*options)
        picker.border_title = "Hosts (enter: watch, esc: back)"
        yield picker

    def on_mount(self) -> None:
        picker = self.query_one(OptionList)
        ids = [HUB, *(h["id"] for h in self.hosts)]
        picker.highlighted = ids.index(self.current) if self.current in ids else 0

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(None if event.option.id == HUB else event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(self.current if self.current is not None else HUB)


class WatchApp(App[None]):
    """The dashboard for one endpoint; ``refusal`` holds the line to print if it stopped
    because the server refused."""

    TITLE = "sysstream watch"
    CSS = """
    #status { height: 1; padding: 0 1; }
    #body { height: 1fr; }
    .pair { height: auto; }
    .panel { height: auto; border: round $primary-darken-2; padding: 0 1; }
    .pair > .panel { width: 1fr; }
    .narrow .pair { layout: vertical; }
    .narrow .pair > .panel { width: 100%; }
    .hidden { display: none; }
    .stale .panel { border: round $warning-darken-2; }
    #filter { dock: bottom; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("p", "pause", "Pause"),
        Binding("space", "pause", "Pause", show=False),
        Binding("c", "sort('cpu')", "Sort CPU"),
        Binding("m", "sort('memory')", "Sort mem"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("h", "hosts", "Hosts"),
    ]
    FIXED = ("alerts", "cpu", "memory", "net", "disk_io", "processes", "mounts")

    def __init__(
        self,
        endpoint: Endpoint,
        token: str | None = None,
        *,
        count: int | None = None,
        fleet: bool | None = None,
    ) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.token = token
        self.count = count
        # None: ask the server (a base URL might be a hub); True/False: known already.
        self.fleet = fleet
        self.model = WatchModel(Schema.from_registry())
        self.refusal: str | None = None
        self._extra: dict[str, Static] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        with VerticalScroll(id="body"):
            yield Static(id="alerts", classes="panel hidden")
            with Horizontal(classes="pair"):
                yield Static(id="cpu", classes="panel")
                yield Static(id="memory", classes="panel")
            with Horizontal(classes="pair"):
                yield Static(id="net", classes="panel")
                yield Static(id="disk_io", classes="panel")
            yield Static(id="processes", classes="panel")
            yield Static(id="mounts", classes="panel")
            yield Vertical(id="extra")
        yield Input(placeholder="filter processes (enter: apply, esc: clear)", id="filter",
                    classes="hidden")  # fmt: skip
        yield Footer()

    async def on_mount(self) -> None:
        self.query_one("#body").focus()  # arrows and page keys scroll when it does not fit
        self.set_interval(1.0, self.show_status)
        self.start(self.endpoint)
        if self.fleet is None and not self.endpoint.explicit_path:
            hosts = await fetch_hosts(self.endpoint, self.token)
            self.fleet = hosts is not None
            if hosts:
                self.push_screen(HostPicker(hosts, None), self._picked)
        self.refresh_bindings()

    # The stream

    def start(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.model = WatchModel(self.model.schema, sort=self.model.sort, filter=self.model.filter,
                                paused=self.model.paused)  # fmt: skip
        self.run_worker(self._stream(endpoint), group="stream", exclusive=True, exit_on_error=False)
        self._follow_process_list()
        self.show()

    async def _stream(self, endpoint: Endpoint) -> None:
        try:
            self.model.schema = await fetch_schema(endpoint, self.token)
            url = endpoint.stream_url_with(self.model.schema.fields)
            await follow(url, self.token, on_open=self._opened, on_message=self._message,
                         on_lost=self._lost)  # fmt: skip
        except Refused as exc:
            self.refusal = str(exc)
            self.model.refused(str(exc))
            self.exit(return_code=1)

    def _opened(self) -> None:
        self.model.connected()
        self.show_status()

    def _message(self, message: Any) -> None:
        data = self.model.receive(message, time.monotonic())
        if self.model.rules_wanted():
            rules = self._fetch_rules(self.endpoint, self.model)
            self.run_worker(rules, group="rules", exit_on_error=False)
        if data and self.count is not None and self.model.received >= self.count:
            self.exit()
        if not self.model.paused:
            self.show()
        else:
            self.show_status()

    async def _fetch_rules(self, endpoint: Endpoint, model: WatchModel) -> None:
        """The alert rules, for the unit of each alert's metric; redraws with them."""
        model.take_rules(await fetch_alert_rules(endpoint, self.token))
        if model is self.model and not model.paused:
            self.show()

    def _lost(self, reason: str, delay: float) -> None:
        self.model.disconnected(reason, delay, time.monotonic())
        self.show()

    # Drawing

    def show_status(self) -> None:
        status = render_status(self.model, self.endpoint.shown, time.monotonic())
        # A timer can fire while the app exits, its screen gone: nothing to draw on then.
        with contextlib.suppress(NoMatches):
            self.query_one("#status", Static).update(status)
            self.query_one("#body").set_class(self.model.stale, "stale")

    def show(self) -> None:
        """Redraw every panel from the model (not while paused: the screen holds still)."""
        with contextlib.suppress(NoMatches):  # the app is exiting: nothing left to draw on
            self._show()

    def _show(self) -> None:
        self.show_status()
        stale = self.model.stale
        panels = {panel.key: panel for panel in self.model.panels()}
        for key in self.FIXED:
            widget = self.query_one(f"#{key}", Static)
            self._draw(widget, panels.pop(key, None), stale)
        extra = self.query_one("#extra", Vertical)
        for key, panel in panels.items():
            if key not in self._extra:
                self._extra[key] = Static(classes="panel")
                extra.mount(self._extra[key])
            self._draw(self._extra[key], panel, stale)
        for key, widget in self._extra.items():
            if key not in panels:
                self._draw(widget, None, stale)

    def _draw(self, widget: Static, panel: Any, stale: bool) -> None:
        widget.set_class(panel is None, "hidden")
        if panel is None:
            return
        widget.border_title = panel.title
        # Before its first layout a widget has no size yet: guess half the screen.
        width = max(widget.content_size.width or (self.size.width // 2 - 4), 16)
        widget.update(render_panel(panel, width, stale=stale))

    def on_resize(self, event: Resize) -> None:
        self.screen.set_class(event.size.width < NARROW, "narrow")
        self.call_after_refresh(self.show)

    # Keys

    def action_pause(self) -> None:
        self.model.paused = not self.model.paused
        self.show()

    def action_sort(self, key: str) -> None:
        self.model.sort = key
        if self.model.filter:
            self._follow_process_list()
        self.show()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.remove_class("hidden")
        box.value = self.model.filter
        box.focus()

    @on(Input.Submitted, "#filter")
    def filter_submitted(self, event: Input.Submitted) -> None:
        self.model.filter = printable(event.value)[:100]
        event.input.add_class("hidden")
        self.query_one("#body").focus()
        self._follow_process_list()
        self.show()

    def _follow_process_list(self) -> None:
        """While a filter is set, ask the server's full process list every few seconds, so
        the filter reaches beyond the top ten (a fleet host has none: its top lists then)."""
        self.model.process_list = self.model.process_matches = None
        self.workers.cancel_group(self, "processes")
        if self.model.filter:
            self.run_worker(self._poll_processes(), group="processes", exit_on_error=False)

    async def _poll_processes(self) -> None:
        while True:
            found = await fetch_processes(
                self.endpoint, self.token, self.model.sort, self.model.filter, PROCESS_ROWS
            )
            if found is None:
                return
            self.model.process_matches, self.model.process_list = found
            if not self.model.paused:
                self.show()
            await asyncio.sleep(max(self.model.schema.interval or 1.0, 2.0))

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.add_class("hidden")
        self.model.filter = ""
        self.query_one("#body").focus()
        self._follow_process_list()
        self.show()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "hosts":
            return bool(self.fleet) or self.endpoint.host is not None
        return True

    async def action_hosts(self) -> None:
        hosts = await fetch_hosts(self.endpoint, self.token)
        if hosts is None:
            self.notify("this server lists no hosts (not a fleet hub)", severity="warning")
            return
        self.push_screen(HostPicker(hosts, self.endpoint.host), self._picked)

    def _picked(self, host: str | None) -> None:
        if host == HUB:  # cancelled with the hub's machine already shown
            return
        if host != self.endpoint.host:
            self.start(self.endpoint.for_host(host))
