"""Run ``sysstream`` with every garbage collection of generation 1 or 2 logged.

Usage: ``python benchmarks/gcwatch.py serve --port 0 …`` (the arguments of ``sysstream``).

Owns: a ``gc.callbacks`` hook that writes one line per collection of the older
generations to stderr (``gc gen=2 ms=212.4 collected=0 at=<unix time>``), so
:mod:`profile` can say how often full collections interrupt the fan-out and for how long.
"""

from __future__ import annotations

import gc
import sys
import time
from typing import Any

from sysstream.cli import main

__all__ = ["main"]

_started: list[float] = [0.0]


def _watch(phase: str, info: dict[str, Any]) -> None:
    if info["generation"] == 0:
        return
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    elapsed = (time.perf_counter() - _started[0]) * 1000
    print(
        f"gc gen={info['generation']} ms={elapsed:.1f} collected={info['collected']} "
        f"at={time.time():.3f}",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    gc.callbacks.append(_watch)
    sys.argv[0] = "sysstream"
    main()
