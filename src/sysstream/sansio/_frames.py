"""Where client WebSocket frames begin and end in a byte stream, followed in linear time.

The fast path reads a lone pong without the full parser, which is only safe at a frame
boundary. :class:`FrameBoundary` is fed every byte after the handshake and remembers the
bytes still owed by the frame in progress (and at most one unfinished header), so each read
costs its own length, never the length of the message so far.
"""

from __future__ import annotations

__all__ = ["MAX_HEADER", "FrameBoundary", "frame_header"]

MAX_HEADER = 14  # 2 bytes + 8 of extended length + 4 of mask
PING, PONG = 0x9, 0xA


def frame_header(data: bytes | bytearray, offset: int = 0) -> tuple[int, int] | None:
    """(header length, payload length) of the frame starting at ``offset``, or None while
    ``data`` does not yet hold the whole header (RFC 6455 §5.2)."""
    available = len(data) - offset
    if available < 2:
        return None
    second = data[offset + 1]
    length, header = second & 0x7F, 2
    if length >= 126:
        width = 2 if length == 126 else 8
        if available < 2 + width:
            return None
        length = int.from_bytes(data[offset + 2 : offset + 2 + width], "big")
        header += width
    if second & 0x80:
        header += 4
    if available < header:
        return None
    return header, length


class FrameBoundary:
    """Follows frame boundaries across reads: state is an int and at most 13 bytes.

    :meth:`feed` also counts the pings and pongs whose headers it completes, so a caller
    can bound them before any parser spends time on them.
    """

    __slots__ = ("_head", "_remaining")

    def __init__(self) -> None:
        self._remaining = 0  # bytes of the frame in progress not yet seen
        self._head = b""  # the start of a header split across reads

    @property
    def at_boundary(self) -> bool:
        """Whether everything fed so far ends exactly at the end of a frame."""
        return not self._remaining and not self._head

    def feed(self, data: bytes) -> int:
        """Follow ``data``; returns how many ping and pong headers it completed."""
        size = len(data)
        if self._remaining >= size:
            self._remaining -= size
            return 0
        offset, self._remaining, pings = self._remaining, 0, 0
        if self._head:
            # Finish the split header from at most MAX_HEADER new bytes (never more).
            joined = self._head + data[offset : offset + MAX_HEADER]
            parsed = frame_header(joined)
            if parsed is None:
                self._head = joined
                return 0
            header, length = parsed
            pings += joined[0] & 0x0F in (PING, PONG)
            offset += header - len(self._head)
            self._head = b""
            if offset + length > size:
                self._remaining = offset + length - size
                return pings
            offset += length
        while offset < size:
            parsed = frame_header(data, offset)
            if parsed is None:
                self._head = data[offset:]
                return pings
            header, length = parsed
            pings += data[offset] & 0x0F in (PING, PONG)
            end = offset + header + length
            if end > size:
                self._remaining = end - size
                return pings
            offset = end
        return pings
