"""Who may connect: the WebSocket Origin policy, the optional bearer token, log redaction.

The decisions are sans-I/O (:class:`AccessPolicy` is fed a request's kind, headers and query
string and answers with a :class:`Refusal` or ``None``); two thin adapters apply the same
policy, so the standalone app and an embedding app refuse exactly the same requests:

* :class:`AccessMiddleware`, a pure ASGI middleware that ``create_app`` installs in front of
  everything (the embedded router is not the only thing it serves);
* :meth:`AccessPolicy.dependency`, a FastAPI dependency that ``sysstream.router()`` puts on
  its own routes, because an app that embeds the router gets no middleware from us.

A browser page from another origin is refused at the WebSocket handshake with HTTP 403
(cross-site WebSocket hijacking: browsers attach no CORS protection to WebSockets). A
missing or wrong token gets HTTP 401. See docs/security.md for the threat model.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import HTTPException
from fastapi.responses import Response
from starlette.exceptions import WebSocketException
from starlette.requests import HTTPConnection
from starlette.status import WS_1008_POLICY_VIOLATION
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from ..sansio import OriginPolicy, encode_error

__all__ = [
    "DENIAL_EXTENSION",
    "AccessMiddleware",
    "AccessPolicy",
    "Refusal",
    "TokenCheck",
    "TokenRedactingFilter",
    "deny_websocket",
    "install_log_redaction",
    "is_loopback_host",
]

DENIAL_EXTENSION = "websocket.http.response"  # ASGI: HTTP responses instead of a handshake
TOKEN_PARAMETER = "token"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused, as the HTTP status it is refused with."""

    status: int  # 401: no or wrong token; 403: origin not allowed
    reason: str

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"} if self.status == 401 else {}

    def response(self) -> Response:
        """The refusal in the error shape every sysstream error takes."""
        body = encode_error(self.reason)
        return Response(body, self.status, self.headers, media_type="application/json")


# Token


class TokenCheck:
    """The bearer token: ``Authorization: Bearer <token>`` or ``?token=<token>``.

    The query form exists because browsers cannot set headers on a WebSocket handshake.
    Comparison is constant-time, so response timing does not reveal a prefix of the token.
    """

    __slots__ = ("_expected",)

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("expected a non-empty token, got ''")
        self._expected = token.encode()

    def __repr__(self) -> str:
        return "TokenCheck(token='**********')"

    def matches(self, authorization: str | None, query_string: bytes) -> bool:
        offered = _bearer(authorization)
        if offered is None:
            offered = _query_token(query_string)
        if offered is None:
            return False
        return hmac.compare_digest(offered.encode(), self._expected)


def _bearer(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def _query_token(query_string: bytes) -> str | None:
    query = query_string.decode("latin-1")
    if TOKEN_PARAMETER not in query.lower() and "%" not in query:  # names may be encoded
        return None
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == TOKEN_PARAMETER:
            return value
    return None


# The policy


class AccessPolicy:
    """Origin and token rules for one app. ``check`` is the single decision both adapters use."""

    def __init__(self, *, allow_origins: Sequence[str] = (), token: str | None = None) -> None:
        self.origins = OriginPolicy(allow_origins)
        self.token = TokenCheck(token) if token else None

    def check(
        self,
        kind: str,
        headers: Callable[[str], str | None],
        query_string: bytes,
        scheme: str | None = None,
    ) -> Refusal | None:
        """Decide on one request. ``kind`` is the ASGI scope type; ``headers(name)`` looks up
        a header by lower-case name; ``scheme`` is the scope's (``ws``, ``wss``…), which
        uvicorn takes from ``X-Forwarded-Proto`` when a trusted proxy sends it."""
        if kind not in ("http", "websocket"):
            raise ValueError(f"expected an 'http' or 'websocket' request, got {kind!r}")
        if kind == "websocket" and not self.origins.allows(
            headers("origin"), headers("host"), scheme
        ):
            return Refusal(403, f"origin {headers('origin')!r} is not allowed")
        if self.token is not None and not self.token.matches(
            headers("authorization"), query_string
        ):
            return Refusal(401, "a valid token is required")
        return None

    def check_scope(self, scope: Scope) -> Refusal | None:
        return self.check(
            scope["type"],
            _header_lookup(scope),
            scope.get("query_string", b""),
            scope.get("scheme"),
        )

    async def dependency(self, connection: HTTPConnection) -> None:
        """FastAPI dependency for the router's routes (HTTP and WebSocket alike).

        An HTTP request is refused with an ``HTTPException``; a WebSocket handshake with the
        same status when the server offers ASGI's denial-response extension (uvicorn does),
        else with close code 1008, which servers send as HTTP 403 before the handshake.
        """
        refusal = self.check_scope(connection.scope)
        if refusal is None:
            return
        websocket = connection.scope["type"] == "websocket"
        if websocket and DENIAL_EXTENSION not in connection.scope.get("extensions", {}):
            raise WebSocketException(WS_1008_POLICY_VIOLATION, refusal.reason)
        raise HTTPException(refusal.status, refusal.reason, refusal.headers)


def _header_lookup(scope: Scope) -> Callable[[str], str | None]:
    raw: list[tuple[bytes, bytes]] = scope.get("headers", [])

    def lookup(name: str) -> str | None:
        wanted = name.encode()
        for key, value in raw:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    return lookup


class AccessMiddleware:
    """Applies an :class:`AccessPolicy` to every WebSocket and to the protected HTTP paths.

    Public: ``/healthz`` (probes carry no secrets) and the dashboard's static files (the
    page holds no data; it asks for the token itself). Protected: every WebSocket, and HTTP
    requests under ``protected_prefixes``.
    """

    def __init__(
        self,
        app: ASGIApp,
        policy: AccessPolicy,
        protected_prefixes: Sequence[str] = ("/api/", "/metrics", "/openapi.json"),
    ) -> None:
        self.app = app
        self.policy = policy
        self.protected_prefixes = tuple(protected_prefixes)

    def protects(self, scope: Scope) -> bool:
        if scope["type"] == "websocket":
            return True
        return scope["type"] == "http" and str(scope["path"]).startswith(self.protected_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.protects(scope):
            await self.app(scope, receive, send)
            return
        refusal = self.policy.check_scope(scope)
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http" or DENIAL_EXTENSION in scope.get("extensions", {}):
            # Starlette sends a Response on a WebSocket scope as a denial response.
            await refusal.response()(scope, receive, send)
        else:
            await send({"type": "websocket.close", "code": WS_1008_POLICY_VIOLATION})


# Logs


class TokenRedactingFilter(logging.Filter):
    """Removes credentials from log records, whatever the level and wherever they appear.

    uvicorn's access log and WebSocket lines print the request target (``?token=…``, the
    only way a browser can send a token on a WebSocket); at ``debug`` the websockets
    library prints the handshake's headers (``authorization: Bearer …``); at ``trace``
    uvicorn prints the ASGI scope (query string and headers). Redacted: the value of every
    query parameter whose name decodes to ``token`` (``%74oken=`` authenticates too), the
    credentials of every ``authorization`` header however it is rendered, and the
    configured token itself, raw or percent-encoded, anywhere in the message.
    """

    _QUERY = re.compile(
        r"((?:^|[?&;\s'\"])(?:t|%74)(?:o|%6f)(?:k|%6b)(?:e|%65)(?:n|%6e)=)[^&;\s\"']*",
        re.IGNORECASE,
    )
    # `authorization: Bearer x` (header dumps) and `(b'authorization', b'Bearer x')` (scopes)
    _AUTHORIZATION = re.compile(
        r"(authorization['\"]?\s*[:,=]\s*(?:b?['\"])?)[^'\"\r\n,)]+", re.IGNORECASE
    )
    _HINTS = ("token", "%74", "authorization")

    def __init__(self, secret: str | None = None) -> None:
        super().__init__()
        # Each character as itself or percent-encoded (``%2D`` for ``-`` is as good as ``-``).
        self._secret = (
            re.compile("".join(f"(?:{re.escape(c)}|%{ord(c):02x})" for c in secret), re.I)
            if secret
            else None
        )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        lowered = message.lower()
        if any(hint in lowered for hint in self._HINTS) or (
            self._secret is not None and self._secret.search(message)
        ):
            record.msg, record.args = self.redact(message), None
        return True

    def redact(self, text: str) -> str:
        if self._secret is not None:
            text = self._secret.sub("[redacted]", text)
        text = self._QUERY.sub(r"\1[redacted]", text)
        return self._AUTHORIZATION.sub(r"\1[redacted]", text)


REDACTED_LOGGERS = ("uvicorn", "uvicorn.access", "uvicorn.error", "uvicorn.asgi", "sysstream")


def install_log_redaction(
    secret: str | None = None, names: Iterable[str] = REDACTED_LOGGERS
) -> None:
    """Attach a :class:`TokenRedactingFilter` to each named logger and to its handlers,
    once: a logger's filters do not see records its children propagate to its handlers."""
    redactor = TokenRedactingFilter(secret)
    for name in names:
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            for old in [f for f in target.filters if isinstance(f, TokenRedactingFilter)]:
                target.removeFilter(old)
            target.addFilter(redactor)


def is_loopback_host(host: str) -> bool:
    """Whether binding ``host`` only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def deny_websocket(websocket: WebSocket, refusal: Refusal, *, close_code: int) -> None:
    """Refuse a WebSocket handshake with ``refusal``'s HTTP status where the server offers
    ASGI's denial-response extension; elsewhere accept and close with ``close_code``."""
    if DENIAL_EXTENSION in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(refusal.response())
    else:
        await websocket.accept()
        await websocket.close(close_code, refusal.reason)
