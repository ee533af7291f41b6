"""Shared fixtures: a real uvicorn server on port 0 in its own thread and event loop."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from sysstream import create_app, load_settings
from sysstream._settings import Settings
from sysstream.web._server import Server, bind_socket, build_server

START_TIMEOUT = 10.0

# No test writes history to the user's data directory: servers built here and `sysstream
# serve` subprocesses inherit this; tests of the store pass no_store=False and a tmp dir.
os.environ.setdefault("SYSSTREAM_NO_STORE", "1")

# Hypothesis profiles (docs/testing.md). "dev": new random examples every run. "ci" (chosen
# when CI=true): the same examples every run, so a red CI run is the code's fault, not the
# draw's. "fuzz": a long randomized search, run by hand with
# `SYSSTREAM_HYPOTHESIS=fuzz pytest tests/test_faults.py tests/test_store_rollup.py`
# (or `pytest --hypothesis-profile fuzz ...`).
hypothesis_settings.register_profile("dev", deadline=None)
hypothesis_settings.register_profile(
    "ci", deadline=None, derandomize=True, database=None, print_blob=True
)
hypothesis_settings.register_profile(
    "fuzz",
    deadline=None,
    max_examples=2000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
hypothesis_settings.load_profile(
    os.environ.get("SYSSTREAM_HYPOTHESIS")
    or ("ci" if os.environ.get("CI", "").lower() in ("true", "1") else "dev")
)


class _Server(Server):
    """uvicorn's server with a start event, so fixtures await readiness instead of polling."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self.ready.set()


class _ErrorLog(logging.Handler):
    """Collects WARNING-and-above records from the server's loggers."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def errors(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= logging.ERROR]


@dataclass
class RunningServer:
    app: FastAPI
    settings: Settings
    server: uvicorn.Server
    port: int
    log: _ErrorLog
    thread: threading.Thread = field(repr=False)
    loop: asyncio.AbstractEventLoop | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str = "/api/system/metrics") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    @property
    def hub(self) -> Any:
        return self.app.state.hub

    def call(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` on the server's loop and wait for its result."""
        assert self.loop is not None

        async def run() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=5)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Poll a server-side condition from the test's loop, on the server's loop."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not await asyncio.to_thread(self.call, predicate):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("server condition not reached")
            await asyncio.sleep(0.02)


def start_server(
    app: FastAPI | None = None,
    *,
    ws_protocol: Any = None,
    uvicorn_options: dict[str, Any] | None = None,
    send_buffer: int | None = None,
    **overrides: Any,
) -> RunningServer:
    overrides.setdefault("port", 0)
    settings = load_settings(**overrides)
    app = app if app is not None else create_app(settings)
    sock = bind_socket("127.0.0.1", settings.port)  # port=N: a restart on the same port
    if send_buffer is not None:
        # Accepted sockets inherit it: the kernel stops taking a stalled client's bytes after
        # a few KB instead of the megabytes loopback autotuning allows, so back-pressure
        # reaches the server's own buffers within seconds.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    config = build_server(settings, app).config
    if ws_protocol is not None:
        config.ws = ws_protocol  # e.g. uvicorn's stock protocol, to test the portable path
    for name, value in (uvicorn_options or {}).items():  # e.g. ws_ping_timeout, as a user sets it
        if not hasattr(config, name):
            raise AttributeError(f"expected a uvicorn.Config attribute, got {name!r}")
        setattr(config, name, value)
    server = _Server(config)
    log = _ErrorLog()
    for name in ("uvicorn", "uvicorn.error", "sysstream"):
        logging.getLogger(name).addHandler(log)
    running = RunningServer(app, settings, server, sock.getsockname()[1], log, thread=None)  # type: ignore[arg-type]

    def serve() -> None:
        loop = asyncio.new_event_loop()
        running.loop = loop
        try:
            loop.run_until_complete(server.serve(sockets=[sock]))
        finally:
            loop.close()

    running.thread = threading.Thread(target=serve, name="uvicorn-test", daemon=True)
    running.thread.start()
    if not server.ready.wait(START_TIMEOUT):
        raise TimeoutError("server did not start")
    return running


def stop_server(running: RunningServer) -> None:
    running.server.should_exit = True
    running.thread.join(timeout=15)
    for name in ("uvicorn", "uvicorn.error", "sysstream"):
        logging.getLogger(name).removeHandler(running.log)


@pytest.fixture
def server_factory() -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def factory(app: FastAPI | None = None, **overrides: Any) -> RunningServer:
        running = start_server(app, **overrides)  # ws_protocol=, uvicorn_options= pass through
        started.append(running)
        return running

    yield factory
    for running in started:
        stop_server(running)


@pytest.fixture
def server(server_factory: Callable[..., RunningServer]) -> RunningServer:
    return server_factory(interval=0.2)


@asynccontextmanager
async def ws_client(url: str, **kwargs: Any) -> AsyncIterator[Any]:
    from websockets.asyncio.client import connect

    async with connect(url, open_timeout=10, close_timeout=5, **kwargs) as websocket:
        yield websocket


async def receive_json(websocket: Any, timeout: float = 5.0) -> Any:
    import orjson

    return orjson.loads(await asyncio.wait_for(websocket.recv(), timeout))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Any]:
    """One real redis-server for the session (tests/redis_server.py), killed at the end."""
    from .redis_server import RedisServer

    server = RedisServer()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def redis_url(redis_server: Any) -> str:
    """The session's Redis, running and empty, for one test."""
    if redis_server.process.poll() is not None:  # a fault test killed it
        redis_server.start()
    with redis_server.client() as client:
        client.flushall()
    return str(redis_server.url)


@pytest.fixture(scope="session")
def docker_daemon() -> Iterator[Any]:
    """The tests' own dockerd (tests/docker_daemon.py), stopped at the end; skips with the
    reason only where this machine cannot run one."""
    from .docker_daemon import DockerDaemon, DockerUnavailable

    try:
        daemon = DockerDaemon()
        daemon.start()
    except DockerUnavailable as exc:
        pytest.skip(str(exc))
    yield daemon
    daemon.stop()


@pytest.fixture
def docker(docker_daemon: Any) -> Iterator[Any]:
    """The session's dockerd with no container, for one test."""
    docker_daemon.remove_all()
    yield docker_daemon
    docker_daemon.remove_all()
