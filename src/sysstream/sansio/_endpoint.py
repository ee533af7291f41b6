"""Where the terminal client connects, and which refusals are final.

``sysstream watch`` takes what a user has at hand: ``ws://host:port/api/system/metrics``, the
dashboard's ``http://host:port/``, or just ``host:port``. :func:`parse_endpoint` turns each
into one :class:`Endpoint` (stream, schema, host-list and alert URLs) or a one-line
:class:`EndpointError`. :func:`refusal_for_status` and :func:`refusal_for_close` decide
whether a failure is worth retrying: a wrong token or an unknown host will not heal.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import quote, urlencode, urlsplit

from ._wire import check_host_id

__all__ = [
    "DEFAULT_PORT",
    "Endpoint",
    "EndpointError",
    "parse_endpoint",
    "refusal_for_close",
    "refusal_for_status",
]

DEFAULT_PORT = 54112
LOCAL_STREAM = "/api/system/metrics"
_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


class EndpointError(ValueError):
    """The URL or host cannot name a sysstream stream; ``str()`` is one line."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A server (``base``: ``http://host:port``) and the stream path to watch on it."""

    base: str
    stream_path: str = LOCAL_STREAM
    host: str | None = None  # a fleet host, streamed at /api/hosts/{host}/metrics
    explicit_path: bool = False  # the user named the stream, so there is no host list to ask

    @property
    def stream_url(self) -> str:
        scheme, rest = self.base.split("://", 1)
        return ("wss" if scheme == "https" else "ws") + "://" + rest + self.stream_path

    def stream_url_with(self, fields: list[str], *, alerts: bool = True) -> str:
        """The stream URL subscribing to ``fields`` (and alert events, which servers without
        alerts ignore: unknown query parameters are not an error)."""
        query = {"fields": ",".join(fields)}
        if alerts:
            query["alerts"] = "1"
        return f"{self.stream_url}?{urlencode(query, safe=',')}"

    @property
    def schema_url(self) -> str:
        # A fleet host's stream has no schema of its own: the registry is the hub's.
        path = LOCAL_STREAM if self.host is not None else self.stream_path
        return f"{self.base}{path}/schema"

    def processes_url(self, sort: str, text: str, limit: int) -> str | None:
        """The full process list (``GET …/metrics/processes``), sorted and filtered by the
        server; ``None`` for a fleet host, whose agent sends no process table."""
        if self.host is not None:
            return None
        query = urlencode({"sort": sort, "filter": text, "limit": limit})
        return f"{self.base}{self.stream_path}/processes?{query}"

    @property
    def hosts_url(self) -> str:
        return f"{self.base}/api/hosts"

    @property
    def alerts_url(self) -> str:
        """The alert rules (``GET /api/alerts``): a fleet host's are the hub's."""
        return f"{self.base}/api/alerts"

    @property
    def shown(self) -> str:
        """What the status line calls this endpoint: ``web1 @ hub:54112`` or ``hub:54112``."""
        where = self.base.split("://", 1)[1]
        return f"{self.host} @ {where}" if self.host else where

    def for_host(self, host: str | None) -> Endpoint:
        """The same server, streaming ``host`` (``None``: the server's own machine)."""
        if host is None:
            return replace(self, stream_path=LOCAL_STREAM, host=None)
        try:
            check_host_id(host)
        except ValueError as exc:
            raise EndpointError(str(exc)) from None
        return replace(self, stream_path=f"/api/hosts/{quote(host, safe='')}/metrics", host=host)


def parse_endpoint(text: str, host: str | None = None) -> Endpoint:
    """``ws://``, ``wss://``, ``http://``, ``https://`` URLs (a URL without a port means the
    scheme's, as behind a proxy) or a bare ``host[:port]`` (port 54112 unless given); with
    ``host``, that fleet host on the given server."""
    text = text.strip()
    if not text:
        raise EndpointError("expected a URL or host:port, got ''")
    bare = "://" not in text  # host:port: sysstream's port unless given
    if bare:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise EndpointError(f"expected a URL or host:port, got {text!r} ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise EndpointError(f"expected a ws://, wss://, http:// or https:// URL, got {text!r}")
    if not parts.hostname:
        raise EndpointError(f"expected a host in the URL, got {text!r}")
    if parts.query or parts.fragment:
        raise EndpointError(
            f"expected a URL without query or fragment (use --token and --host), got {text!r}"
        )
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port is None and bare:
        port = DEFAULT_PORT
    base = f"{_SCHEMES[scheme]}://{netloc}" + (f":{port}" if port is not None else "")
    path = parts.path.rstrip("/")
    endpoint = Endpoint(base)
    if path:
        if not path.endswith("/metrics"):
            raise EndpointError(f"expected a stream path ending in /metrics, got {parts.path!r}")
        named = _host_of_path(path)
        endpoint = replace(endpoint, stream_path=path, host=named, explicit_path=True)
    if host is not None:
        if endpoint.host is not None and endpoint.host != host:
            raise EndpointError(f"expected one host, got {endpoint.host!r} and --host {host!r}")
        endpoint = replace(endpoint.for_host(host), explicit_path=True)
    return endpoint


def _host_of_path(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) == 5 and parts[:3] == ["", "api", "hosts"] and parts[4] == "metrics":
        return parts[3]
    return None


def refusal_for_status(status: int, detail: str = "") -> str | None:
    """Why an HTTP status at the handshake (or on the schema) is final, or ``None`` if a retry
    may succeed (503 server full, other 5xx, 408 and 429)."""
    if status >= 500 or status in (408, 425, 429):
        return None
    reason = {
        401: "the server wants a token (--token or SYSSTREAM_TOKEN), or this one is wrong",
        403: "refused (403): a wrong token or origin, or no such stream on this server",
        404: "not found (404): no such stream or unknown host",
    }.get(status)
    if reason is None:
        what = "not a sysstream stream" if status < 400 else "refused"
        reason = f"{what} (HTTP {status})"
    return f"{reason}: {detail}" if detail else reason


# Close codes that say "do not come back like this": 1008 policy (an invalid subscription,
# too many control messages), 1003 unsupported data, 4404 unknown host (fleet routes on a
# server without the denial-response extension), 4401/4403 (the same for tokens).
_FINAL_CLOSES = {1003: "unsupported data", 1008: "policy violation", 4401: "unauthorised",
                 4403: "forbidden", 4404: "unknown host"}  # fmt: skip


def refusal_for_close(code: int | None, reason: str = "", last_error: str = "") -> str | None:
    """Why a close code is final, or ``None`` for closes worth retrying (1001 going away,
    1006 abnormal, 1011, 1012 restart, 1013 try again later)."""
    if code not in _FINAL_CLOSES:
        return None
    why = last_error or reason or _FINAL_CLOSES[code]  # the error message says the most
    return f"closed by the server ({code}): {why}"
