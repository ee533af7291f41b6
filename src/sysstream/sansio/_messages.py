"""Message building: samples to the wire contract's JSON, and JSON to WebSocket frames.

The contract (docs/protocol.md): a data message carries the subscribed fields then
``timestamp``; a group that failed is ``null`` and named under ``errors``; when every
subscribed group failed the message is ``{"error": "Metric collection failed: …",
"timestamp": …}``. Timestamps are UTC ISO-8601 with a ``Z``.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from .._sample import Sample

__all__ = [
    "COLLECTION_FAILED",
    "encode_error",
    "encode_json",
    "encode_sample",
    "format_timestamp",
    "sample_message",
    "text_frame",
]

COLLECTION_FAILED = "Metric collection failed: "


def format_timestamp(epoch: float) -> str:
    """``2025-11-10T12:30:45.123456Z``: explicit UTC, so JavaScript does not read it as local."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sample_message(sample: Sample, fields: Iterable[str]) -> dict[str, Any]:
    """The message dict for one view (an ordered set of field groups) of ``sample``."""
    fields = tuple(fields)
    failed = [name for name in fields if name in sample.errors]
    stamp = format_timestamp(sample.timestamp)
    # A group that worked in part (a value and a reason) has not failed.
    if fields and all(name in sample.errors and name not in sample.values for name in fields):
        detail = "; ".join(f"{name}: {sample.errors[name]}" for name in failed)
        return {"error": COLLECTION_FAILED + detail, "timestamp": stamp}
    message: dict[str, Any] = {name: sample.values.get(name) for name in fields}
    message["timestamp"] = stamp
    if failed:
        message["errors"] = {name: COLLECTION_FAILED + sample.errors[name] for name in failed}
    return message


def encode_sample(sample: Sample, fields: Iterable[str]) -> bytes:
    return orjson.dumps(sample_message(sample, fields))


def encode_error(text: str, epoch: float | None = None) -> bytes:
    """``{"error": text, "timestamp": now}``: the shape every error reply takes."""
    stamp = format_timestamp(time.time() if epoch is None else epoch)
    return orjson.dumps({"error": text, "timestamp": stamp})


def encode_json(value: Any) -> bytes:
    return orjson.dumps(value)


def text_frame(payload: bytes) -> bytes:
    """A complete unmasked, unfragmented server-to-client text frame (RFC 6455 §5.2).

    Built once per tick and written as-is to every fast-path connection. It is never
    compressed: RFC 7692 lets a sender leave any message uncompressed (RSV1 clear) even
    when permessage-deflate was negotiated.
    """
    length = len(payload)
    if length < 126:
        header = bytes((0x81, length))
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload
