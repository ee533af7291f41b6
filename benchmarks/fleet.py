"""The load: N lean clients spread over several client processes (see :mod:`client`).

Owns: splitting N into processes of at most ``per_process`` clients, giving each its own
source address 127.0.0.x (so no run can run out of ephemeral ports or meet another run's
sockets), and steering them together: connect, start, stop, exit.
"""

from __future__ import annotations

import itertools
import json
import queue
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from servers import HERE, HOST, PYTHON

__all__ = ["Fleet", "FleetResult", "source_addresses"]


def source_addresses() -> Iterator[str]:
    """Fresh loopback addresses, 127.0.1.1, 127.0.1.2, …, one per client process."""
    for high, low in itertools.product(range(1, 255), range(1, 255)):
        yield f"127.0.{high}.{low}"


@dataclass(slots=True)
class FleetResult:
    counts: list[int] = field(default_factory=list)  # messages per client in the window
    delays_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    lost: int = 0


class _ClientProcess:
    def __init__(self, args: list[str], log: IO[bytes]) -> None:
        self.process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=HERE
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.put(json.loads(line))
        self.events.put({"event": "exited"})

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        self.process.stdin.flush()

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        message = self.events.get(timeout=timeout)
        if message["event"] != event:
            raise RuntimeError(f"expected {event!r} from a client process, got {message}")
        return message


class Fleet:
    """Client processes for one run; a context manager that always ends them."""

    def __init__(
        self,
        port: int,
        count: int,
        *,
        deflate: bool,
        sources: Iterator[str],
        log: Path,
        per_process: int = 5000,
        connect_timeout: float = 60.0,
    ) -> None:
        self._log = log.open("ab")
        self.connect_timeout = connect_timeout
        shares = [per_process] * (count // per_process)
        if count % per_process:
            shares.append(count % per_process)
        self.processes = [
            _ClientProcess(
                [
                    PYTHON,
                    str(HERE / "client.py"),
                    f"--host={HOST}",
                    f"--port={port}",
                    f"--count={share}",
                    f"--source={next(sources)}",
                    f"--connect-timeout={connect_timeout}",
                    *(["--deflate"] if deflate else []),
                ],
                self._log,
            )
            for share in shares
        ]

    @property
    def pids(self) -> list[int]:
        return [client.process.pid for client in self.processes]

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *_: object) -> None:
        for client in self.processes:
            if client.process.poll() is None:
                try:
                    client.send("exit")
                    client.process.wait(15)
                except (OSError, subprocess.TimeoutExpired):
                    client.process.kill()
                    client.process.wait(5)
        self._log.close()

    def connect(self) -> tuple[int, float]:
        """Wait until every process has connected; (clients connected, slowest seconds)."""
        connected, slowest = 0, 0.0
        for client in self.processes:
            event = client.expect("connected", self.connect_timeout + 30)
            connected += event["connected"]
            slowest = max(slowest, event["seconds"])
        return connected, slowest

    def last_sample(self) -> float:
        """The timestamp of the latest sample any client received."""
        last = 0.0
        for client in self.processes:
            client.send("phase")
            last = max(last, client.expect("phase", 30)["last"])
        return last

    def window(self, start: float, end: float) -> None:
        """Count samples stamped in [start, end) (wall-clock seconds) from now on."""
        for client in self.processes:
            client.send(f"window {start!r} {end!r}")

    def stop(self) -> FleetResult:
        for client in self.processes:
            client.send("stop")
        result = FleetResult()
        for client in self.processes:
            event = client.expect("result", 60)
            result.counts += event["counts"]
            result.delays_ms += event["delays_ms"]
            result.seconds = max(result.seconds, event["seconds"])
            result.lost += event["lost"]
        return result
