"""The three servers under test, each started as its own process on 127.0.0.1.

Owns: how to launch sysstream (the product, via its ``sysstream serve`` command), the floor
and the naive reference; waiting until one accepts connections; reading sysstream's
``/healthz``; and stopping a server (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SERVERS", "RunningServer", "ServerSpec", "free_port"]

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
SYSSTREAM = str(Path(PYTHON).with_name("sysstream"))
HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ServerSpec:
    name: str
    command: Callable[[int], list[str]]
    has_healthz: bool = False


SERVERS: dict[str, ServerSpec] = {
    "floor": ServerSpec(
        "floor", lambda port: [PYTHON, str(HERE / "floor.py"), "--port", str(port)]
    ),
    "sysstream": ServerSpec(
        "sysstream",
        # --no-store: the fan-out is measured, not the disk, and no user data dir is written.
        lambda port: [
            SYSSTREAM,
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-store",
        ],
        has_healthz=True,
    ),
    "naive": ServerSpec(
        "naive", lambda port: [PYTHON, str(HERE / "naive.py"), "--port", str(port)]
    ),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class RunningServer:
    """A server process; use as a context manager so it is always stopped."""

    def __init__(self, spec: ServerSpec, log: Path, extra: list[str] | None = None) -> None:
        self.spec = spec
        self.port = free_port()
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [*spec.command(self.port), *(extra or [])],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=HERE,
        )
        self.pid = self.process.pid

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited with {self.process.returncode}")
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
            except OSError:
                time.sleep(0.1)
                continue
            if not self.spec.has_healthz or self.healthz() is not None:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.spec.name} did not start within {timeout} s")

    def healthz(self) -> dict[str, Any] | None:
        """sysstream's ``/healthz`` body (any status), or None before the first tick."""
        url = f"http://{HOST}:{self.port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as error:
            body = json.load(error)
        except OSError:
            return None
        return body if body.get("last_tick_age_seconds") is not None else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
