"""``sysstream watch``'s connection: the stream, the schema and the host list over the network.

Everything here is I/O; what it means lives in :mod:`sysstream.sansio` (URLs and final
refusals in ``_endpoint``, the view in ``_watchview``). :func:`follow` keeps one stream open,
reconnecting with :class:`~sysstream.sansio.Backoff` after transient failures and raising
:class:`Refused` on a final one; every string it hands on has been through
:func:`~sysstream.sansio.printable_tree`. The full-screen app is in ``_watch_app``.
"""

from __future__ import annotations

import asyncio
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson
import websockets
from rich.console import Console
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .._registry import DEFAULT_FIELDS
from .._version import __version__
from ..sansio import (
    Backoff,
    Endpoint,
    Schema,
    WatchModel,
    printable,
    printable_tree,
    refusal_for_close,
    refusal_for_status,
)
from ._panels import snapshot

__all__ = [
    "Refused",
    "describe_failure",
    "fetch_alert_rules",
    "fetch_hosts",
    "fetch_processes",
    "fetch_schema",
    "follow",
    "once",
    "print_lines",
]

MAX_MESSAGE = 4 * 2**20  # a full-catalogue tick is ~10 KB; this bounds what a server can send
MAX_BODY = 4 * 2**20
TIMEOUT = 10.0
USER_AGENT = f"sysstream-watch/{__version__}"


class Refused(Exception):
    """The server said no in a way a retry will not change; ``str()`` is one line."""


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _get_json(url: str, token: str | None) -> tuple[int, Any]:
    """``(status, decoded body or None)``; raises ``OSError`` when nothing answered."""
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": USER_AGENT, **_headers(token)}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            status, body = response.status, response.read(MAX_BODY + 1)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        return status, None
    try:
        return status, printable_tree(orjson.loads(body))
    except orjson.JSONDecodeError:
        return status, None


def _error_text(body: Any) -> str:
    return str(body["error"])[:200] if isinstance(body, dict) and "error" in body else ""


def _handshake_detail(exc: InvalidStatus) -> str:
    """The error text of a refused handshake's body (sysstream sends the error shape)."""
    try:
        return _error_text(printable_tree(orjson.loads(exc.response.body or b"")))
    except orjson.JSONDecodeError:
        return ""


async def fetch_schema(endpoint: Endpoint, token: str | None) -> Schema:
    """The server's schema, or this package's registry when the server offers none (an
    older server, or one that is not up yet); :class:`Refused` on 401/403."""
    try:
        status, body = await asyncio.to_thread(_get_json, endpoint.schema_url, token)
    except (OSError, ValueError):
        return Schema.from_registry()
    if status in (401, 403):
        raise Refused(refusal_for_status(status, _error_text(body)))
    if status == 200:
        try:
            return Schema.from_json(body)
        except ValueError:
            pass
    return Schema.from_registry()


async def fetch_hosts(endpoint: Endpoint, token: str | None) -> list[dict[str, Any]] | None:
    """A hub's hosts (``GET /api/hosts``), or ``None`` when the server is not a hub."""
    try:
        status, body = await asyncio.to_thread(_get_json, endpoint.hosts_url, token)
    except (OSError, ValueError):
        return None
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("hosts"), list):
        return None
    return [h for h in body["hosts"] if isinstance(h, dict) and isinstance(h.get("id"), str)]


async def fetch_alert_rules(endpoint: Endpoint, token: str | None) -> Any:
    """``GET /api/alerts`` (the rules name each alert's metric, so its unit), or ``None``
    where there is none (a server without alerts, a refusal, a failure)."""
    try:
        status, body = await asyncio.to_thread(_get_json, endpoint.alerts_url, token)
    except (OSError, ValueError):
        return None
    return body if status == 200 else None


async def fetch_processes(
    endpoint: Endpoint, token: str | None, sort: str, text: str, limit: int
) -> tuple[int, list[dict[str, Any]]] | None:
    """``(matches, rows)`` of the server's full process list, or ``None`` where there is
    none (a fleet host, a server older than the route, a failure)."""
    url = endpoint.processes_url(sort, text, limit)
    if url is None:
        return None
    try:
        status, body = await asyncio.to_thread(_get_json, url, token)
    except (OSError, ValueError):
        return None
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("rows"), list):
        return None
    matched = body.get("matched")
    rows = [row for row in body["rows"] if isinstance(row, dict)]
    return (matched if isinstance(matched, int) else len(rows)), rows


async def follow(
    url: str,
    token: str | None,
    *,
    on_open: Callable[[], None],
    on_message: Callable[[Any], None],
    on_lost: Callable[[str, float], None],
    backoff: Backoff | None = None,
) -> None:
    """Stream ``url`` until cancelled, reconnecting after transient failures.

    Raises :class:`Refused` on a final one (401, 403, 404 at the handshake; close 1008 and
    the other codes of :func:`~sysstream.sansio.refusal_for_close`).
    """
    backoff = backoff or Backoff()
    while True:
        last_error = ""
        try:
            async with connect(
                url,
                additional_headers=_headers(token),
                user_agent_header=USER_AGENT,
                open_timeout=TIMEOUT,
                close_timeout=2,
                max_size=MAX_MESSAGE,
            ) as websocket:
                backoff.reset()
                on_open()
                try:
                    async for raw in websocket:
                        try:
                            message = printable_tree(orjson.loads(raw))
                        except orjson.JSONDecodeError:
                            continue
                        if isinstance(message, dict) and isinstance(message.get("error"), str):
                            last_error = message["error"][:200]
                        on_message(message)
                except ConnectionClosed:
                    pass
                code, reason = websocket.close_code, printable(websocket.close_reason or "")
            final = refusal_for_close(code, reason, last_error)
            if final is not None:
                raise Refused(final)
            lost = f"closed ({code})" if code is not None else "connection lost"
        except InvalidStatus as exc:
            status = exc.response.status_code
            final = refusal_for_status(status, _handshake_detail(exc))
            if final is not None:
                raise Refused(final) from None
            lost = f"HTTP {status}"
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            lost = describe_failure(exc)
        delay = backoff.next_delay()
        on_lost(lost, delay)
        await asyncio.sleep(delay)


def describe_failure(exc: BaseException) -> str:
    """A short reason for the status line: ``connection refused``, ``timed out``…"""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return printable(exc.strerror)[:80]
    return printable(str(exc) or type(exc).__name__)[:80]


def _line(message: dict[str, Any]) -> str:
    if "error" in message:
        return f"{message.get('timestamp', '')} error: {message['error']}"
    values = " ".join(
        f"{key}={value}" for key, value in message.items() if key not in ("timestamp", "errors")
    )
    return f"{message.get('timestamp', '')} {values}"


async def print_lines(endpoint: Endpoint, token: str | None, count: int | None) -> int:
    """The stream as one plain line per message on stdout (not a terminal): the default
    fields. ``[live]``/``[disconnected …]`` on state changes go to stderr, so what reads
    our stdout (a script, ``| head -1``) gets data lines only. Returns messages seen."""
    received = 0
    done = asyncio.Event()
    reader_gone: list[BrokenPipeError] = []

    def opened() -> None:
        print("[live]", file=sys.stderr, flush=True)

    def message(value: Any) -> None:
        nonlocal received
        if isinstance(value, dict) and "type" not in value and not done.is_set():
            received += 1
            try:
                print(_line(value), flush=True)
            except BrokenPipeError as exc:
                # Our reader left (`| head -1`). Raised from here, follow() would take it
                # for a lost connection (an OSError) and reconnect: stop, and say so below.
                reader_gone.append(exc)
                done.set()
            if count is not None and received >= count:
                done.set()

    def lost(reason: str, delay: float) -> None:
        status = f"[disconnected ({reason}); retrying in {delay:.1f} s]"
        print(status, file=sys.stderr, flush=True)

    url = endpoint.stream_url_with(list(DEFAULT_FIELDS), alerts=False)
    task = asyncio.ensure_future(
        follow(url, token, on_open=opened, on_message=message, on_lost=lost)
    )
    waiter = asyncio.ensure_future(done.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    task.cancel()
    waiter.cancel()
    if reader_gone:
        raise reader_gone[0]
    if task.done() and not task.cancelled() and (error := task.exception()) is not None:
        raise error
    return received


async def once(endpoint: Endpoint, token: str | None, console: Console) -> None:
    """Print one plain snapshot of every group and return; :class:`Refused` when the server
    refuses, ``OSError``/``TimeoutError`` when it cannot be reached."""
    schema = await fetch_schema(endpoint, token)
    model = WatchModel(schema)
    url = endpoint.stream_url_with(schema.fields)
    last_error = ""
    patience = time.monotonic() + min(6 * (schema.interval or 1.0), TIMEOUT - 2)

    def complete(message: dict[str, Any]) -> bool:
        errors = message.get("errors") or {}
        if not all(value is not None or key in errors for key, value in message.items()):
            return False
        # A process walk's first CPU figures are all 0 (no earlier walk to compare with):
        # wait for the next walk, unless the machine is that idle (then patience ends it).
        processes = message.get("processes")
        top = processes.get("top_cpu") if isinstance(processes, dict) else None
        return not top or any(row.get("cpu_percent") for row in top if isinstance(row, dict))

    try:
        async with (
            asyncio.timeout(TIMEOUT),
            connect(
                url,
                additional_headers=_headers(token),
                user_agent_header=USER_AGENT,
                open_timeout=TIMEOUT,
                max_size=MAX_MESSAGE,
            ) as websocket,
        ):
            model.connected()
            try:
                async for raw in websocket:
                    message = printable_tree(orjson.loads(raw))
                    if isinstance(message, dict) and isinstance(message.get("error"), str):
                        last_error = message["error"][:200]
                    # Slow groups (processes: every 5th tick) arrive null at first: wait
                    # for a message with every group, or print what came within the time.
                    data = model.receive(message, time.monotonic())
                    if data and (complete(message) or time.monotonic() > patience):
                        break
            except ConnectionClosed:
                pass
            if model.last_update is None:
                reason = printable(websocket.close_reason or "")
                final = refusal_for_close(websocket.close_code, reason, last_error)
                raise Refused(final or "the server closed the stream before the first sample")
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise Refused(
            refusal_for_status(status, _handshake_detail(exc)) or f"HTTP {status}"
        ) from None
    if model.rules_wanted():  # the alerts' metrics, for the units of their values
        model.take_rules(await fetch_alert_rules(endpoint, token))
    for block in snapshot(model, endpoint.shown, time.monotonic(), console.width):
        console.print(block, highlight=False, markup=False)
