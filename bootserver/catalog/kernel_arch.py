"""Which CPU a kernel is for, so validation can catch an arm64 machine pointed at an amd64 kernel.

Two ways to tell: the file's header when the asset is already in the assets folder (the PE header
of an EFI-stub kernel names its machine; an arm64 Image carries `ARM\\x64` at byte 56, an x86
bzImage `HdrS` at 0x202; gzip'd kernels are inflated just far enough), else the path's words
(`flatcar/arm64/...`, `amd64`, `x86_64`, `aarch64`). The header is sure; the name is a hint.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

#: catalog arch (model.ARCHES) -> CPU family
FAMILY = {"x86_64-bios": "amd64", "x86_64-efi": "amd64", "i386-efi": "i386", "arm64-efi": "arm64"}
_NAME_WORDS = {"amd64": "amd64", "x86_64": "amd64", "x86-64": "amd64", "x64": "amd64", "arm64": "arm64",
               "aarch64": "arm64", "aa64": "arm64"}
_PE_MACHINES = {0x8664: "amd64", 0xAA64: "arm64", 0x14C: "i386"}
HEADER_BYTES = 4096


def from_name(ref: str) -> str | None:
    """amd64 / arm64 from the words of an asset path, or None (no word, or both)."""
    low = ref.lower()
    found = {family for word, family in _NAME_WORDS.items()
             if re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", low)}
    return found.pop() if len(found) == 1 else None


def from_header(data: bytes) -> str | None:
    """amd64 / arm64 / i386 from a kernel's first bytes, or None when it is not a kernel we know."""
    if data[:2] == b"\x1f\x8b":  # gzip'd (Debian's and Flatcar's arm64 vmlinuz can be)
        try:
            data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, HEADER_BYTES)
        except zlib.error:
            return None
    if len(data) >= 60 and data[56:60] == b"ARM\x64":
        return "arm64"
    if data[:2] == b"MZ" and len(data) >= 0x40:
        pe = struct.unpack_from("<I", data, 0x3C)[0]
        if data[pe:pe + 4] == b"PE\0\0" and len(data) >= pe + 6:
            return _PE_MACHINES.get(struct.unpack_from("<H", data, pe + 4)[0])
    if data[0x202:0x206] == b"HdrS":
        return "amd64"
    return None


def from_file(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            return from_header(f.read(HEADER_BYTES))
    except OSError:
        return None
