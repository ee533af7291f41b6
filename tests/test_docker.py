"""Docker Engine API messages (sysstream.sansio._docker): hosts, containers, events, lines."""

from __future__ import annotations

from typing import Any

import pytest

from sysstream.sansio import (
    EventAction,
    LineBuffer,
    container_info,
    event_action,
    parse_docker_host,
    parse_engine_time,
)

ID = "ecefc20367c202342fb00615c29ccfacde7d94c2656a27ed610f3ce175fd8391"

# Trimmed from a real `GET /containers/{id}/json` of Docker 20.10.
INSPECT: dict[str, Any] = {
    "Id": ID,
    "Created": "2026-12-03T04:35:07.1Z",
    "State": {
        "Status": "running",
        "Running": True,
        "Pid": 13220,
        "StartedAt": "2026-12-03T04:35:07.361562336Z",
        "Health": {"Status": "healthy", "FailingStreak": 0, "Log": []},
    },
    "Image": "sha256:e76e28197cb3a071ddb6b6d35e22af81aae8d9f012555de0fdb4772afb98698b",
    "Name": "/burn",
    "RestartCount": 3,
    "Config": {"Image": "bb:test"},
}


def test_docker_host_values() -> None:
    assert parse_docker_host(None) == "/var/run/docker.sock"
    assert parse_docker_host("") == "/var/run/docker.sock"
    assert parse_docker_host("unix:///run/podman/podman.sock") == "/run/podman/podman.sock"
    for bad in ("tcp://127.0.0.1:2375", "/var/run/docker.sock", "unix://relative.sock"):
        with pytest.raises(ValueError, match="expected DOCKER_HOST as unix:///path"):
            parse_docker_host(bad)


def test_engine_times_keep_sub_second_precision() -> None:
    assert parse_engine_time("2026-12-03T04:35:07.361562336Z") == pytest.approx(1796272507.361562)
    assert parse_engine_time("2026-12-03T04:35:07Z") == 1796272507.0
    assert parse_engine_time("0001-01-01T00:00:00Z") is None  # never started
    assert parse_engine_time("yesterday") is None
    assert parse_engine_time(None) is None


def test_container_from_inspect() -> None:
    info = container_info(INSPECT)
    assert (info.id, info.name, info.image, info.state) == (ID, "burn", "bb:test", "running")
    assert (info.health, info.restarts, info.pid) == ("healthy", 3, 13220)
    assert info.started_at == pytest.approx(1796272507.361562)


def test_container_without_health_check_or_config() -> None:
    bare = {"Id": ID, "State": {"Status": "paused", "Health": {"Status": "none"}}, "Image": "x"}
    info = container_info(bare)
    assert (info.name, info.image, info.state, info.health) == (ID[:12], "x", "paused", None)
    assert (info.restarts, info.started_at, info.pid) == (0, None, 0)


def test_not_a_container() -> None:
    with pytest.raises(ValueError, match="expected a 64-hex container 'Id', got None"):
        container_info({"message": "page not found"})


def event(action: str, kind: str = "container") -> dict[str, Any]:
    return {"Type": kind, "Action": action, "Actor": {"ID": ID, "Attributes": {"name": "x"}}}


@pytest.mark.parametrize(
    "action", ["create", "start", "die", "stop", "restart", "pause", "rename", "oom"]
)
def test_events_that_refresh(action: str) -> None:
    assert event_action(event(action)) == (ID, EventAction.REFRESH)


def test_health_status_refreshes_and_destroy_forgets() -> None:
    assert event_action(event("health_status: unhealthy")) == (ID, EventAction.REFRESH)
    assert event_action(event("destroy")) == (ID, EventAction.FORGET)


@pytest.mark.parametrize(
    "change",
    [event("exec_create: sh -c true"), event("exec_die"), event("attach"), event("pull", "image")],
)
def test_events_that_change_nothing(change: dict[str, Any]) -> None:
    assert event_action(change) is None


def test_old_style_event_without_actor() -> None:
    assert event_action({"status": "start", "id": ID}) == (ID, EventAction.REFRESH)


def test_line_buffer_splits_across_chunks_and_bounds_a_line() -> None:
    lines = LineBuffer(limit=16)
    assert lines.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert lines.feed(b":2}\n\n") == [b'{"b":2}']
    with pytest.raises(ValueError, match="expected event lines under 16 bytes"):
        lines.feed(b"x" * 17)
