"""The prepared DATA packets (files.py `Frames`): right bytes, and bounded memory."""

from __future__ import annotations

import struct

from bootserver.tftp.files import FRAMES_MAX_GENERATED, Lease, MappedFiles, frames_cost


def test_frames_are_the_file_block_by_block_with_their_acks(files):
    mapped = MappedFiles()
    lease = mapped.open(str(files / "f100k"))
    try:
        frames = lease.frames(1468)
        data = (files / "f100k").read_bytes()
        assert len(frames.packets) == len(frames.acks) == 100_000 // 1468 + 2
        for n, packet in enumerate(frames.packets[1:], start=1):
            assert packet[:4] == struct.pack("!HH", 3, n)
            assert packet[4:] == data[(n - 1) * 1468:n * 1468]
        assert len(frames.packets[-1]) - 4 == 100_000 % 1468  # the short block that ends it
        assert frames.acks[0] == b"\0\x04\0\0" and frames.acks[5] == b"\0\x04\0\x05"
        assert mapped.open(str(files / "f100k")).frames(1468) is frames  # built once, shared
    finally:
        lease.release()


def test_frames_within_a_budget_and_given_back(files):
    cost = frames_cost(100_000, 512)
    mapped = MappedFiles(frames_budget=cost + 10)
    first = mapped.open(str(files / "f100k"))
    assert first.frames(512) is not None and mapped.frames_left == 10
    other = mapped.open(str(files / "f1m"))
    assert other.frames(1468) is None  # past the budget: sent from the mapping
    assert first.frames(1024) is None  # another block size of the same file too
    first.release()
    assert mapped.frames_left == cost + 10  # the mapping went, its frames with it
    other.release()


def test_no_frames_for_large_or_rolling_over_files(files):
    mapped = MappedFiles()
    big, rolling = mapped.open(str(files / "f64m")), mapped.open(str(files / "rollover"))
    assert big.frames(1468) is None and rolling.frames(512) is None
    big.release()
    rolling.release()


def test_generated_content_gets_frames_only_when_small():
    small = Lease(memoryview(b"#!ipxe\n" * 100))
    assert b"".join(p[4:] for p in small.frames(512).packets[1:]) == b"#!ipxe\n" * 100
    assert Lease(memoryview(bytes(FRAMES_MAX_GENERATED + 1))).frames(1468) is None
