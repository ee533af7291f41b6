"""A real HTTP receiver on port 0 for notification tests: records every POST, can answer
500 a number of times first, hang until released, or dribble its answer a byte at a time."""

from __future__ import annotations

import http.server
import json
import threading
import time
from typing import Any

__all__ = ["Receiver"]


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.paths: list[str] = []
        self.attempts = 0
        self.fail_next = 0  # answer 500 to this many requests first
        self.hang = threading.Event()  # while set, requests wait for `release`
        self.release = threading.Event()
        self.dribble: float | None = None  # seconds between the answer's bytes (until released)
        self.cut_off = 0  # dribbled answers whose connection the client closed before the end
        self._received = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                with receiver._received:
                    receiver.attempts += 1
                    failing = receiver.fail_next > 0
                    if failing:
                        receiver.fail_next -= 1
                if receiver.hang.is_set():
                    receiver.release.wait(60)
                status = 500 if failing else 200
                if receiver.dribble is not None:
                    self._dribble(status, receiver.dribble)
                    return
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                if not failing:
                    with receiver._received:
                        receiver.bodies.append(json.loads(raw))
                        receiver.paths.append(self.path)
                        receiver._received.notify_all()

            def _dribble(self, status: int, every: float) -> None:
                answer = f"HTTP/1.1 {status} OK\r\nContent-Length: 2\r\n\r\n{{}}".encode()
                self.close_connection = True
                try:
                    for byte in answer:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        receiver.release.wait(every)
                except OSError:
                    with receiver._received:
                        receiver.cut_off += 1
                        receiver._received.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Any]:
        """Block until ``count`` bodies have arrived; returns them all."""
        deadline = time.monotonic() + timeout
        with self._received:
            while len(self.bodies) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"expected {count} deliveries, got {len(self.bodies)}")
                self._received.wait(left)
            return list(self.bodies)
