"""The ``sysstream`` command as a user runs it: real processes, real ports."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from .conftest import receive_json, ws_client

SYSSTREAM = [sys.executable, "-m", "sysstream"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SYSSTREAM, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        check=False,
    )


@asynccontextmanager
async def serve(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    process = await asyncio.create_subprocess_exec(
        *SYSSTREAM,
        "serve",
        "--port",
        "0",
        "--log-level",
        "info",
        *args,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        port = 0
        async with asyncio.timeout(15):
            while not port:
                line = (await process.stderr.readline()).decode()
                assert line, "server exited before listening"
                if match := re.search(r"serving on http://127\.0\.0\.1:(\d+)", line):
                    port = int(match[1])
            while b"Application startup complete" not in await process.stderr.readline():
                pass
        yield process, port
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 10)


async def test_serve_streams_and_exits_cleanly_on_sigterm() -> None:
    async with serve("--interval", "0.2") as (process, port):
        async with ws_client(f"ws://127.0.0.1:{port}/api/system/metrics") as websocket:
            assert list(await receive_json(websocket)) == ["cpu", "memory", "disk", "timestamp"]
            process.send_signal(signal.SIGTERM)
            with pytest.raises(Exception) as closed:
                while True:
                    await receive_json(websocket)
            assert closed.value.rcvd.code == 1001  # type: ignore[attr-defined]
        assert await asyncio.wait_for(process.wait(), 5) == 0


async def test_watch_prints_live_values() -> None:
    async with serve("--interval", "0.2") as (_process, port):
        watcher = await asyncio.create_subprocess_exec(
            *SYSSTREAM,
            "watch",
            f"ws://127.0.0.1:{port}/api/system/metrics",
            "--count",
            "3",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(watcher.communicate(), 15)
    lines = [line for line in out.decode().splitlines() if "cpu=" in line]
    assert len(lines) == 3 and all("memory=" in line and "disk=" in line for line in lines)


async def test_watch_reconnects_when_the_server_comes_back() -> None:
    async with serve("--interval", "0.2") as (process, port):
        watcher = await asyncio.create_subprocess_exec(
            *SYSSTREAM,
            "watch",
            f"ws://127.0.0.1:{port}/api/system/metrics",
            "--count",
            "6",
            stdout=asyncio.subprocess.PIPE,
        )
        assert watcher.stdout is not None
        async with asyncio.timeout(10):
            while b"cpu=" not in await watcher.stdout.readline():
                pass
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 10)
    async with asyncio.timeout(10):
        while b"disconnected" not in (line := await watcher.stdout.readline()):
            assert line, "watch exited instead of retrying"
    async with serve("--interval", "0.2", "--port", str(port)):
        out, _ = await asyncio.wait_for(watcher.communicate(), 20)
    assert watcher.returncode == 0
    assert b"[live]" in out and b"cpu=" in out


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--interval", "-1"], {}, "invalid --interval / SYSSTREAM_INTERVAL: Input should be"),
        ([], {"SYSSTREAM_PORT": "http"}, "invalid --port / SYSSTREAM_PORT: Input should be"),
        (["--disk-path", "/no/such/dir"], {}, "expected an existing directory, got '/no/such/dir'"),
        (["--log-level", "loud"], {}, "invalid --log-level / SYSSTREAM_LOG_LEVEL"),
    ],
)
def test_bad_settings_fail_with_one_line(
    args: list[str], env: dict[str, str], expected: str
) -> None:
    result = run("serve", *args, env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_busy_port_fails_with_one_line() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run("serve", "--port", str(taken.getsockname()[1]))
    assert result.returncode == 2
    assert "cannot listen on 127.0.0.1:" in result.stderr and result.stderr.count("\n") == 1


def test_watch_rejects_a_non_websocket_url() -> None:
    result = run("watch", "http://example.invalid/")
    assert result.returncode == 2
    assert result.stderr.startswith("sysstream: expected a ws:// or wss:// URL")
