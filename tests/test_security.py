"""Who may connect: Origin policy, token, log redaction, the non-loopback warning."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.exceptions import InvalidStatus

import sysstream
from sysstream import load_settings
from sysstream._settings import SettingsError
from sysstream.sansio._origins import OriginPolicy, parse_origin_pattern
from sysstream.web._security import (
    AccessPolicy,
    TokenCheck,
    TokenRedactingFilter,
    is_loopback_host,
)

from .conftest import receive_json, ws_client

TOKEN = "t0ken-for-tests-Zq8x1V"
SYSSTREAM = [sys.executable, "-m", "sysstream"]


# The policy, sans-I/O


@pytest.mark.parametrize(
    ("origin", "host", "allow", "allowed"),
    [
        (None, "127.0.0.1:8000", [], True),  # scripts and CLIs send no Origin
        ("http://127.0.0.1:8000", "127.0.0.1:8000", [], True),  # same origin
        ("https://metrics.example.com", "metrics.example.com", [], True),  # default port
        ("https://metrics.example.com:443", "metrics.example.com", [], True),
        ("http://metrics.example.com", "metrics.example.com:80", [], True),
        ("http://[::1]:8000", "[::1]:8000", [], True),
        ("HTTP://127.0.0.1:8000", "127.0.0.1:8000", [], True),  # case-insensitive
        ("http://evil.example", "127.0.0.1:8000", [], False),
        ("http://localhost:8000", "127.0.0.1:8000", [], False),  # another origin
        ("http://127.0.0.1:8001", "127.0.0.1:8000", [], False),  # another port
        ("https://metrics.example.com", "metrics.example.com:80", [], False),
        ("null", "127.0.0.1:8000", [], False),  # sandboxed frames, file:// pages
        ("http://127.0.0.1:8000/path", "127.0.0.1:8000", [], False),  # not an origin
        ("http://evil.example", None, [], False),
        ("http://evil.example", "127.0.0.1:8000", ["http://evil.example"], True),
        ("http://evil.example:80", "127.0.0.1:8000", ["http://evil.example"], True),
        ("https://evil.example", "127.0.0.1:8000", ["http://evil.example"], False),
        ("https://a.example.com", "x", ["https://*.example.com"], True),
        ("https://a.b.example.com", "x", ["https://*.example.com"], True),
        ("https://example.com", "x", ["https://*.example.com"], False),
        ("https://evilexample.com", "x", ["https://*.example.com"], False),
        ("https://a.example.com.evil.io", "x", ["https://*.example.com"], False),
        ("http://localhost:3000", "x", ["http://localhost:*"], True),
        ("http://localhost", "x", ["http://localhost:*"], True),
        ("http://localhost.evil.io:3000", "x", ["http://localhost:*"], False),
        ("http://anything.io", "x", ["*"], True),
        ("null", "x", ["*"], True),
    ],
)
def test_origin_policy(
    origin: str | None, host: str | None, allow: list[str], allowed: bool
) -> None:
    assert OriginPolicy(allow).allows(origin, host) is allowed


@pytest.mark.parametrize(
    "entry",
    ["example.com", "ftp://example.com", "https://example.com/", "https://*", "http://a*.b"],
)
def test_bad_origin_patterns_are_refused(entry: str) -> None:
    if entry == "https://example.com/":  # a trailing slash is tolerated
        assert parse_origin_pattern(entry) == "https://example.com"
        return
    with pytest.raises(ValueError, match=r"expected an origin like .*, got"):
        parse_origin_pattern(entry)


def test_token_check() -> None:
    check = TokenCheck(TOKEN)
    assert check.matches(f"Bearer {TOKEN}", b"")
    assert check.matches(f"bearer  {TOKEN} ", b"")
    assert check.matches(None, f"fields=cpu&token={TOKEN}".encode())
    assert check.matches(None, f"token={TOKEN.replace('-', '%2D')}".encode())  # URL-encoded
    assert not check.matches(None, b"")
    assert not check.matches("Bearer wrong", f"token={TOKEN}".encode())  # the header wins
    assert not check.matches(f"Basic {TOKEN}", b"")
    assert not check.matches(None, f"token={TOKEN[:-1]}".encode())
    assert not check.matches(None, f"xtoken={TOKEN}".encode())
    assert TOKEN not in repr(check)
    with pytest.raises(ValueError, match="expected a non-empty token"):
        TokenCheck("")


def test_policy_refuses_with_the_right_status() -> None:
    policy = AccessPolicy(token=TOKEN)
    headers = {"origin": "http://evil.example", "host": "127.0.0.1:1"}
    refusal = policy.check("websocket", headers.get, f"token={TOKEN}".encode())
    assert refusal is not None and refusal.status == 403
    refusal = policy.check("websocket", {"host": "h"}.get, b"")
    assert refusal is not None and refusal.status == 401
    assert refusal.headers == {"WWW-Authenticate": "Bearer"}
    assert policy.check("http", headers.get, f"token={TOKEN}".encode()) is None  # no Origin rule
    with pytest.raises(ValueError, match="expected an 'http' or 'websocket' request, got"):
        policy.check("lifespan", headers.get, b"")


def test_redacting_filter() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s" %d',
        ("127.0.0.1:5", "GET", f"/api/x?fields=cpu&token={TOKEN}&b=1", 200), None,
    )  # fmt: skip
    assert TokenRedactingFilter().filter(record)
    assert TOKEN not in record.getMessage()
    assert "token=[redacted]&b=1" in record.getMessage()


def test_loopback_hosts() -> None:
    assert all(map(is_loopback_host, ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback_host, ["0.0.0.0", "::", "192.0.2.1", "example.com"]))


# Settings


def test_token_is_never_shown() -> None:
    settings = load_settings(token=TOKEN)
    assert TOKEN not in repr(settings) and TOKEN not in str(settings)
    with pytest.raises(SettingsError) as raised:
        load_settings(token="short secret")
    assert "short secret" not in str(raised.value)
    assert str(raised.value).startswith("invalid --token / SYSSTREAM_TOKEN: expected at least 16")


def test_list_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSSTREAM_ALLOW_ORIGIN", "https://a.example, http://b.example:8080")
    monkeypatch.setenv("SYSSTREAM_FORWARDED_ALLOW_IPS", '["10.0.0.0/8", "192.0.2.7"]')
    settings = load_settings()
    assert settings.allow_origin == ["https://a.example", "http://b.example:8080"]
    assert settings.forwarded_allow_ips == ["10.0.0.0/8", "192.0.2.7"]
    monkeypatch.setenv("SYSSTREAM_ALLOW_ORIGIN", "[not json")
    with pytest.raises(SettingsError, match=r"^invalid --allow-origin .*JSON list or comma"):
        load_settings()
    monkeypatch.setenv("SYSSTREAM_ALLOW_ORIGIN", "https://ok.example,gopher://x")
    with pytest.raises(SettingsError, match=r"got 'gopher://x'$"):
        load_settings()


# Against a real server


async def ws_status(url: str, **kwargs: Any) -> int:
    """101 when the stream opened and delivered a message, else the refusal's HTTP status."""
    try:
        async with ws_client(url, **kwargs) as websocket:
            await receive_json(websocket)
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


@pytest.mark.parametrize(
    ("origin", "host", "scheme", "allowed"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "ws", True),
        ("https://127.0.0.1:8000", "127.0.0.1:8000", "ws", False),  # another scheme
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "wss", False),
        ("https://metrics.example.com", "metrics.example.com", "wss", True),  # port 443
        ("https://metrics.example.com", "metrics.example.com", "https", True),
        ("http://metrics.example.com", "metrics.example.com", "wss", False),
        ("https://metrics.example.com", "metrics.example.com", None, True),  # not known
    ],
)
def test_same_origin_compares_the_scheme(
    origin: str, host: str, scheme: str | None, allowed: bool
) -> None:
    assert OriginPolicy().allows(origin, host, scheme) is allowed


async def test_a_page_over_another_scheme_is_another_origin(server_factory: Any) -> None:
    server = server_factory(interval=0.1)
    url, where = server.ws_url(), f"127.0.0.1:{server.port}"
    assert await ws_status(url, origin=f"http://{where}") == 101
    assert await ws_status(url, origin=f"https://{where}") == 403
    # Behind a TLS proxy (a trusted address, 127.0.0.1 by default) that says so:
    https = {"X-Forwarded-Proto": "https"}
    assert await ws_status(url, origin=f"https://{where}", additional_headers=https) == 101
    assert await ws_status(url, origin=f"http://{where}", additional_headers=https) == 403


async def test_cross_origin_pages_are_refused(server_factory: Any) -> None:
    server = server_factory(interval=0.1, allow_origin=("https://*.trusted.example",))
    url, same = server.ws_url(), f"http://127.0.0.1:{server.port}"
    assert await ws_status(url) == 101
    assert await ws_status(url, origin=same) == 101
    assert await ws_status(url, origin="https://dash.trusted.example") == 101
    assert await ws_status(url, origin="http://evil.example") == 403
    assert await ws_status(url, origin=f"http://localhost:{server.port}") == 403
    assert await ws_status(url, origin="null") == 403
    assert server.log.errors() == []


async def test_token_guards_everything_but_health_and_dashboard(server_factory: Any) -> None:
    server = server_factory(interval=0.1, token=TOKEN)
    url = server.ws_url()
    assert await ws_status(url) == 401
    assert await ws_status(url + "?token=wrong-token-000000000") == 401
    assert await ws_status(f"{url}?fields=cpu&token={TOKEN}") == 101
    assert await ws_status(url, additional_headers={"Authorization": f"Bearer {TOKEN}"}) == 101
    # A bad origin is refused even with the token.
    assert await ws_status(f"{url}?token={TOKEN}", origin="http://evil.example") == 403
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
        for path in ("/api/system/metrics", "/api/system/metrics/schema", "/metrics"):
            refused = await http.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"] == "Bearer"
            assert refused.json()["error"] == "a valid token is required"
            assert (await http.get(path, params={"token": TOKEN})).status_code == 200, path
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            assert (await http.get(path, headers=bearer)).status_code == 200, path
        for path in ("/openapi.json", "/api/docs"):
            assert (await http.get(path)).status_code == 401, path
        assert (await http.get("/healthz")).status_code == 200
        # The dashboard page is public (it holds no data) and asks for the token itself.
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<dialog id="token-dialog">' in page.text
        assert "Access token required" in page.text
    assert server.log.errors() == []


async def test_token_never_reaches_the_logs(server_factory: Any) -> None:
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(self.format(record))

    handler = Collect()
    loggers = [logging.getLogger(name) for name in ("uvicorn.access", "uvicorn.error")]
    server = server_factory(interval=0.1, token=TOKEN, log_level="info")
    for logger in loggers:
        logger.addHandler(handler)
    try:
        assert await ws_status(f"{server.ws_url()}?token={TOKEN}") == 101
        assert await ws_status(f"{server.ws_url()}?token={TOKEN}x") == 401
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
            await http.get("/api/system/metrics", params={"token": TOKEN})
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    assert any("token=[redacted]" in line for line in seen), seen
    assert not any(TOKEN in line for line in seen), seen


@pytest.mark.parametrize("level", ["info", "debug", "trace"])
async def test_no_credential_reaches_the_logs_at_any_level(level: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *SYSSTREAM, "serve", "--port", "0", "--interval", "0.2", "--log-level", level,
        env={**os.environ, "SYSSTREAM_TOKEN": TOKEN}, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    log: list[str] = []
    try:
        port = 0
        async with asyncio.timeout(20):
            while not port or "startup complete" not in log[-1]:
                log.append((await process.stderr.readline()).decode())
                assert log[-1], "server exited"
                if match := re.search(r"serving on http://127\.0\.0\.1:(\d+)", log[-1]):
                    port = int(match[1])
        url = f"ws://127.0.0.1:{port}/api/system/metrics"
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with ws_client(url, additional_headers=bearer) as websocket:
            await receive_json(websocket)
        async with ws_client(f"{url}?a=token&%74oken={TOKEN}") as websocket:  # encoded name
            await receive_json(websocket)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            assert (
                await http.get(f"/api/system/metrics/schema?tok%65n={TOKEN}")
            ).status_code == 200
            assert (await http.get("/api/system/metrics/schema", headers=bearer)).status_code == 200
        process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(process.communicate(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = "".join(log) + rest.decode()
    assert TOKEN not in text and TOKEN[:12] not in text, [
        line for line in text.splitlines() if TOKEN[:12] in line
    ]
    assert "[redacted]" in text
    if level != "info":
        assert re.search(r"authorization['\"]?\s*[:,]\s*b?['\"]?\[redacted\]", text, re.I)


def test_redaction_of_every_rendering() -> None:
    redactor = TokenRedactingFilter(TOKEN)
    for text, expected in [
        (f"GET /x?a=token&%74oken={TOKEN}&b=1", "GET /x?a=token&%74oken=[redacted]&b=1"),
        ("GET /x?TOKEN=wrong-but-secret", "GET /x?TOKEN=[redacted]"),
        ("< authorization: Bearer other", "< authorization: [redacted]"),
        ("(b'authorization', b'Basic dXNlcg==')", "(b'authorization', b'[redacted]')"),
        (f"path {TOKEN.replace('-', '%2D')}", "path [redacted]"),
    ]:
        assert redactor.redact(text) == expected, text


class StripDenialExtension:
    """An ASGI server without the denial-response extension, as some servers are."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope["extensions"].pop("websocket.http.response", None)
        await self.app(scope, receive, send)


@pytest.mark.parametrize("ws_protocol", [None, "websockets-sansio"])
async def test_embedded_router_enforces_the_same_rules(
    server_factory: Any, ws_protocol: str | None
) -> None:
    settings = load_settings(interval=0.1, token=TOKEN)
    app = FastAPI()  # an app of the user's: no sysstream middleware
    app.include_router(sysstream.router(settings), prefix="/sys")
    server = server_factory(app, ws_protocol=ws_protocol, interval=0.1)
    url = server.ws_url("/sys/metrics")
    assert await ws_status(url) == 401
    assert await ws_status(f"{url}?token={TOKEN}", origin="http://evil.example") == 403
    assert await ws_status(f"{url}?token={TOKEN}") == 101
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
        assert (await http.get("/sys/metrics")).status_code == 401
        assert (await http.get("/sys/metrics", params={"token": TOKEN})).status_code == 200
    if ws_protocol is None:  # uvicorn's sans-I/O protocol logs refusals: uvicorn#3138
        assert server.log.errors() == []


async def test_servers_without_denial_responses_still_refuse(server_factory: Any) -> None:
    settings = load_settings(interval=0.1, token=TOKEN)
    inner = FastAPI()
    inner.include_router(sysstream.router(settings), prefix="/sys")
    server = server_factory(StripDenialExtension(inner), interval=0.1)  # type: ignore[arg-type]
    url = server.ws_url("/sys/metrics")
    # Closing before the handshake is the portable refusal: servers send it as HTTP 403.
    assert await ws_status(url) == 403
    assert await ws_status(f"{url}?token={TOKEN}") == 101


# The command line


def test_repeated_allow_origin_flag_and_bad_values() -> None:
    bad = subprocess.run(
        [*SYSSTREAM, "serve", "--port", "0", "--allow-origin", "https://ok.example",
         "--allow-origin", "nope"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "sysstream: invalid --allow-origin / SYSSTREAM_ALLOW_ORIGIN: expected an origin like "
        "https://example.com, a pattern like https://*.example.com or http://localhost:*, "
        "or *, got 'nope'"
    ]


async def start_serve(*args: str) -> tuple[asyncio.subprocess.Process, int, list[str]]:
    """``sysstream serve`` on a free port; returns the process, its port and its first lines."""
    process = await asyncio.create_subprocess_exec(
        *SYSSTREAM, "serve", "--port", "0", "--log-level", "info", *args,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    lines: list[str] = []
    port = 0
    async with asyncio.timeout(15):
        while True:
            line = (await process.stderr.readline()).decode()
            assert line, f"server exited early: {lines}"
            lines.append(line.rstrip())
            if match := re.search(r"serving on http://[^:]+:(\d+)", line):
                port = int(match[1])
            if "Application startup complete" in line:
                return process, port, lines


async def stop_serve(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 10) == 0


async def test_cli_origins_and_the_non_loopback_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYSSTREAM_TOKEN", raising=False)
    process, port, lines = await start_serve(
        "--host", "0.0.0.0", "--allow-origin", "https://a.example",
        "--allow-origin", "https://b.example",
    )  # fmt: skip
    try:
        warnings = [line for line in lines if "with no token" in line]
        assert len(warnings) == 1 and warnings[0].startswith("WARNING:"), lines
        url = f"ws://127.0.0.1:{port}/api/system/metrics"
        assert await ws_status(url, origin="https://a.example") == 101
        assert await ws_status(url, origin="https://b.example") == 101
        assert await ws_status(url, origin="https://c.example") == 403
    finally:
        await stop_serve(process)
    monkeypatch.setenv("SYSSTREAM_TOKEN", TOKEN)
    process, port, lines = await start_serve("--host", "0.0.0.0")
    try:
        assert not [line for line in lines if "with no token" in line], lines
        assert not [line for line in lines if TOKEN in line]
        assert await ws_status(f"ws://127.0.0.1:{port}/api/system/metrics") == 401, lines
    finally:
        await stop_serve(process)


async def test_loopback_needs_no_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYSSTREAM_TOKEN", raising=False)
    process, _port, lines = await start_serve()
    try:
        assert not [line for line in lines if "WARNING" in line], lines
    finally:
        await stop_serve(process)
