"""The process list query: parameters to a bounded query, and the query over rows."""

from __future__ import annotations

import pytest

from sysstream.sansio import (
    PROCESS_LIST_MAX,
    ControlError,
    ProcessQuery,
    parse_process_query,
    select_processes,
)

ROWS = [
    {"pid": 10, "name": "python", "user": "web", "cmdline": "python manage.py runserver",
     "cpu_percent": 50.0, "rss_bytes": 300},
    {"pid": 11, "name": "python", "user": "web", "cmdline": "python worker.py --queue=mail",
     "cpu_percent": 50.0, "rss_bytes": 900},
    {"pid": 3, "name": "Bash", "user": "root", "cmdline": "-bash",
     "cpu_percent": 0.0, "rss_bytes": 100},
    {"pid": 7, "name": "redis-server", "user": "redis", "cmdline": "redis-server *:6379",
     "cpu_percent": 2.5, "rss_bytes": 500},
]  # fmt: skip


def pids(query: ProcessQuery) -> list[int]:
    return [row["pid"] for row in select_processes(ROWS, query)[1]]


def test_defaults_sort_by_cpu_largest_first_ties_by_pid() -> None:
    query = parse_process_query({})
    assert query == ProcessQuery("cpu", True, "", 100)
    assert pids(query) == [10, 11, 7, 3]
    # Ties by pid whatever order the walk found them in.
    assert [row["pid"] for row in select_processes(ROWS[::-1], query)[1]] == [10, 11, 7, 3]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"sort": "memory"}, [11, 7, 10, 3]),
        ({"sort": "pid"}, [3, 7, 10, 11]),
        ({"sort": "pid", "order": "desc"}, [11, 10, 7, 3]),
        ({"sort": "name"}, [3, 10, 11, 7]),  # case-insensitive: Bash before python
        ({"sort": "user"}, [7, 3, 10, 11]),
        ({"sort": "cpu", "order": "asc"}, [3, 7, 10, 11]),
    ],
)
def test_sort_orders(params: dict[str, str], expected: list[int]) -> None:
    assert pids(parse_process_query(params)) == expected


def test_filter_matches_name_user_or_command_line_and_counts_matches() -> None:
    matched, rows = select_processes(ROWS, parse_process_query({"filter": "WORKER", "limit": "1"}))
    assert (matched, [row["pid"] for row in rows]) == (1, [11])
    matched, rows = select_processes(ROWS, parse_process_query({"filter": "web", "limit": "1"}))
    assert (matched, [row["pid"] for row in rows]) == (2, [10])
    assert pids(parse_process_query({"filter": "redis"})) == [7]
    assert pids(parse_process_query({"filter": "nothing-like-it"})) == []
    assert pids(parse_process_query({"filter": "  Worker "})) == [11]  # trimmed
    kernel = {"pid": 2, "name": "kthreadd", "user": "root", "cmdline": "",
              "cpu_percent": 0.0, "rss_bytes": 0}  # fmt: skip
    query = parse_process_query({"filter": "kthread"})
    assert select_processes([*ROWS, kernel], query) == (1, [kernel])  # by name alone


def test_the_bounds_themselves_are_accepted() -> None:
    assert parse_process_query({"limit": str(PROCESS_LIST_MAX)}).limit == PROCESS_LIST_MAX
    assert parse_process_query({"filter": "x" * 100}).filter == "x" * 100
    with pytest.raises(ControlError, match=f"got {PROCESS_LIST_MAX + 1}"):
        parse_process_query({"limit": str(PROCESS_LIST_MAX + 1)})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sort": "rss"}, "expected sort to be one of cpu, memory, pid, name, user, got 'rss'"),
        ({"order": "up"}, "expected order to be asc or desc, got 'up'"),
        ({"limit": "0"}, f"expected limit from 1 to {PROCESS_LIST_MAX}, got 0"),
        ({"limit": "100000"}, f"expected limit from 1 to {PROCESS_LIST_MAX}, got 100000"),
        ({"limit": "ten"}, "expected limit as a whole number, got 'ten'"),
        ({"filter": "x" * 101}, "expected a filter of at most 100 characters, got 101"),
        ({"fields": "cpu"}, "expected sort, order, filter or limit, got 'fields'"),
    ],
)
def test_bad_parameters_are_refused_in_one_line(params: dict[str, str], message: str) -> None:
    with pytest.raises(ControlError) as caught:
        parse_process_query(params)
    assert str(caught.value) == message
