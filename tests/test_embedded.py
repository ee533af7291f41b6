"""The README's way of embedding sysstream, run as written: ``uvicorn app:app --ws …`` in a
subprocess against a small app with the router and a user route of its own."""

from __future__ import annotations

import asyncio
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.exceptions import ConnectionClosed

import sysstream

from .conftest import receive_json, ws_client

ROOT = Path(__file__).resolve().parent.parent
# Generous: the suite runs on shared, loaded machines; these bound waits, not speed.
WAIT = 30.0
TOKEN = "s3cret-token-0123456789"
STARTED = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")

ECHO_ROUTE = '''

from fastapi import WebSocket


@app.websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    """Echoes every message; "bye" makes the app close with its own code and reason."""
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text == "bye":
            await websocket.close(4321, "goodbye from the app")
            return
        if text is not None:
            await websocket.send_text(text)
        else:
            await websocket.send_bytes(message["bytes"])
'''


def readme_app() -> str:
    """The README's embedding example as written, plus a WebSocket route of the app's own."""
    section = (ROOT / "README.md").read_text().split("## Inside an existing FastAPI app")[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "expected a python block under 'Inside an existing FastAPI app'"
    return code.group(1) + ECHO_ROUTE


def readme_command() -> list[str]:
    """The ``uvicorn app:app --ws …`` command of README.md, split as a shell would."""
    found = re.findall(r"`(uvicorn app:app --ws [^`]+)`", (ROOT / "README.md").read_text())
    assert len(found) == 1, f"expected one `uvicorn app:app --ws …` line in README.md: {found}"
    return shlex.split(found[0])


class Uvicorn:
    """A uvicorn subprocess on a free port, its port read from uvicorn's start-up line."""

    def __init__(self, command: list[str], cwd: Path) -> None:
        executable = Path(sys.executable).parent / command[0]
        self.process = subprocess.Popen(
            [str(executable), *command[1:], "--host", "127.0.0.1", "--port", "0"],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        self.port: int | None = None
        self._started = threading.Event()
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            match = STARTED.search(line)
            if match:
                self.port = int(match.group(1))
                self._started.set()
        self._started.set()  # exited: wait_started reports the log

    def wait_started(self, timeout: float = 60) -> int:
        self._started.wait(timeout)
        if self.port is None:
            raise AssertionError("uvicorn did not start:\n" + "".join(self.log))
        return self.port

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


async def first_sample(stream: Any) -> dict[str, Any]:
    """The stream's first data message. A loaded machine may time a reader out first: that
    tick is the contract's error message, and the stream goes on."""
    async with asyncio.timeout(WAIT):
        while True:
            message = await receive_json(stream, timeout=WAIT)
            if set(message) == {"cpu", "memory", "disk", "timestamp"}:
                return dict(message)
            assert set(message) == {"error", "timestamp"}, message


@pytest.fixture
def readme_server(tmp_path: Path) -> Iterator[Uvicorn]:
    (tmp_path / "app.py").write_text(readme_app())
    server = Uvicorn(readme_command(), tmp_path)
    try:
        server.wait_started()
        yield server
    finally:
        server.stop()


def test_the_readme_names_sysstreams_protocol() -> None:
    command = readme_command()
    assert command[command.index("--ws") + 1] == "sysstream:WebSocketProtocol"


async def test_the_readme_command_serves_the_stream_and_the_apps_own_routes(
    readme_server: Uvicorn,
) -> None:
    base = f"ws://127.0.0.1:{readme_server.port}"
    async with ws_client(f"{base}/api/system/metrics") as stream:
        await first_sample(stream)

    async with ws_client(f"{base}/echo", max_size=None) as echo:
        await echo.send("héllo")
        assert await asyncio.wait_for(echo.recv(), WAIT) == "héllo"
        await echo.send(b"\x00\x01\xff")
        assert await asyncio.wait_for(echo.recv(), WAIT) == b"\x00\x01\xff"
        # One message in three fragments (a continuation on the wire), text and binary.
        await echo.send(["frag", "ment", "ed"])
        assert await asyncio.wait_for(echo.recv(), WAIT) == "fragmented"
        await echo.send([b"ab", b"cd"])
        assert await asyncio.wait_for(echo.recv(), WAIT) == b"abcd"
        big = bytes(range(256)) * 4096  # 1 MiB, under uvicorn's default 16 MiB ws_max_size
        await echo.send(big)
        assert await asyncio.wait_for(echo.recv(), WAIT) == big
        big_text = "é" * (512 * 1024)  # 1 MiB of UTF-8
        await echo.send(big_text)
        assert await asyncio.wait_for(echo.recv(), WAIT) == big_text
        await echo.send("bye")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(echo.recv(), WAIT)
        assert echo.close_code == 4321
        assert echo.close_reason == "goodbye from the app"
    assert readme_server.process.poll() is None, "".join(readme_server.log)
    errors = [line for line in readme_server.log if "ERROR" in line or "Traceback" in line]
    assert errors == []


async def test_the_readme_app_serves_health_and_prometheus_beside_the_stream(
    readme_server: Uvicorn,
) -> None:
    base = f"http://127.0.0.1:{readme_server.port}"
    async with httpx.AsyncClient(base_url=base, timeout=WAIT) as client:
        async with ws_client(f"ws://127.0.0.1:{readme_server.port}/api/system/metrics") as ws:
            await first_sample(ws)
            health = await client.get("/ops/healthz")
            exposition = await client.get("/ops/metrics")
        sample = await client.get("/api/system/metrics")  # the stream's own GET, unshadowed
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok" and health.json()["clients"] == 1, health.json()
    assert exposition.status_code == 200
    assert exposition.headers["content-type"].startswith("text/plain")
    assert "# HELP sysstream_clients " in exposition.text
    assert "sysstream_clients 1.0" in exposition.text
    assert sample.status_code == 200, sample.text
    assert set(sample.json()) == {"cpu", "memory", "disk", "timestamp"}


def test_a_wrong_protocol_import_string_does_not_start(tmp_path: Path) -> None:
    """What the test above relies on: uvicorn refuses a --ws it cannot import."""
    (tmp_path / "app.py").write_text(readme_app())
    server = Uvicorn(["uvicorn", "app:app", "--ws", "sysstream.WebSocketProtocol"], tmp_path)
    try:
        with pytest.raises(AssertionError, match="did not start"):
            server.wait_started()
    finally:
        server.stop()
    assert any("sysstream.WebSocketProtocol" in line for line in server.log), server.log


async def test_operations_follow_the_routers_token_but_health_stays_open(
    server_factory: Any,
) -> None:
    metrics = sysstream.router(sysstream.load_settings(interval=0.2, token=TOKEN))
    app = FastAPI()
    app.include_router(metrics, prefix="/api/system")
    app.include_router(sysstream.operations(metrics), prefix="/ops")
    server = server_factory(app, interval=0.2)
    async with httpx.AsyncClient(base_url=server.http_url, timeout=WAIT) as client:
        refused = await client.get("/ops/metrics")
        allowed = await client.get("/ops/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        health = await client.get("/ops/healthz")
    assert refused.status_code == 401, refused.text
    assert allowed.status_code == 200 and "# HELP sysstream_clients " in allowed.text
    assert health.status_code == 200 and health.json()["hub"] == "running", health.text
