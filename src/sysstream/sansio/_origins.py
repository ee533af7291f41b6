"""Origins with no I/O: ``--allow-origin`` patterns and the same-origin rule for browsers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["DEFAULT_PORTS", "OriginPolicy", "parse_origin_pattern"]

DEFAULT_PORTS = {"http": 80, "https": 443}
_PAGE_SCHEME = {"ws": "http", "wss": "https"}  # a WebSocket's scheme as its page's

# `*` stands for one or more whole DNS labels in the host, or any port.
_LABELS = r"[a-z0-9-]+(?:\.[a-z0-9-]+)*"
_PATTERN_SYNTAX = re.compile(
    r"(?P<scheme>https?)://(?P<host>(?:\*\.)?[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(?P<port>\d+|\*))?"
)
_HOST_AND_PORT = re.compile(r"(?P<host>\[[^\]]*\]|[^:\[\]]*)(?::(?P<port>\d{1,5}))?")


def parse_origin_pattern(entry: str) -> str:
    """Validate one ``--allow-origin`` entry; returns it normalised (lower case, no default
    port). Raises ``ValueError`` saying what was expected."""
    value = entry.strip().lower().rstrip("/")
    if value == "*":
        return value
    match = _PATTERN_SYNTAX.fullmatch(value)
    if match is None or "*" in match["host"].removeprefix("*."):
        raise ValueError(
            "expected an origin like https://example.com, a pattern like "
            f"https://*.example.com or http://localhost:*, or *, got {entry!r}"
        )
    if match["port"] == str(DEFAULT_PORTS[match["scheme"]]):
        value = value.rpartition(":")[0]
    return value


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    scheme, _, rest = pattern.partition("://")
    host, port = rest, None
    if not rest.endswith("]") and ":" in rest:
        host, _, port = rest.rpartition(":")
    host_regex = re.escape(host).replace(r"\*", _LABELS)
    if port == "*":
        port_regex = r"(?::\d+)?"
    elif port is None:
        port_regex = ""
    else:
        port_regex = ":" + port
    return re.compile(re.escape(scheme) + "://" + host_regex + port_regex)


def _normalise_origin(origin: str) -> tuple[str, str] | None:
    """``(scheme, host[:port])`` of an Origin header, default port dropped; None if invalid."""
    try:
        parts = urlsplit(origin.strip().lower())
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or parts.path or parts.query or parts.username:
        return None
    netloc = _strip_default_port(parts.netloc, parts.scheme)
    return (parts.scheme, netloc) if netloc else None


def _strip_default_port(netloc: str, scheme: str) -> str | None:
    match = _HOST_AND_PORT.fullmatch(netloc.lower())
    if match is None or not match["host"]:
        return None
    if match["port"] is None or int(match["port"]) == DEFAULT_PORTS.get(scheme):
        return match["host"]
    return f"{match['host']}:{int(match['port'])}"


class OriginPolicy:
    """Which browser origins may open the stream.

    Accepted: requests without an ``Origin`` header (scripts, CLIs: the header is a
    browser's statement, and only browsers need protecting from themselves); pages served
    from the same host and port the request is addressed to (its ``Host`` header, which a
    reverse proxy must pass through, or list the public origin with ``--allow-origin``);
    and origins matching an ``allow`` entry. Everything else, ``null`` included, is refused.
    """

    def __init__(self, allow: Iterable[str] = ()) -> None:
        patterns = [parse_origin_pattern(entry) for entry in allow]
        self.allow_any = "*" in patterns
        self._exact = frozenset(p for p in patterns if "*" not in p)
        self._patterns = [_pattern_regex(p) for p in patterns if "*" in p and p != "*"]

    def allows(self, origin: str | None, host: str | None, scheme: str | None = None) -> bool:
        """Whether a request with ``Origin: origin`` and ``Host: host`` may connect.
        ``scheme`` is the request's own (``http``/``https``, or ``ws``/``wss`` as in an
        ASGI WebSocket scope); when given, a same-origin page must have come over it too:
        ``https://host:port`` is another origin than ``http://host:port``."""
        if origin is None or self.allow_any:
            return True
        parsed = _normalise_origin(origin)
        if parsed is None:
            return False
        origin_scheme, netloc = parsed
        served = _PAGE_SCHEME.get(scheme, scheme) if scheme is not None else origin_scheme
        if (
            host is not None
            and served == origin_scheme
            and _strip_default_port(host, served) == netloc
        ):
            return True
        candidate = f"{origin_scheme}://{netloc}"
        return candidate in self._exact or any(p.fullmatch(candidate) for p in self._patterns)
