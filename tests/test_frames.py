"""Frame boundaries without sockets: any split of any frame sequence, against a rescan."""

from __future__ import annotations

import itertools
import os
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from sysstream.sansio import FrameBoundary, frame_header


def frame(payload_length: int, masked: bool = True, opcode: int = 0x2) -> bytes:
    if payload_length < 126:
        header = bytes([0x80 | opcode, (0x80 if masked else 0) | payload_length])
    elif payload_length < 1 << 16:
        header = bytes([0x80 | opcode, (0x80 if masked else 0) | 126])
        header += struct.pack("!H", payload_length)
    else:
        header = bytes([0x80 | opcode, (0x80 if masked else 0) | 127])
        header += struct.pack("!Q", payload_length)
    return header + (os.urandom(4) if masked else b"") + b"\x00" * payload_length


def ends_at_boundary(data: bytes) -> bool:
    """The reference: rescan everything from the start."""
    offset = 0
    while offset < len(data):
        parsed = frame_header(data, offset)
        if parsed is None:
            return False
        offset += parsed[0] + parsed[1]
    return offset == len(data)


def test_frame_header_reads_each_length_form() -> None:
    assert frame_header(frame(5)) == (6, 5)
    assert frame_header(frame(300)) == (8, 300)
    assert frame_header(frame(70_000)) == (14, 70_000)
    assert frame_header(frame(5, masked=False)) == (2, 5)
    assert frame_header(frame(70_000)[:13]) is None
    assert frame_header(b"\x82") is None


def test_a_pong_after_a_large_frame_is_seen_at_a_boundary() -> None:
    boundary = FrameBoundary()
    big = frame(70_000)
    for start in range(0, len(big), 1024):
        boundary.feed(big[start : start + 1024])
        assert boundary.at_boundary == (start + 1024 >= len(big))
    boundary.feed(frame(4, opcode=0xA)[:3])  # a pong's header split across reads
    assert not boundary.at_boundary
    boundary.feed(frame(4, opcode=0xA)[3:])
    assert boundary.at_boundary


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(
        st.tuples(
            st.sampled_from([0, 1, 4, 125, 126, 127, 300, 65535, 65536, 70_000]),
            st.sampled_from([0x1, 0x2, 0x9, 0xA]),  # text, binary, ping, pong
        )
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=300_000)),
)
def test_any_split_agrees_with_a_rescan(frames: list[tuple[int, int]], cuts: list[int]) -> None:
    stream = b"".join(frame(length, opcode=opcode) for length, opcode in frames)
    points = sorted({cut for cut in cuts if cut <= len(stream)} | {0, len(stream)})
    boundary = FrameBoundary()
    pings = 0
    for start, end in itertools.pairwise(points):
        pings += boundary.feed(stream[start:end])
        assert boundary.at_boundary == ends_at_boundary(stream[:end]), (start, end)
    assert pings == sum(opcode in (0x9, 0xA) for _, opcode in frames)
