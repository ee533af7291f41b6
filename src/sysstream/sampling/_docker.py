"""What the container engine says about running containers, kept current off the tick.

:class:`DockerWatcher` talks to the Docker Engine API (or Podman's Docker-compatible
service) over its Unix socket with httpx, in an event loop on a thread of its own: it
lists and inspects the running containers, then follows ``GET /events`` and re-inspects a
container when an event concerns it. Collectors read :meth:`DockerWatcher.snapshot`, a
dict that is replaced, never mutated, so a tick never waits on the daemon. When the
daemon is missing or refuses us, the snapshot carries the reason and the watcher retries
with backoff. docs/containers.md says why httpx rather than the docker SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import httpx

from ..sansio import Backoff, ContainerInfo, EventAction, LineBuffer, container_info, event_action

__all__ = ["DockerWatcher"]

log = logging.getLogger("sysstream.containers")

REQUEST_TIMEOUT = 5.0
INSPECT_CONCURRENCY = 8
MAX_CONTAINERS = 10_000  # running and stopped-but-not-removed, kept in the cache
_CONTAINER_EVENTS = json.dumps({"type": ["container"]})


class DockerApiError(Exception):
    """The daemon answered, but not as an engine does."""


class DockerWatcher:
    """Keeps :class:`ContainerInfo` for every running container of the engine at
    ``socket_path``; call :meth:`start` once and :meth:`close` at the end.

    ``configured``: the user named this socket (``--docker-host``, ``DOCKER_HOST``). An
    engine that is simply not there at the default socket is the common case (most
    machines run no Docker), so that is logged at debug level only; a configured engine
    that does not answer, a socket we may not use, or an engine that answered once and
    went away is a warning. Either way the reason reaches the stream under ``errors``.
    """

    def __init__(
        self, socket_path: str, *, configured: bool = True, backoff: Backoff | None = None
    ) -> None:
        self.socket_path = socket_path
        self.configured = configured
        self._answered = False
        self._backoff = backoff if backoff is not None else Backoff(maximum=10.0)
        self._infos: Mapping[str, ContainerInfo] = {}
        self._reason: str | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()

    def snapshot(self) -> tuple[Mapping[str, ContainerInfo], str | None]:
        """Running containers by full id, and why they may be incomplete (or ``None``)."""
        return self._infos, self._reason

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=asyncio.run, args=(self._main(),), name="sysstream-docker", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._ready.wait(REQUEST_TIMEOUT)
        if self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stopping.set)
        thread.join(REQUEST_TIMEOUT)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._ready.set()
        watch = asyncio.create_task(self._watch())
        await self._stopping.wait()
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch

    async def _watch(self) -> None:
        transport = httpx.AsyncHTTPTransport(uds=self.socket_path)
        timeout = httpx.Timeout(REQUEST_TIMEOUT)
        # The host part is not used on a Unix socket; "docker" reads well in logs.
        async with httpx.AsyncClient(
            transport=transport, base_url="http://docker", timeout=timeout
        ) as client:
            while True:
                try:
                    await self._follow(client)
                    reason = "the Docker daemon closed the event stream"
                    absent = False
                except (httpx.HTTPError, OSError, DockerApiError, ValueError) as exc:
                    reason, absent = self._describe(exc)
                if reason != self._reason:
                    quiet = absent and not self.configured and not self._answered
                    log.log(logging.DEBUG if quiet else logging.WARNING, "containers: %s", reason)
                self._reason = reason
                await asyncio.sleep(self._backoff.next_delay())

    async def _follow(self, client: httpx.AsyncClient) -> None:
        """One connection: subscribe to events first (so none is missed), then list, then
        apply events until the stream ends."""
        read_forever = httpx.Timeout(REQUEST_TIMEOUT, read=None)
        params = {"filters": _CONTAINER_EVENTS}
        async with client.stream("GET", "/events", params=params, timeout=read_forever) as events:
            _expect_ok(events, "GET /events")
            listing = await client.get("/containers/json")
            _expect_ok(listing, "GET /containers/json")
            ids = [item["Id"] for item in listing.json() if isinstance(item, dict) and "Id" in item]
            limit = asyncio.Semaphore(INSPECT_CONCURRENCY)

            async def inspect(container_id: str) -> ContainerInfo | None:
                async with limit:
                    return await self._inspect(client, container_id)

            found = await asyncio.gather(*(inspect(container_id) for container_id in ids))
            self._infos = {info.id: info for info in found if info is not None}
            self._reason = None
            self._answered = True
            self._backoff.reset()
            lines = LineBuffer()
            async for chunk in events.aiter_raw():
                for line in lines.feed(chunk):
                    await self._apply(client, json.loads(line))

    async def _apply(self, client: httpx.AsyncClient, event: Any) -> None:
        change = event_action(event) if isinstance(event, dict) else None
        if change is None:
            return
        container_id, action = change
        info = await self._inspect(client, container_id) if action == EventAction.REFRESH else None
        infos = dict(self._infos)
        # Stopped containers stay known until destroyed: a restart's cgroup keeps its name
        # in the tick between "die" and "start". Collectors show only running ones.
        if info is not None:
            infos[container_id] = info
            if len(infos) > MAX_CONTAINERS:
                del infos[next(iter(infos))]  # the longest known
        else:
            infos.pop(container_id, None)
        self._infos = infos

    async def _inspect(self, client: httpx.AsyncClient, container_id: str) -> ContainerInfo | None:
        if len(container_id) != 64 or not container_id.isalnum():
            return None  # never put a peer's text into a request path
        response = await client.get(f"/containers/{container_id}/json")
        if response.status_code == 404:
            return None  # removed since the event
        _expect_ok(response, "GET /containers/{id}/json")
        return container_info(response.json())

    def _describe(self, exc: BaseException) -> tuple[str, bool]:
        """The one-line reason, and whether it means no engine is there at all."""
        path = self.socket_path
        if not os.path.exists(path):
            return (
                f"no Docker daemon: {path} does not exist (set DOCKER_HOST or --docker-host)",
                True,
            )
        if not os.access(path, os.R_OK | os.W_OK):
            return f"no permission on {path}: run as root or as a member of its group", False
        cause = exc.__cause__ or exc.__context__ or exc
        if isinstance(cause, ConnectionRefusedError) or isinstance(exc, httpx.ConnectError):
            return f"no Docker daemon listening on {path}", True
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"Docker daemon at {path}: {text}", False


def _expect_ok(response: httpx.Response, what: str) -> None:
    if response.status_code != 200:
        raise DockerApiError(f"{what} answered HTTP {response.status_code}")
