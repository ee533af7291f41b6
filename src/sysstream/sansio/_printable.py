"""Text from a server made safe for a terminal: no control characters survive.

A process name, a host id or an error text is chosen by whoever runs the process or the
server. Written to a terminal as is, ``ESC [ 2 J`` clears the screen and an OSC sequence can
retitle the window or plant a hyperlink. Every string the terminal client shows goes through
:func:`printable` first (docs/security.md).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["printable", "printable_tree"]

# C0 controls (ESC, BEL, CR, backspace…), DEL and the C1 range (8-bit CSI is U+009B), plus
# the bidirectional overrides and isolates that reorder what follows them ("trojan source").
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile("[\t\n\r\x0b\x0c]")


def printable(text: str) -> str:
    """``text`` without control characters; tabs and line breaks become spaces."""
    return _CONTROL.sub("", _SPACES.sub(" ", text))


def printable_tree(value: Any) -> Any:
    """A decoded JSON value with :func:`printable` applied to every string, keys included."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(str(k)): printable_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [printable_tree(item) for item in value]
    return value
