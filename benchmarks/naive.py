"""Reference (a), the naive design: every client runs its own sample-encode-send loop.

Owns: the server most tutorials would write. FastAPI on uvicorn with its defaults (which
negotiate permessage-deflate when offered); each connection samples psutil, encodes with
``json.dumps`` and awaits ``send_text`` once a second. Same wire format as sysstream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from datetime import UTC, datetime

import psutil
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

__all__ = ["app", "main"]

app = FastAPI()


@app.websocket("/api/system/metrics")
async def metrics(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            stamp = datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            message = {
                "cpu": psutil.cpu_percent(),
                "memory": psutil.virtual_memory().percent,
                "disk": psutil.disk_usage("/").percent,
                "timestamp": stamp,
            }
            await websocket.send_text(json.dumps(message))
            await asyncio.sleep(1.0)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", backlog=4096)


if __name__ == "__main__":
    main()
