"""Fleet mode's wire format on Redis, with no I/O: key names, host ids, Redis URLs, and
the tick message agents publish and hubs decode.

Per host ``web1`` an agent writes, every tick, in one pipeline:

* ``PUBLISH sysstream:web1:ticks <tick>`` — the live stream, read by every hub;
* ``XADD sysstream:web1:backlog MAXLEN ~ N * tick <tick>`` — a short backlog a hub that
  starts (or reconnects) late reads into its history;
* ``ZADD sysstream:hosts <epoch> web1`` — the known hosts, scored by last tick time.

A tick is one JSON object (version 1)::

    {"v": 1, "host": "web1", "interval": 1.0, "tick": 42, "timestamp": 1762777845.12,
     "values": {"cpu": 25.5, …}, "errors": {"disk": "OSError: …"}}

:func:`decode_tick` checks every field and raises :class:`WireError` naming the first
problem, so a hub can log a malformed message and skip it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import orjson

from .._registry import GROUPS
from .._sample import Sample

__all__ = [
    "HOSTS_KEY",
    "MAX_AGE",
    "MAX_CLOCK_AHEAD",
    "MAX_INTERVAL",
    "MAX_TICK_BYTES",
    "MIN_INTERVAL",
    "TICKS_PATTERN",
    "WIRE_REASONS",
    "WIRE_VERSION",
    "Tick",
    "WireError",
    "WireReason",
    "backlog_key",
    "check_host_id",
    "check_redis_url",
    "check_timestamp",
    "decode_tick",
    "encode_tick",
    "host_of_channel",
    "redact_url",
    "ticks_channel",
]

WIRE_VERSION = 1
PREFIX = "sysstream:"
HOSTS_KEY = "sysstream:hosts"
TICKS_PATTERN = "sysstream:*:ticks"
# Every field of a tick is bounded: any process that can publish to Redis can send one
# (docs/fleet.md, "Trust"), and a hub must go on serving the hosts that tell the truth.
# A full-catalogue tick is 1–3 KB (a host with a hundred containers, ~60 KB).
MAX_TICK_BYTES = 128 * 1024
# The agent's own bounds on --interval.
MIN_INTERVAL, MAX_INTERVAL = 0.05, 3600.0
# A tick stamped further ahead of the hub's clock than this would hide the host's real
# ticks behind it (they look older); one older than the longest history is of no use.
MAX_CLOCK_AHEAD = 300.0
MAX_AGE = 7 * 86400.0
MAX_TEXT = 4096  # characters in any string: error messages, command lines, names
MAX_TICK_NUMBER = 2**53  # exact as a JSON number anywhere

# Host ids become part of Redis keys and URL paths: no ':', '/', '*', spaces or '?'.
_HOST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HOST_ID_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


# Which check a message failed: a bounded set, so that hubs can count drops by reason.
WireReason = Literal[
    "size", "json", "version", "host", "interval", "tick", "timestamp", "values", "errors"
]
WIRE_REASONS: tuple[WireReason, ...] = get_args(WireReason)


class WireError(ValueError):
    """A message on a fleet channel is not a valid tick; ``str()`` says why, in one line,
    and ``reason`` which check failed (one of :data:`WIRE_REASONS`)."""

    def __init__(self, message: str, reason: WireReason) -> None:
        super().__init__(message)
        self.reason: WireReason = reason


@dataclass(frozen=True, slots=True)
class Tick:
    """One decoded tick: which host, its sampling interval and the sample itself."""

    host: str
    interval: float
    sample: Sample


# The history store files a hub's own host under this id (sysstream.store._store.LOCAL_HOST).
RESERVED_HOST_ID = "local"


def check_host_id(host: str) -> str:
    """Return ``host`` if it is a valid host id; raise ``ValueError`` otherwise."""
    if not _HOST_ID.fullmatch(host):
        raise ValueError(f"expected a host id of {_HOST_ID_RULE}, got {host!r}")
    if host == RESERVED_HOST_ID:
        raise ValueError(f"expected a host id other than {host!r}, the hub's own host")
    return host


def check_redis_url(url: str) -> str:
    """Return ``url`` if redis-py can connect with it; raise ``ValueError`` otherwise.

    Checked without connecting, so a typo is reported at start in one line rather than as
    an endless reconnect loop.
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a non-numeric or out-of-range port
    except ValueError as exc:
        raise ValueError(f"expected a redis:// or rediss:// URL, got {shown!r} ({exc})") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {shown!r}")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"expected a socket path in the unix:// URL, got {shown!r}")
        return url
    if not parts.hostname:
        raise ValueError(f"expected a host in the Redis URL, got {shown!r}")
    if port == 0:
        raise ValueError(f"expected a port between 1 and 65535, got {shown!r}")
    database = parts.path.lstrip("/")
    if database and not database.isdigit():
        raise ValueError(f"expected a database number as the URL path, got {shown!r}")
    return url


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for logs and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@" + parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl()


def ticks_channel(host: str) -> str:
    return f"{PREFIX}{host}:ticks"


def backlog_key(host: str) -> str:
    return f"{PREFIX}{host}:backlog"


def host_of_channel(channel: str | bytes) -> str:
    """The host id in a ``sysstream:{host}:ticks`` channel name."""
    name = channel.decode(errors="replace") if isinstance(channel, bytes) else channel
    if not (name.startswith(PREFIX) and name.endswith(":ticks")):
        raise WireError(f"expected a channel sysstream:{{host}}:ticks, got {name!r}", "host")
    host = name[len(PREFIX) : -len(":ticks")]
    try:
        return check_host_id(host)
    except ValueError as exc:
        raise WireError(f"bad channel {name!r}: {exc}", "host") from None


def encode_tick(host: str, interval: float, sample: Sample) -> bytes:
    return orjson.dumps(
        {
            "v": WIRE_VERSION,
            "host": host,
            "interval": interval,
            "tick": sample.tick,
            "timestamp": sample.timestamp,
            "values": sample.values,
            "errors": sample.errors,
        }
    )


def decode_tick(data: bytes | str, *, host: str | None = None, now: float | None = None) -> Tick:
    """Parse and check one tick; ``host``, when given, is the host its channel names, and
    ``now`` the hub's clock (epoch seconds) the timestamp must be close to.

    Groups this hub does not know (an agent of a newer version) are dropped, not refused;
    a known group's value must have the shape the registry gives it (how deep it nests,
    scalars at the leaves, finite numbers, bounded strings).
    """
    if len(data) > MAX_TICK_BYTES:
        raise WireError(
            f"expected a tick of at most {MAX_TICK_BYTES} bytes, got {len(data)}", "size"
        )
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"expected a JSON object, got invalid JSON ({exc})", "json") from None
    if not isinstance(message, dict):
        raise WireError(f"expected a JSON object, got {type(message).__name__}", "json")
    version = message.get("v")
    if version != WIRE_VERSION:
        raise WireError(f"expected wire version {WIRE_VERSION}, got {_short(version)}", "version")
    sender = message.get("host")
    if not isinstance(sender, str):
        raise WireError(f"expected 'host' to be a string, got {_short(sender)}", "host")
    try:
        check_host_id(sender)
    except ValueError as exc:
        raise WireError(f"bad 'host': {exc}", "host") from None
    if host is not None and sender != host:
        raise WireError(f"expected host {host!r} on its own channel, got {sender!r}", "host")
    interval = _number(message, "interval")
    if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
        raise WireError(
            f"expected an 'interval' from {MIN_INTERVAL:g} to {MAX_INTERVAL:g} s, got {interval!r}",
            "interval",
        )
    tick = message.get("tick")
    if not isinstance(tick, int) or isinstance(tick, bool) or not 0 <= tick <= MAX_TICK_NUMBER:
        raise WireError(f"expected 'tick' to be a non-negative integer, got {_short(tick)}", "tick")
    timestamp = _number(message, "timestamp")
    if now is not None:
        check_timestamp(timestamp, now, "'timestamp'")
    values = _mapping(message, "values")
    errors = _mapping(message, "errors")
    for name, reason in errors.items():
        if not isinstance(reason, str) or len(reason) > MAX_TEXT:
            raise WireError(
                f"expected 'errors.{name[:40]}' to be a string of at most {MAX_TEXT} "
                f"characters, got {_short(reason)}",
                "errors",
            )
    for name, value in values.items():
        if name in GROUPS:
            _check_value(value, _DEPTHS[name], f"values.{name}")
    sample = Sample(
        tick=tick,
        timestamp=timestamp,
        values={name: value for name, value in values.items() if name in GROUPS},
        errors={name: reason for name, reason in errors.items() if name in GROUPS},
    )
    return Tick(host=sender, interval=interval, sample=sample)


def check_timestamp(timestamp: float, now: float, what: str = "timestamp") -> float:
    """Return ``timestamp`` if it is finite and within the window around ``now`` that a
    hub accepts (at most :data:`MAX_CLOCK_AHEAD` ahead, :data:`MAX_AGE` behind)."""
    if not math.isfinite(timestamp) or timestamp > now + MAX_CLOCK_AHEAD:
        raise WireError(
            f"expected {what} at most {MAX_CLOCK_AHEAD:g} s ahead of this hub's clock, "
            f"got {timestamp!r} ({timestamp - now:+.0f} s)",
            "timestamp",
        )
    if timestamp < now - MAX_AGE:
        raise WireError(
            f"expected {what} at most {MAX_AGE:g} s old, got {timestamp!r} "
            f"({now - timestamp:.0f} s old)",
            "timestamp",
        )
    return timestamp


def _max_depth(group: str) -> int:
    """How deep a group's value nests: its metrics' deepest wire path (``temps.*.*.high``
    is 3 below ``temps``)."""
    return max((m.path.count(".") for m in GROUPS[group].metrics), default=0)


_DEPTHS = {name: _max_depth(name) for name in GROUPS}


def _check_value(value: Any, depth: int, where: str) -> None:
    """Raise :class:`WireError` unless ``value`` nests at most ``depth`` objects or
    arrays deep with finite numbers, bounded strings, booleans or nulls at the leaves."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > 2**64:
            raise WireError(f"expected a finite number at {where}, got {_short(value)}", "values")
        return
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise WireError(
                f"expected at most {MAX_TEXT} characters at {where}, got {len(value)}", "values"
            )
        return
    if not isinstance(value, dict | list):
        raise WireError(f"expected a JSON value at {where}, got {type(value).__name__}", "values")
    if depth <= 0:
        raise WireError(
            f"expected a number, string or null at {where}, got {_short(value)}", "values"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            if len(key) > MAX_TEXT:
                raise WireError(
                    f"expected keys of at most {MAX_TEXT} characters at {where}", "values"
                )
            _check_value(item, depth - 1, f"{where}.{key[:40]!s}")
    else:
        for index, item in enumerate(value):
            _check_value(item, depth - 1, f"{where}[{index}]")


def _short(value: Any) -> str:
    """``repr(value)`` cut to a log line's worth: a message is at most one line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(message: dict[str, Any], key: Literal["interval", "timestamp"]) -> float:
    value = message.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise WireError(f"expected {key!r} to be a finite number, got {_short(value)}", key)
    return float(value)


def _mapping(message: dict[str, Any], key: Literal["values", "errors"]) -> dict[str, Any]:
    value = message.get(key)
    if not isinstance(value, dict):
        raise WireError(f"expected {key!r} to be an object, got {_short(value)}", key)
    return value
