"""The view model's panels as rich renderables: what both the full-screen dashboard and
``watch --once`` draw. Every string here came through :func:`sysstream.sansio.printable`
and is put in a ``Text`` as is, never parsed as markup (a process called ``[red]x`` stays
that name)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.styled import Styled
from rich.table import Table as RichTable
from rich.text import Text

from ..sansio import ConnectionState, Line, Panel, WatchModel, bar, sparkline

__all__ = ["level_style", "render_panel", "render_status", "snapshot"]

GRAPHIC_MIN = 6  # narrower than this, a bar or sparkline says nothing: leave it out


def level_style(percent: float | None) -> str:
    if percent is None:
        return "dim"
    return "green" if percent < 60 else ("yellow" if percent < 85 else "red")


def render_panel(panel: Panel, width: int, *, stale: bool = False) -> RenderableType:
    """``panel``'s body ``width`` cells wide; labels are never cut (a narrow screen drops the
    bars first, then wraps values)."""
    parts: list[RenderableType] = []
    if panel.lines:
        parts.append(_lines(panel.lines, width))
    if panel.table is not None:
        parts.append(_table(panel))
    body: RenderableType = Group(*parts)
    return Styled(body, "dim") if stale else body


def _lines(lines: tuple[Line, ...], width: int) -> Group:
    """Labels in one column as wide as the longest; runs of lines with a bar or sparkline
    share a value column and a graphic, plain lines let their value take the rest."""
    label_width = max(len(line.label) for line in lines)
    graphed = [line for line in lines if line.percent is not None or line.trend is not None]
    value_width = max((len(line.value) for line in graphed), default=0)
    graphic_width = width - label_width - value_width - 2
    show_graphics = graphic_width >= GRAPHIC_MIN
    runs: list[RichTable] = []
    current: RichTable | None = None
    current_graphed = False
    for line in lines:
        has_graphic = show_graphics and (line.percent is not None or line.trend is not None)
        if current is None or has_graphic != current_graphed:
            current = RichTable.grid(padding=(0, 1))
            current.add_column(no_wrap=True, min_width=label_width, style="bold")
            if has_graphic:
                current.add_column(justify="right", no_wrap=True, min_width=value_width)
                current.add_column(no_wrap=True, width=graphic_width)
            else:
                current.add_column(overflow="fold", ratio=1)
            current_graphed = has_graphic
            runs.append(current)
        shown = line.value if has_graphic else _fill(line.value, width - label_width - 1)
        cells: list[RenderableType] = [
            Text(line.label),
            Text(shown, style="red" if line.problem else ""),
        ]
        if has_graphic and line.percent is not None:
            cells.append(Text(bar(line.percent, graphic_width), style=level_style(line.percent)))
        elif has_graphic and line.trend is not None:
            cells.append(Text(sparkline(list(line.trend), graphic_width), style="cyan"))
        current.add_row(*cells)
    return Group(*runs)


def _fill(value: str, width: int) -> str:
    """``value``'s comma-separated items on as few lines as fit ``width``, broken only between
    items (``system 11.3 %`` never splits from its unit); an item wider than a line folds."""
    lines: list[str] = []
    for item in value.split(", "):
        if lines and len(lines[-1]) + 2 + len(item) <= width:
            lines[-1] += ", " + item
        else:
            if lines:
                lines[-1] += ","
            lines.append(item)
    return "\n".join(lines)


def _table(panel: Panel) -> RichTable:
    assert panel.table is not None
    table = RichTable(box=None, pad_edge=False, header_style="bold", expand=True)
    last = len(panel.table.columns) - 1
    for position, (name, numeric) in enumerate(
        zip(panel.table.columns, panel.table.numeric, strict=True)
    ):
        if position == last and not numeric:  # the free-text column (a command) takes the rest
            table.add_column(name, no_wrap=True, overflow="ellipsis", ratio=1)
        else:
            table.add_column(name, justify="right" if numeric else "left", no_wrap=True,
                             min_width=len(name))  # fmt: skip
    for row in panel.table.rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def render_status(model: WatchModel, where: str, now: float) -> Text:
    style = {
        ConnectionState.LIVE: "bold green",
        ConnectionState.CONNECTING: "bold yellow",
        ConnectionState.RETRYING: "bold yellow",
        ConnectionState.REFUSED: "bold red",
    }[model.state]
    text = Text(where, style="bold")
    text.append("  ")
    text.append(model.status(now), style=style)
    if (error := model.error()) is not None:
        text.append("  ")
        text.append(error, style="red")
    return text


def snapshot(model: WatchModel, where: str, now: float, width: int) -> list[RenderableType]:
    """The whole dashboard as a sequence of titled blocks, for ``watch --once``."""
    out: list[RenderableType] = [render_status(model, where, now)]
    for panel in model.panels():
        out.append(Text(""))
        out.append(Text(panel.title, style="bold underline"))
        out.append(render_panel(panel, width))
    return out
