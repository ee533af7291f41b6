"""The few bits of RFC 6455 the lean client and the floor server need, and nothing else.

Owns: the opening handshake (request, accept key, response), frame headers, masking,
and an incremental frame parser. No I/O; both peers feed it bytes from their protocols.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Iterator

__all__ = [
    "CLOSE",
    "PING",
    "PONG",
    "TEXT",
    "FrameParser",
    "accept_key",
    "client_frame",
    "handshake_request",
    "server_frame",
    "split_head",
]

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# What Chrome and Firefox offer.
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"


def accept_key(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key.strip() + GUID).digest())


def handshake_request(host: str, port: int, path: str, *, deflate: bool) -> tuple[bytes, bytes]:
    """An upgrade request as a browser sends it, and the accept key the server must return."""
    key = base64.b64encode(os.urandom(16))
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
        f"Origin: http://{host}:{port}",
    ]
    if deflate:
        lines.append(f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), accept_key(key)


def split_head(buffer: bytes) -> tuple[dict[bytes, bytes], bytes, bytes] | None:
    """``(headers, start line, rest)`` once ``buffer`` holds a complete HTTP head."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    start, *lines = buffer[:end].split(b"\r\n")
    headers: dict[bytes, bytes] = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return headers, start, buffer[end + 4 :]


def _header(first: int, length: int, mask_bit: int) -> bytes:
    if length < 126:
        return bytes((first, mask_bit | length))
    if length < 1 << 16:
        return struct.pack("!BBH", first, mask_bit | 126, length)
    return struct.pack("!BBQ", first, mask_bit | 127, length)


def server_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked final frame, as a server sends it."""
    return _header(0x80 | opcode, len(payload), 0) + payload


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked final frame, as a client must send it."""
    key = os.urandom(4)
    masked = bytes(byte ^ key[i & 3] for i, byte in enumerate(payload))
    return _header(0x80 | opcode, len(payload), 0x80) + key + masked


class FrameParser:
    """Splits a byte stream into ``(opcode, rsv1, payload)``; unmasks client frames.

    Control frames and whole text frames only: neither peer here fragments messages.
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> Iterator[tuple[int, bool, bytes]]:
        buffer = self._buffer + data if self._buffer else data
        offset, size = 0, len(buffer)
        while size - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            length, start = second & 0x7F, offset + 2
            if length == 126:
                if size - start < 2:
                    break
                (length,) = struct.unpack_from("!H", buffer, start)
                start += 2
            elif length == 127:
                if size - start < 8:
                    break
                (length,) = struct.unpack_from("!Q", buffer, start)
                start += 8
            masked = second & 0x80
            end = start + (4 if masked else 0) + length
            if end > size:
                break
            if masked:
                key = buffer[start : start + 4]
                payload = bytes(b ^ key[i & 3] for i, b in enumerate(buffer[start + 4 : end]))
            else:
                payload = buffer[start:end]
            offset = end
            yield first & 0x0F, bool(first & 0x40), payload
        self._buffer = buffer[offset:]
