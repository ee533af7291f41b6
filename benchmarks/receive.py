"""Receive cost: one large client message fed to a protocol in small reads, in-process.

Usage (from the repository root)::

    .venv/bin/python benchmarks/receive.py                # 16 MiB in 1 KiB reads, 5 runs
    .venv/bin/python benchmarks/receive.py --runs 9 --json

Owns: feeding the same bytes (handshake, then one masked binary frame of ``--size`` bytes cut
into ``--read`` byte reads) to ``sysstream.WebSocketProtocol`` and to uvicorn's own
``WebSocketsSansIOProtocol`` behind a transport that only counts, alternating the two in one
run, and reporting the CPU seconds each took (median and range) and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.frames import Frame, Opcode

from sysstream import WebSocketProtocol

__all__ = ["client_frame", "measure_receive", "receive_seconds"]

MIB = 1 << 20
HANDSHAKE = (
    b"GET /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


class CountingTransport(asyncio.Transport):
    """Accepts what the protocol writes and counts it; reading is never really paused."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )


class UploadApp:
    """Accepts, then takes messages until the client goes (a user's upload route),
    noting the size of each."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.arrived = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] != "websocket.disconnect":
            self.sizes.append(len(message["bytes"]))
            self.arrived.set()


def client_frame(payload: bytes) -> bytes:
    """One masked binary frame, as a client sends it."""
    return Frame(Opcode.BINARY, payload).serialize(mask=True, extensions=[])


async def receive_seconds(protocol_class: type[Any], frame: bytes, read: int, size: int) -> float:
    """CPU seconds ``protocol_class`` spends on ``frame`` fed in ``read``-byte reads."""
    app = UploadApp()
    config = Config(app, ws="none", ws_max_size=len(frame), lifespan="off", log_level=50)
    config.load()
    loop = asyncio.get_running_loop()
    protocol = protocol_class(config, ServerState(), {}, _loop=loop)
    transport = CountingTransport()
    protocol.connection_made(transport)
    protocol.data_received(HANDSHAKE)
    for _ in range(100):  # let the app accept
        await asyncio.sleep(0)
        if protocol.handshake_complete:
            break
    assert protocol.handshake_complete, "the app did not accept"
    chunks = [frame[start : start + read] for start in range(0, len(frame), read)]
    started = time.process_time()
    for chunk in chunks:
        protocol.data_received(chunk)
    spent = time.process_time() - started
    await asyncio.wait_for(app.arrived.wait(), 5)
    assert app.sizes == [size], f"expected one message of {size} bytes, got {app.sizes}"
    protocol.connection_lost(None)
    await asyncio.sleep(0)
    return spent


def measure_receive(size: int, read: int, runs: int) -> dict[str, Any]:
    """Both classes, alternated ``runs`` times in one process; medians, ranges and ratios."""
    frame = client_frame(os.urandom(size))
    seconds: dict[str, list[float]] = {"uvicorn": [], "sysstream": []}

    async def run() -> None:
        for _ in range(runs):
            seconds["uvicorn"].append(
                await receive_seconds(WebSocketsSansIOProtocol, frame, read, size)
            )
            seconds["sysstream"].append(await receive_seconds(WebSocketProtocol, frame, read, size))

    asyncio.run(run())
    ratios = [
        ours / theirs for ours, theirs in zip(seconds["sysstream"], seconds["uvicorn"], strict=True)
    ]
    return {
        "size": size,
        "read": read,
        "runs": runs,
        "seconds": seconds,
        "median": {name: statistics.median(values) for name, values in seconds.items()},
        "ratio_median": statistics.median(ratios),
        "ratio_range": [min(ratios), max(ratios)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16 * MIB, help="message bytes (16 MiB)")
    parser.add_argument("--read", type=int, default=1024, help="bytes per read (1 KiB)")
    parser.add_argument("--runs", type=int, default=5, help="runs per class (5)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    result = measure_receive(args.size, args.read, args.runs)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.size / MIB:g} MiB in {args.read}-byte reads, {args.runs} runs each (CPU ms)")
    for name, values in result["seconds"].items():
        low, high = min(values) * 1e3, max(values) * 1e3
        print(f"  {name:9}  median {result['median'][name] * 1e3:7.1f}  range {low:.1f}–{high:.1f}")
    low, high = result["ratio_range"]
    print(
        f"  sysstream / uvicorn: median {result['ratio_median']:.2f}× (range {low:.2f}–{high:.2f})"
    )


if __name__ == "__main__":
    main()
