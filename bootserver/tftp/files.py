"""Mapping the files TFTP serves into memory once (found by bootserver.boot_files.resolve), and
their DATA packets built once per block size.

A boot file is sent whole, block after block, to every machine that boots: each DATA packet is the
same bytes every time (a 4-byte header and a slice of the file). `Frames` holds them ready, with the
ACK each one expects, so answering an ACK is one comparison and one `send` of a prepared bytes
object: no header packing, no slicing, no scatter-gather. Frames cost their file's size again in
memory, so they are bounded: files up to 4 MiB (boot loaders are 0.1-2.5 MB) and without block
rollover, at most 64 MiB for all mapped files together (many block sizes or files asked at once
cannot grow the process), 64 KiB for generated content (built per transfer). The rest is sent from
the mapping with `sendmsg`, as before.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from dataclasses import dataclass, field

FRAMES_MAX_BYTES = 4 << 20  # files up to this size get their DATA packets built once per block size
FRAMES_MAX_BLOCKS = 65535  # and only when the block numbers do not roll over
FRAMES_BUDGET = 64 << 20  # bytes of frames for all mapped files at once
FRAMES_MAX_GENERATED = 64 << 10  # generated content (one transfer's own bytes) gets frames up to this size
_HEADER = struct.Struct("!HH").pack


@dataclass(frozen=True)
class Frames:
    """packets[n] is DATA block n (header and payload); acks[n] the ACK of block n (acks[0]: of the OACK)."""

    packets: list[bytes]
    acks: list[bytes]


def frames_cost(size: int, blksize: int) -> int | None:
    """Bytes the frames of a file take (payload, headers, objects), or None when it gets none."""
    blocks = size // blksize + 1  # a final short (maybe empty) block ends the transfer
    if size > FRAMES_MAX_BYTES or blocks > FRAMES_MAX_BLOCKS:
        return None
    return size + blocks * 120


def build_frames(view: memoryview, blksize: int) -> Frames:
    last = len(view) // blksize + 1
    packets = [b""]
    packets.extend(_HEADER(3, n) + view[(n - 1) * blksize:n * blksize] for n in range(1, last + 1))
    return Frames(packets, [_HEADER(4, n) for n in range(last + 1)])


@dataclass
class _Mapping:
    key: tuple
    mm: mmap.mmap | None
    view: memoryview
    refs: int = 0
    frames: dict[int, Frames | None] = field(default_factory=dict)  # by block size
    frames_bytes: int = 0  # counted against MappedFiles' budget


class Lease:
    """One session's hold on a file's bytes; `release()` exactly once when the session ends."""

    __slots__ = ("view", "_release", "_frames")

    def __init__(self, view: memoryview, release=None, frames=None) -> None:
        self.view = view
        self._release = release
        self._frames = frames  # blksize -> Frames | None, shared by a mapping's leases; None: generated

    def frames(self, blksize: int) -> Frames | None:
        """The DATA packets for this block size, or None (too large, or past the budget): send from `view`."""
        if self._frames is not None:
            return self._frames(blksize)
        cost = frames_cost(len(self.view), blksize)
        return build_frames(self.view, blksize) if cost is not None and len(self.view) <= FRAMES_MAX_GENERATED else None

    def release(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None


class MappedFiles:
    """mmaps shared by every session sending the same file (same inode, size and mtime).

    A file replaced by rename gets a fresh mapping; sessions still sending the old one keep it
    until they finish. A file truncated in place while being sent is not supported (SIGBUS), as
    with any mmap-based server: install boot files by rename.
    """

    def __init__(self, frames_budget: int = FRAMES_BUDGET) -> None:
        self._maps: dict[tuple, _Mapping] = {}
        self.frames_left = frames_budget

    def __len__(self) -> int:
        return len(self._maps)

    def open(self, path: str) -> Lease:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise FileNotFoundError(path)
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            mapping = self._maps.get(key)
            if mapping is None:
                mm = mmap.mmap(fd, st.st_size, prot=mmap.PROT_READ) if st.st_size else None
                mapping = _Mapping(key, mm, memoryview(mm) if mm is not None else memoryview(b""))
                self._maps[key] = mapping
        finally:
            os.close(fd)
        mapping.refs += 1
        return Lease(mapping.view, lambda: self._release(mapping), lambda blksize: self._frames(mapping, blksize))

    def _frames(self, mapping: _Mapping, blksize: int) -> Frames | None:
        if blksize not in mapping.frames:
            cost = frames_cost(len(mapping.view), blksize)
            if cost is None or cost > self.frames_left:
                mapping.frames[blksize] = None  # until the mapping goes: sent from the mapping
            else:
                mapping.frames[blksize] = build_frames(mapping.view, blksize)
                mapping.frames_bytes += cost
                self.frames_left -= cost
        return mapping.frames[blksize]

    def _release(self, mapping: _Mapping) -> None:
        mapping.refs -= 1
        if mapping.refs == 0:
            del self._maps[mapping.key]
            mapping.frames.clear()
            self.frames_left += mapping.frames_bytes
            mapping.view.release()
            if mapping.mm is not None:
                mapping.mm.close()
