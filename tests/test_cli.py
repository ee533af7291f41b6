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
from typing import Any

import click
import pytest
from websockets.exceptions import ConnectionClosedOK, InvalidStatus

from sysstream._settings import Settings, validated
from sysstream.cli._main import _until_signalled, model_options

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
async def serve(
    *args: str, env: dict[str, str] | None = None, log: list[str] | None = None
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """``sysstream serve`` on a free port; ``log`` receives the lines it logs until ready."""
    log = [] if log is None else log
    process = await asyncio.create_subprocess_exec(
        *SYSSTREAM,
        "serve",
        "--port",
        "0",
        "--log-level",
        "info",
        *args,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stderr is not None
    try:
        port = 0
        async with asyncio.timeout(15):
            while not port:
                line = (await process.stderr.readline()).decode()
                assert line, "server exited before listening"
                log.append(line)
                if match := re.search(r"serving on http://127\.0\.0\.1:(\d+)", line):
                    port = int(match[1])
            while "Application startup complete" not in log[-1]:
                log.append((await process.stderr.readline()).decode())
        yield process, port
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 10)


async def test_serve_streams_and_exits_cleanly_on_sigterm() -> None:
    async with serve("--interval", "0.2") as (process, port):
        async with ws_client(f"ws://127.0.0.1:{port}/api/system/metrics") as websocket:
            # On a loaded machine a tick's reads can miss their half-interval cutoff and the
            # tick is the documented error shape; the data shape follows once reads fit.
            async with asyncio.timeout(10):
                while "error" in (message := await receive_json(websocket)):
                    assert message["error"].startswith("Metric collection failed: "), message
            assert list(message) == ["cpu", "memory", "disk", "timestamp"]
            process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosedOK) as closed:  # a closing handshake
                while True:
                    await receive_json(websocket)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                1001,
                "server shutting down",
            )
        assert await asyncio.wait_for(process.wait(), 5) == 0


async def containers_error(port: int) -> str:
    """The reason a ``containers`` subscriber is given under ``errors``."""
    url = f"ws://127.0.0.1:{port}/api/system/metrics?fields=containers"
    async with ws_client(url) as websocket, asyncio.timeout(10):
        while "containers" not in (message := await receive_json(websocket)).get("errors", {}):
            pass
    return str(message["errors"]["containers"])


async def log_until_exit(process: asyncio.subprocess.Process) -> str:
    """Stops the server and returns the rest of its log."""
    assert process.stderr is not None
    process.send_signal(signal.SIGTERM)
    rest = await asyncio.wait_for(process.stderr.read(), 10)
    await asyncio.wait_for(process.wait(), 10)
    return rest.decode()


DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"


@pytest.mark.skipif(
    os.path.exists(DEFAULT_DOCKER_SOCKET),
    reason=f"this machine has a container engine socket at {DEFAULT_DOCKER_SOCKET}",
)
async def test_no_docker_at_the_default_socket_is_no_warning_but_a_stream_error() -> None:
    default = DEFAULT_DOCKER_SOCKET
    unset = {"DOCKER_HOST", "SYSSTREAM_DOCKER_HOST"}
    env = {name: value for name, value in os.environ.items() if name not in unset}
    log: list[str] = []
    async with serve("--interval", "0.2", env=env, log=log) as (process, port):
        reason = await containers_error(port)
        log.append(await log_until_exit(process))
    assert reason == (
        f"Metric collection failed: no Docker daemon: {default} does not exist"
        " (set DOCKER_HOST or --docker-host)"
    )
    assert "WARNING" not in "".join(log), log


async def test_a_configured_docker_host_that_does_not_answer_is_a_warning(tmp_path: Any) -> None:
    missing = tmp_path / "docker.sock"
    log: list[str] = []
    flag = ("--docker-host", f"unix://{missing}")
    async with serve("--interval", "0.2", *flag, log=log) as (process, port):
        reason = await containers_error(port)
        log.append(await log_until_exit(process))
    expected = f"no Docker daemon: {missing} does not exist (set DOCKER_HOST or --docker-host)"
    assert reason == f"Metric collection failed: {expected}"
    assert [line for line in "".join(log).splitlines() if "containers:" in line] == [
        f"WARNING:     containers: {expected}"
    ], log


# A piped data line: the sample's timestamp, then the default fields.
DATA_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z (cpu=\S+ memory=\S+ disk=\S+|error: .+)$")


async def test_watch_piped_writes_data_to_stdout_and_status_to_stderr() -> None:
    async with serve("--interval", "0.2") as (_process, port):
        watcher = await asyncio.create_subprocess_exec(
            *SYSSTREAM,
            "watch",
            f"ws://127.0.0.1:{port}/api/system/metrics",
            "--count",
            "3",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(watcher.communicate(), 15)
    assert watcher.returncode == 0
    lines = out.decode().splitlines()
    assert len(lines) == 3 and all(DATA_LINE.match(line) for line in lines), lines
    assert err.decode() == "[live]\n"


async def test_watch_piped_into_a_reader_that_leaves_stops_quietly() -> None:
    def read_one_line_then_leave(port: int) -> tuple[int, bytes]:
        # As `sysstream watch | head -1` does: read a line, close the pipe.
        command = [*SYSSTREAM, "watch", f"127.0.0.1:{port}"]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as watcher:
            assert watcher.stdout is not None and watcher.stderr is not None
            while b"cpu=" not in watcher.stdout.readline():
                pass
            watcher.stdout.close()
            code = watcher.wait(timeout=10)
            return code, watcher.stderr.read()

    async with serve("--interval", "0.2") as (_process, port):
        code, error = await asyncio.wait_for(asyncio.to_thread(read_one_line_then_leave, port), 20)
    assert (code, error) == (0, b"[live]\n")  # the status line; no complaint about the pipe


async def test_watch_reconnects_when_the_server_comes_back() -> None:
    async with serve("--interval", "0.2") as (process, port):
        watcher = await asyncio.create_subprocess_exec(
            *SYSSTREAM,
            "watch",
            f"ws://127.0.0.1:{port}/api/system/metrics",
            "--count",
            "6",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert watcher.stdout is not None and watcher.stderr is not None
        async with asyncio.timeout(10):
            first = (await watcher.stdout.readline()).decode()
        assert DATA_LINE.match(first.rstrip("\n")), first
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 10)
    async with asyncio.timeout(10):
        assert await watcher.stderr.readline() == b"[live]\n"
        lost = (await watcher.stderr.readline()).decode()
    assert lost.startswith("[disconnected (") and "; retrying in " in lost, lost
    async with serve("--interval", "0.2", "--port", str(port)):
        out, err = await asyncio.wait_for(watcher.communicate(), 20)
    assert watcher.returncode == 0
    lines = out.decode().splitlines()
    assert len(lines) == 5 and all(DATA_LINE.match(line) for line in lines), lines
    assert err.decode().splitlines()[-1] == "[live]", err  # back, after any retries


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--interval", "-1"], {}, "invalid --interval / SYSSTREAM_INTERVAL: Input should be"),
        ([], {"SYSSTREAM_PORT": "http"}, "invalid --port / SYSSTREAM_PORT: Input should be"),
        (["--disk-path", "/no/such/dir"], {}, "expected an existing directory, got '/no/such/dir'"),
        (["--log-level", "loud"], {}, "invalid --log-level / SYSSTREAM_LOG_LEVEL"),
        (["--data-dir", "/etc/hostname"], {}, "Directory '/etc/hostname' is a file"),
        ([], {"SYSSTREAM_DATA_DIR": "/etc/hostname"}, "got a file: '/etc/hostname'"),
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


def test_serve_help_shows_types_choices_switches_and_plain_defaults() -> None:
    result = run("serve", "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0
    text = result.stdout
    assert re.search(r"--port INTEGER\s+TCP port; 0 picks a free one\. \[0<=x<=65535\]", text)
    assert re.search(r"--interval FLOAT\s+Seconds between samples\. \[0\.05<=x<=3600\]", text)
    assert "--stall-timeout FLOAT" in text and "[0<x<=3600]" in text
    assert "--disk-path DIRECTORY" in text and "--data-dir DIRECTORY" in text
    assert "--alerts FILE" in text
    assert "--log-level [critical|error|warning|info|debug|trace]" in text
    assert "--proxy-headers / --no-proxy-headers" in text
    assert "default 127.0.0.1,::1]" in text and "['127.0.0.1'" not in text
    assert "--no-store " in text and "default off]" in text
    assert "--max-clients INTEGER" in text and "--redis-url, --redis TEXT" in text


def _settings_from_flags(*args: str) -> Settings:
    """Run the flags ``serve`` has through click and the model, as `serve` does."""
    built: list[Settings] = []

    @click.command()
    @model_options(Settings)
    def command(**flags: object) -> None:
        built.append(validated(Settings, **flags))

    command.main(list(args), standalone_mode=False)
    return built[0]


def test_generated_flags_convert_to_the_models_types() -> None:
    settings = _settings_from_flags(
        "--port", "8080", "--interval", "0.5", "--no-proxy-headers", "--log-level", "debug",
        "--forwarded-allow-ips", "10.0.0.0/8", "--forwarded-allow-ips", "::1",
    )  # fmt: skip
    assert settings.port == 8080 and settings.interval == 0.5
    assert settings.proxy_headers is False and settings.log_level == "debug"
    assert settings.forwarded_allow_ips == ["10.0.0.0/8", "::1"]
    assert _settings_from_flags("--proxy-headers").proxy_headers is True
    assert _settings_from_flags().proxy_headers is True  # unset: the model's default


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--port", "abc"], "sysstream: invalid --port / SYSSTREAM_PORT: 'abc' is not a valid"),
        (["--log-level", "loud"], "sysstream: invalid --log-level / SYSSTREAM_LOG_LEVEL: 'loud'"),
        (
            ["--proxy-headers", "false"],
            "sysstream: invalid --proxy-headers / SYSSTREAM_PROXY_HEADERS: a switch takes no"
            " value; for --proxy-headers false write --no-proxy-headers\n",
        ),
        (
            ["--proxy-headers=off"],
            "sysstream: invalid --proxy-headers / SYSSTREAM_PROXY_HEADERS: a switch takes no"
            " value; for --proxy-headers off write --no-proxy-headers\n",
        ),
        (
            ["--no-proxy-headers", "false"],
            "sysstream: invalid --proxy-headers / SYSSTREAM_PROXY_HEADERS: a switch takes no"
            " value; for --no-proxy-headers false write --proxy-headers\n",
        ),
        (
            ["--no-store", "false"],
            "sysstream: invalid --no-store / SYSSTREAM_NO_STORE: a switch takes no value;"
            " for --no-store false leave --no-store out\n",
        ),
        (
            ["--no-store", "1"],
            "sysstream: invalid --no-store / SYSSTREAM_NO_STORE: a switch takes no value;"
            " for --no-store 1 write --no-store\n",
        ),
        (
            ["--proxy-headers", "maybe"],
            "sysstream: invalid --proxy-headers / SYSSTREAM_PROXY_HEADERS: a switch takes no"
            " value, got 'maybe' after it; write --proxy-headers or --no-proxy-headers\n",
        ),
        (["--bogus"], "sysstream: No such option '--bogus'"),
    ],
)
def test_flags_click_cannot_convert_fail_with_one_line(args: list[str], expected: str) -> None:
    result = run("serve", *args)
    assert result.returncode == 2
    assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1, result.stderr


async def test_max_clients_flag_refuses_the_next_stream_with_503() -> None:
    async with serve("--interval", "0.2", "--max-clients", "2") as (_process, port):
        url = f"ws://127.0.0.1:{port}/api/system/metrics"
        async with ws_client(url) as first, ws_client(url) as second:
            with pytest.raises(InvalidStatus) as refused:
                async with ws_client(url):
                    pass
            assert refused.value.response.status_code == 503
            assert b"server full: 2 clients connected" in refused.value.response.body
            for websocket in (first, second):
                assert "cpu" in await receive_json(websocket)


async def access_log_line(process: asyncio.subprocess.Process, path: str) -> str:
    """The next access-log line for ``path`` on the server's stderr."""
    assert process.stderr is not None
    async with asyncio.timeout(10):
        while path not in (line := (await process.stderr.readline()).decode()):
            assert line, "server exited"
    return line


@pytest.mark.parametrize(
    ("flags", "logged"),
    [
        ((), "203.0.113.9"),  # --proxy-headers is on; 127.0.0.1 is a trusted proxy
        (("--no-proxy-headers",), "127.0.0.1"),
        (("--forwarded-allow-ips", "10.0.0.1"), "127.0.0.1"),  # not from that proxy
    ],
)
async def test_proxy_headers_set_the_logged_client_only_from_trusted_proxies(
    flags: tuple[str, ...], logged: str
) -> None:
    async with serve("--interval", "0.2", *flags) as (process, port):
        headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        url = f"ws://127.0.0.1:{port}/api/system/metrics"
        async with ws_client(url, additional_headers=headers) as websocket:
            assert "cpu" in await receive_json(websocket)
        line = await access_log_line(process, '"WebSocket /api/system/metrics"')
        expected = rf'INFO: +{re.escape(logged)}:\d+ - "WebSocket /api/system/metrics" \[accepted\]'
        assert re.search(expected, line), line


async def test_a_stop_signal_ends_work_that_swallows_one_cancellation() -> None:
    # On Python 3.11 a dependency's timeout can swallow a cancellation; an agent then
    # kept publishing after SIGTERM. The stop is repeated until the work ends.

    cancellations = 0
    started = asyncio.Event()

    async def stubborn() -> None:
        nonlocal cancellations
        started.set()
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancellations += 1
                if cancellations > 1:
                    raise

    running = asyncio.ensure_future(_until_signalled(stubborn()))
    await asyncio.wait_for(started.wait(), 5)
    os.kill(os.getpid(), signal.SIGTERM)
    done, _ = await asyncio.wait((running,), timeout=5)  # never cancels ``running``
    if not done:
        running.cancel()
    assert done == {running} and cancellations == 2
