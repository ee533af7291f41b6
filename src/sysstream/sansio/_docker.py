"""The Docker Engine API's messages, without the socket: where the daemon listens
(``DOCKER_HOST``), a container from ``GET /containers/{id}/json``, what an event from
``GET /events`` asks of the cache, and the event stream cut into bounded lines.

Podman's Docker-compatible service answers the same paths with the same fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ._containers import ContainerInfo

__all__ = [
    "DEFAULT_DOCKER_SOCKET",
    "EventAction",
    "LineBuffer",
    "container_info",
    "event_action",
    "parse_docker_host",
    "parse_engine_time",
]

DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"

# Events that leave the cached facts as they were: execs (health checks run one per
# interval), attaches, copies. Every other container event re-reads the container.
_QUIET_PREFIXES = ("exec_", "attach", "detach", "resize", "top", "archive-path", "copy", "export")


class EventAction:
    """What an event asks of the cache."""

    REFRESH = "refresh"  # read the container again
    FORGET = "forget"  # the container is gone


def parse_docker_host(value: str | None) -> str:
    """The daemon's socket path from a ``DOCKER_HOST`` value (``unix:///run/docker.sock``);
    the default socket when unset. Only Unix sockets are read (no TCP/TLS daemons)."""
    if not value:
        return DEFAULT_DOCKER_SOCKET
    scheme, sep, path = value.partition("://")
    if sep and scheme == "unix" and path.startswith("/"):
        return path
    raise ValueError(f"expected DOCKER_HOST as unix:///path/to/socket, got {value!r}")


def parse_engine_time(text: object) -> float | None:
    """Seconds since the epoch from the API's RFC 3339 times (nanosecond precision, ``Z``);
    ``None`` for the zero time (``0001-01-01T00:00:00Z``) and anything unreadable."""
    if not isinstance(text, str) or text.startswith("0001-"):
        return None
    stamp = text.replace("Z", "+00:00")
    main, dot, rest = stamp.partition(".")
    if dot:  # Python reads at most microseconds: cut the fraction to six digits
        digits = "".join(c for c in rest if c.isdigit())
        stamp = f"{main}.{digits[:6]}{rest[len(digits) :]}"
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def container_info(inspect: Mapping[str, Any]) -> ContainerInfo:
    """A :class:`ContainerInfo` from ``GET /containers/{id}/json``; raises ``ValueError``
    naming the field when the answer is not an engine's container."""
    container_id = inspect.get("Id")
    if not isinstance(container_id, str) or len(container_id) != 64:
        raise ValueError(f"expected a 64-hex container 'Id', got {container_id!r}")
    state = inspect.get("State")
    state = state if isinstance(state, dict) else {}
    config = inspect.get("Config")
    config = config if isinstance(config, dict) else {}
    health = state.get("Health")
    status = health.get("Status") if isinstance(health, dict) else None
    restarts = inspect.get("RestartCount")
    pid = state.get("Pid")
    return ContainerInfo(
        id=container_id,
        name=_text(inspect.get("Name")).lstrip("/") or container_id[:12],
        # The image as the user named it (busybox:1.36), not its sha256 id.
        image=_text(config.get("Image")) or _text(inspect.get("Image")),
        state=_text(state.get("Status")) or "unknown",
        health=status if isinstance(status, str) and status != "none" else None,
        restarts=restarts if isinstance(restarts, int) else 0,
        started_at=parse_engine_time(state.get("StartedAt")),
        pid=pid if isinstance(pid, int) else 0,
    )


def event_action(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(container id, EventAction)`` for a container event that changes what we show;
    ``None`` for other events (images, networks, execs)."""
    if event.get("Type", "container") != "container":
        return None
    actor = event.get("Actor")
    container_id = actor.get("ID") if isinstance(actor, dict) else event.get("id")
    action = event.get("Action", event.get("status"))
    if not isinstance(container_id, str) or not isinstance(action, str):
        return None
    if action == "destroy":
        return container_id, EventAction.FORGET
    if action.startswith(_QUIET_PREFIXES):
        return None
    return container_id, EventAction.REFRESH


class LineBuffer:
    """Cuts the event stream (one JSON object per line) into lines, holding at most
    ``limit`` bytes of an unfinished line: a peer cannot make us buffer without end."""

    __slots__ = ("_pending", "limit")

    def __init__(self, limit: int = 1 << 16) -> None:
        self.limit = limit
        self._pending = b""

    def feed(self, data: bytes) -> list[bytes]:
        *lines, self._pending = (self._pending + data).split(b"\n")
        if len(self._pending) > self.limit:
            raise ValueError(f"expected event lines under {self.limit} bytes, got a longer one")
        return [line for line in lines if line.strip()]
