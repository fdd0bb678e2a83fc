"""Mapping the files TFTP serves into memory once (found by bootserver.boot_files.resolve)."""

from __future__ import annotations

import mmap
import os
import stat
from dataclasses import dataclass


@dataclass
class _Mapping:
    key: tuple
    mm: mmap.mmap | None
    view: memoryview
    refs: int = 0


class Lease:
    """One session's hold on a file's bytes; `release()` exactly once when the session ends."""

    __slots__ = ("view", "_release")

    def __init__(self, view: memoryview, release=None) -> None:
        self.view = view
        self._release = release

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

    def __init__(self) -> None:
        self._maps: dict[tuple, _Mapping] = {}

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
        return Lease(mapping.view, lambda: self._release(mapping))

    def _release(self, mapping: _Mapping) -> None:
        mapping.refs -= 1
        if mapping.refs == 0:
            del self._maps[mapping.key]
            mapping.view.release()
            if mapping.mm is not None:
                mapping.mm.close()
