"""Read what an installer left on a lab disk image, without mounting it.

The GPT is parsed here (header and entry array, both CRC-checked); the ext4 filesystem inside a
partition is read with `debugfs` from e2fsprogs at the partition's byte offset. Nothing needs
loop devices or kernel partition mapping, so it works in containers and CI runners too.
"""

from __future__ import annotations

import re
import struct
import subprocess
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512
GPT_SIGNATURE = b"EFI PART"
MAX_ENTRIES = 1024  # the bound on what we read from an untrusted header
ESP_TYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
DEBUGFS_TIMEOUT = 60


class DiskReadError(RuntimeError):
    pass


@dataclass(frozen=True)
class Partition:
    number: int
    name: str
    type_guid: str
    guid: str
    first_lba: int
    last_lba: int

    @property
    def offset(self) -> int:
        return self.first_lba * SECTOR

    @property
    def size(self) -> int:
        return (self.last_lba - self.first_lba + 1) * SECTOR


def read_gpt(image: Path) -> list[Partition] | None:
    """The partitions of the primary GPT, by number; None when the disk has no GPT at all."""
    with open(image, "rb") as f:
        f.seek(SECTOR)
        header = f.read(SECTOR)
        if header[:8] != GPT_SIGNATURE:
            return None
        (size,) = struct.unpack_from("<I", header, 12)
        if not 92 <= size <= SECTOR:
            raise DiskReadError(f"GPT header size {size} out of range")
        crc = struct.unpack_from("<I", header, 16)[0]
        if zlib.crc32(header[:16] + b"\0\0\0\0" + header[20:size]) != crc:
            raise DiskReadError("GPT header CRC mismatch")
        entries_lba, count, entry_size, entries_crc = struct.unpack_from("<QIII", header, 72)
        if count > MAX_ENTRIES or entry_size < 128 or entry_size > 4096:
            raise DiskReadError(f"GPT entry array out of range ({count} x {entry_size})")
        f.seek(entries_lba * SECTOR)
        array = f.read(count * entry_size)
    if zlib.crc32(array) != entries_crc:
        raise DiskReadError("GPT entry array CRC mismatch")
    partitions = []
    for index in range(count):
        entry = array[index * entry_size:(index + 1) * entry_size]
        if entry[:16] == b"\0" * 16:
            continue
        first, last = struct.unpack_from("<QQ", entry, 32)
        name = entry[56:128].decode("utf-16-le").split("\0", 1)[0]
        partitions.append(Partition(index + 1, name, str(uuid.UUID(bytes_le=entry[:16])),
                                    str(uuid.UUID(bytes_le=entry[16:32])), first, last))
    return partitions


@dataclass(frozen=True)
class Entry:
    """One directory entry as debugfs lists it: type and permission bits, owner, size."""

    path: str
    mode: int
    uid: int
    gid: int
    size: int

    @property
    def kind(self) -> str:
        return {0o040000: "dir", 0o100000: "file", 0o120000: "link"}.get(self.mode & 0o170000, "other")

    @property
    def permissions(self) -> int:
        return self.mode & 0o7777


class Ext4Reader:
    """An ext4 filesystem inside a disk image, read through debugfs (read-only)."""

    def __init__(self, image: Path, offset: int = 0):
        self.device = f"{image}?offset={offset}" if offset else str(image)

    def _debugfs(self, request: str) -> bytes:
        if "\n" in request:
            raise DiskReadError("one debugfs request at a time")
        try:
            proc = subprocess.run(["debugfs", "-R", request, self.device], capture_output=True,
                                  timeout=DEBUGFS_TIMEOUT)
        except FileNotFoundError:
            raise DiskReadError("debugfs not found: install e2fsprogs") from None
        error = proc.stderr.decode(errors="replace")
        if proc.returncode != 0 or re.search(r"(?m)^(?!debugfs \d).*(not found|Bad magic|No such)", error):
            raise DiskReadError(f"debugfs {request!r}: {error.strip()}")
        return proc.stdout

    def label(self) -> str:
        match = re.search(rb"(?m)^Filesystem volume name:\s*(.*)$", self._debugfs("stats -h"))
        if not match:
            raise DiskReadError("no ext4 superblock")
        return match.group(1).decode().strip().replace("<none>", "")

    def listdir(self, path: str) -> list[Entry]:
        """The entries of directory `path` (without . and ..)."""
        entries = []
        for line in self._debugfs(f"ls -p {path}").decode(errors="replace").splitlines():
            fields = line.split("/")
            if len(fields) < 7 or fields[5] in (".", ".."):
                continue
            entries.append(Entry(path.rstrip("/") + "/" + fields[5], int(fields[2], 8), int(fields[3]),
                                 int(fields[4]), int(fields[6] or 0)))
        return entries

    def walk(self, path: str = "/") -> dict[str, Entry]:
        """Every entry below `path`, by absolute path (lost+found left out)."""
        found: dict[str, Entry] = {}
        pending = [path]
        while pending:
            for entry in self.listdir(pending.pop()):
                if entry.path == "/lost+found":
                    continue
                found[entry.path] = entry
                if entry.kind == "dir":
                    pending.append(entry.path)
        return found

    def read(self, path: str) -> bytes:
        return self._debugfs(f"cat {path}")

    def link_target(self, path: str) -> str:
        text = self._debugfs(f"stat {path}").decode(errors="replace")
        match = re.search(r'Fast link dest: "(.*)"', text)
        if match:
            return match.group(1)
        return self.read(path).decode()  # a slow symlink keeps its target in a data block
