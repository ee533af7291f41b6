"""The process list query (``GET …/metrics/processes``): parameters to a bounded query, and
the query applied to a walk's rows. Whatever a client asks for, the answer holds at most
``PROCESS_LIST_MAX`` rows and the filter at most ``MAX_FILTER`` characters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._control import ControlError

__all__ = ["PROCESS_LIST_MAX", "ProcessQuery", "parse_process_query", "select_processes"]

PROCESS_LIST_MAX = 500
MAX_FILTER = 100
DEFAULT_LIMIT = 100

# Sort key → the row field, and whether it sorts largest first by default.
SORTS: dict[str, tuple[str, bool]] = {
    "cpu": ("cpu_percent", True),
    "memory": ("rss_bytes", True),
    "pid": ("pid", False),
    "name": ("name", False),
    "user": ("user", False),
}


@dataclass(frozen=True, slots=True)
class ProcessQuery:
    sort: str = "cpu"
    descending: bool = True
    filter: str = ""  # case-insensitive, in the name, user or command line
    limit: int = DEFAULT_LIMIT


def parse_process_query(params: Mapping[str, str]) -> ProcessQuery:
    """``sort`` (cpu, memory, pid, name, user), ``order`` (asc, desc; by default the
    largest CPU and memory first, names and pids in ascending order), ``filter`` and
    ``limit`` (1 to 500)."""
    unknown = sorted(set(params) - {"sort", "order", "filter", "limit"})
    if unknown:
        raise ControlError(f"expected sort, order, filter or limit, got {unknown[0]!r}")
    sort = params.get("sort", "cpu")
    if sort not in SORTS:
        raise ControlError(f"expected sort to be one of {', '.join(SORTS)}, got {sort!r}")
    order = params.get("order")
    if order not in (None, "asc", "desc"):
        raise ControlError(f"expected order to be asc or desc, got {order!r}")
    descending = SORTS[sort][1] if order is None else order == "desc"
    text = params.get("filter", "")
    if len(text) > MAX_FILTER:
        raise ControlError(f"expected a filter of at most {MAX_FILTER} characters, got {len(text)}")
    raw_limit = params.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(raw_limit)
    except ValueError:
        raise ControlError(f"expected limit as a whole number, got {raw_limit!r}") from None
    if not 1 <= limit <= PROCESS_LIST_MAX:
        raise ControlError(f"expected limit from 1 to {PROCESS_LIST_MAX}, got {limit}")
    return ProcessQuery(sort, descending, text.strip().casefold(), limit)


def _matches(row: Mapping[str, Any], needle: str) -> bool:
    return any(needle in str(row.get(key, "")).casefold() for key in ("name", "user", "cmdline"))


def _sort_key(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def select_processes(
    rows: Iterable[Mapping[str, Any]], query: ProcessQuery
) -> tuple[int, Sequence[Mapping[str, Any]]]:
    """How many rows match the filter, and the first ``limit`` of them in the asked order
    (ties broken by pid, so the order is stable from one walk to the next)."""
    field, _ = SORTS[query.sort]
    matched = [row for row in rows if not query.filter or _matches(row, query.filter)]
    matched.sort(key=lambda row: row["pid"])
    matched.sort(key=lambda row: _sort_key(row[field]), reverse=query.descending)
    return len(matched), matched[: query.limit]
