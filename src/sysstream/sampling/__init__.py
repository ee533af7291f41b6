"""Sampling this host: platform readers over psutil and the source that ticks them."""

from __future__ import annotations

from ._collectors import build_collectors
from ._processes import CMDLINE_MAX, ProcessSnapshot, ProcessTable
from ._source import LocalSource, Source, describe_exception

__all__ = [
    "CMDLINE_MAX",
    "LocalSource",
    "ProcessSnapshot",
    "ProcessTable",
    "Source",
    "build_collectors",
    "describe_exception",
]
