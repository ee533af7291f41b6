"""Running the app on uvicorn with sysstream's WebSocket protocol (``sysstream serve``)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket

import uvicorn
from fastapi import FastAPI

from .._settings import Settings
from ..stream import WebSocketProtocol
from ._app import create_app
from ._http import HttpLimits, HttpProtocol
from ._limits import (
    connection_backstop,
    default_max_clients,
    raise_open_files_limit,
    release_large_blocks,
)
from ._security import install_log_redaction, is_loopback_host

__all__ = ["ServeError", "Server", "bind_socket", "build_server", "run_server"]

logger = logging.getLogger("sysstream")

LISTEN_BACKLOG = 4096
GRACEFUL_SHUTDOWN = 2  # seconds open requests and streams get to finish on SIGTERM
# Past this, connections still open are aborted so that shutdown goes on to the app's own
# (hub, store); uvicorn would otherwise wait for each of them without end.
SHUTDOWN_DEADLINE = GRACEFUL_SHUTDOWN + 1.0


class ServeError(OSError):
    """The server could not start (address in use, permission denied); one-line message."""


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before uvicorn starts, so the real port is known when ``port`` is 0."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    # Listening now, not when uvicorn starts serving (after the app's startup): a client
    # that connects as soon as the address is announced is queued, not refused.
    sock.listen(LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


class Server(uvicorn.Server):
    """uvicorn's server with a deadline on shutdown: a connection whose client stopped
    reading would otherwise keep a closing transport, and the process, alive forever."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        deadline = asyncio.get_running_loop().call_later(SHUTDOWN_DEADLINE, self.abort_connections)
        try:
            await super().shutdown(sockets)
        finally:
            deadline.cancel()

    def abort_connections(self) -> None:
        for connection in list(self.server_state.connections):
            connection.transport.abort()


def build_server(settings: Settings, app: FastAPI | None = None) -> Server:
    """A uvicorn server for ``app`` with the fast-path protocol and sysstream's limits."""
    # Keepalive pings catch clients that stopped reading while their kernel buffers still
    # absorb the ~100-byte ticks: unanswered within the stall timeout, the client is
    # aborted. Pings are not free (at 10,000 clients, every 5 s costs ~40% of the fan-out's
    # CPU: docs/benchmarks.md), so they go every --ping-interval, 20 s as in uvicorn.
    # Past this many connections of any kind, a new one evicts the oldest still sending
    # its request, or gets 503: the descriptors left are the reserve sampling, the store,
    # logs and /healthz work with (accept() failing with EMFILE would hang clients).
    most_connections = connection_backstop()
    limits = HttpLimits(
        request_timeout=settings.request_timeout,
        write_timeout=settings.stall_timeout,
        max_connections=most_connections,
    )
    config = uvicorn.Config(
        app if app is not None else create_app(settings),
        http=HttpProtocol.configured(limits),
        ws=WebSocketProtocol,
        # Per-message deflate costs more CPU and ~50 KB per connection than it saves on
        # ~100-byte messages: refused (docs/benchmarks.md).
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ping_interval,
        ws_ping_timeout=settings.stall_timeout,
        ws_max_size=4096,
        log_level=settings.log_level,
        lifespan="on",
        backlog=LISTEN_BACKLOG,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        proxy_headers=settings.proxy_headers,
        forwarded_allow_ips=list(settings.forwarded_allow_ips),
        # No limit_concurrency: the protocol's cap bounds connections (evicting slow ones
        # first), and requests run at most one per connection. uvicorn's own check counts
        # connections already aborted and would answer 503 while descriptors are free.
    )
    # After uvicorn's logging setup, which creates the handlers: no credential reaches a log.
    token = settings.token.get_secret_value() if settings.token is not None else None
    install_log_redaction(token)
    return Server(config)


def run_server(settings: Settings, app: FastAPI | None = None) -> None:
    """Bind, announce the address and serve until SIGINT/SIGTERM."""
    # From here on a stop signal ends the server gracefully, whenever it comes: before
    # uvicorn takes over the signals (while the app is built) it stops the server once
    # started; after uvicorn's graceful shutdown (it re-raises the signal) it is a success.
    stop = _StopRequest()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _serve(settings, app, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve(settings: Settings, app: FastAPI | None, stop: _StopRequest) -> None:
    open_files = raise_open_files_limit()  # before the app sizes --max-clients from it
    release_large_blocks()  # what slow readers made us hold goes back once they are gone
    if settings.max_clients is not None and settings.max_clients > default_max_clients(open_files):
        logger.warning(
            "--max-clients %d exceeds what the open-files limit (%d) leaves room for; "
            "connections past ~%d will be refused with 503",
            settings.max_clients,
            open_files,
            default_max_clients(open_files),
        )
    if settings.token is None and not is_loopback_host(settings.host):
        logger.warning(
            "listening on %s with no token: anyone who can reach this port can read this "
            "machine's metrics. Set SYSSTREAM_TOKEN (or --token), or bind 127.0.0.1",
            settings.host,
        )
    sock = bind_socket(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    server = build_server(settings, app)
    shown = f"[{host}]" if ":" in host else host
    logger.info("sysstream serving on http://%s:%d (stream at /api/system/metrics)", shown, port)
    stop.server = server
    if stop.requested:
        sock.close()
        return
    # Modules, the app and the registry live as long as the process: left out of every
    # collection, a full one over 10,000 connections' objects takes ~20% less time.
    gc.freeze()
    server.run(sockets=[sock])


class _StopRequest:
    """Stands in for SIGINT/SIGTERM's default action around uvicorn's own handlers.

    uvicorn re-raises the stop signal after its graceful shutdown, so the process would
    die "killed by SIGTERM"; a shutdown that completed is a success: exit status 0.
    """

    def __init__(self) -> None:
        self.requested = False
        self.server: uvicorn.Server | None = None

    def __call__(self, signum: int, frame: object) -> None:
        self.requested = True
        if self.server is not None:
            self.server.should_exit = True  # uvicorn checks it once started
