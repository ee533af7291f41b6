"""Numbers as people read them, by the registry's unit: ``1.5 GiB``, ``12.0 MiB/s``, ``3 d 04:05``.

The terminal client formats every value with the unit its metric has in the registry (or the
server's schema), so a duration is never shown as a percent.
"""

from __future__ import annotations

import math

__all__ = ["bar", "format_bytes", "format_duration", "format_value", "sparkline"]

_IEC = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_TICKS = "▁▂▃▄▅▆▇█"


def _fixed(value: float, digits: int, trim: bool = False) -> str:
    """``value`` with ``digits`` decimals; ``trim``: without trailing zeros, as a threshold
    is written (``80``, ``1``, ``0.5``: not a reading's ``80.0``, nor ``0.30000000000000004``)."""
    text = f"{value:.{digits}f}"
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def format_bytes(count: float, *, trim: bool = False) -> str:
    """IEC units, about three significant figures: ``512 B``, ``1.50 KiB``, ``27.4 GiB``
    (``trim``: ``1 MiB``, not ``1.00 MiB``)."""
    size = float(count)
    for unit in _IEC:
        if abs(size) < 1024 or unit == _IEC[-1]:
            if unit == "B":
                return f"{size:.0f} B"
            digits = 0 if abs(size) >= 100 else 1 if abs(size) >= 10 else 2
            return f"{_fixed(size, digits, trim)} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float, *, trim: bool = False) -> str:
    """``45 s``, ``12 min 5 s``, ``3 h 04 min``, ``12 d 3 h`` (``trim``: ``5 s``, not ``5.0 s``)."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{seconds:.0f} s" if seconds >= 10 else f"{_fixed(seconds, 1, trim)} s"


def _number(value: float, trim: bool = False) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}".replace(",", " ")
    return _fixed(value, 1 if abs(value) >= 10 else 2, trim)


def format_value(value: object, unit: str, *, trim: bool = False) -> str:
    """``value`` in ``unit`` (a registry unit: ``percent``, ``bytes``, ``bytes/s``, ``seconds``,
    ``celsius``, ``rpm``, ``packets/s``, ``text``…). ``None`` is a dash: not measured yet.
    ``trim`` leaves out trailing zeros, for a figure someone wrote (an alert's threshold:
    ``80 %``, ``1 MiB/s``) rather than a reading (``80.0 %``, ``1.00 MiB/s``)."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if unit == "percent":
        return f"{_fixed(value, 1, trim)} %"
    if unit == "bytes":
        return format_bytes(value, trim=trim)
    if unit == "bytes/s":
        return format_bytes(value, trim=trim) + "/s"
    if unit == "seconds":
        return format_duration(value, trim=trim)
    if unit == "celsius":
        return f"{_fixed(value, 1, trim)} °C"
    if unit == "tasks":  # load averages: always two decimals, so columns line up
        return _fixed(value, 2, trim)
    if unit in ("text", ""):
        return _number(value, trim)
    return f"{_number(value, trim)} {unit}"


def bar(percent: float | None, width: int) -> str:
    """A horizontal bar ``width`` cells wide, in eighths: ``█████▍    ``."""
    if width <= 0:
        return ""
    if percent is None or not math.isfinite(percent):
        return " " * width
    eighths = round(min(max(percent, 0.0), 100.0) / 100 * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + ("▏▎▍▌▋▊▉"[part - 1] if part else "")
    return text.ljust(width)


def sparkline(values: list[float | None], width: int) -> str:
    """The last ``width`` values as ``▁▂▃▅▇``, scaled to their own maximum (gaps as spaces)."""
    if width <= 0:
        return ""
    recent = values[-width:]
    peak = max((v for v in recent if v is not None), default=0.0)
    cells = []
    for value in recent:
        if value is None:
            cells.append(" ")
        elif peak <= 0:
            cells.append(_TICKS[0])
        else:
            cells.append(_TICKS[min(int(value / peak * (len(_TICKS) - 1) + 0.5), len(_TICKS) - 1)])
    return "".join(cells).rjust(width)
