"""The ``sysstream`` command line and its terminal client."""

from __future__ import annotations

from ._main import main

__all__ = ["main"]
