"""The dynamic loader and shared libraries a program needs, found inside a root folder.

The test OS copies each program with what the dynamic loader would map for it. `ldd` can only
answer for the host's own architecture (it runs the loader), so this reads the ELF headers
instead (PT_INTERP, DT_NEEDED, DT_RUNPATH) and searches the loader's default folders under a
root: `/` for the x86 test OS, the unpacked Debian arm64 packages for the arm64 one.
Symbolic links are followed inside the root, never out of it.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: e_machine -> Debian's multiarch triplet (the loader's default library folders).
TRIPLETS = {62: "x86_64-linux-gnu", 183: "aarch64-linux-gnu"}
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NEEDED, DT_STRTAB, DT_RPATH, DT_RUNPATH = 1, 5, 15, 29
MAX_LINKS = 40  # as the kernel's symlink limit: a loop is an error, not a hang


class ElfError(RuntimeError):
    pass


@dataclass(frozen=True)
class ElfInfo:
    machine: int
    interpreter: str | None
    needed: tuple[str, ...]
    runpath: tuple[str, ...]


def read_elf(data: bytes, name: str = "program") -> ElfInfo:
    """The dynamic-linking facts of a 64-bit little-endian ELF file (what Debian ships for both arches)."""
    if data[:4] != b"\x7fELF" or data[4:6] != b"\x02\x01":
        raise ElfError(f"{name}: not a 64-bit little-endian ELF file")
    try:
        return _dynamic_facts(data, name)
    except (struct.error, ValueError, UnicodeDecodeError) as exc:  # offsets past the end, no NUL
        raise ElfError(f"{name}: truncated or malformed ELF file ({exc})") from None


def _dynamic_facts(data: bytes, name: str) -> ElfInfo:
    machine, = struct.unpack_from("<H", data, 18)
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    loads, dynamic, interpreter = [], None, None
    for i in range(phnum):
        p_type, _, offset, vaddr, _, filesz, _, _ = struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)
        if p_type == PT_LOAD:
            loads.append((vaddr, offset, filesz))
        elif p_type == PT_DYNAMIC:
            dynamic = (offset, filesz)
        elif p_type == PT_INTERP:
            interpreter = data[offset:offset + filesz].split(b"\0")[0].decode()
    if dynamic is None:
        return ElfInfo(machine, interpreter, (), ())
    entries = [struct.unpack_from("<qQ", data, dynamic[0] + i) for i in range(0, dynamic[1], 16)]
    strtab = next((value for tag, value in entries if tag == DT_STRTAB), None)
    file_offset = next((off + strtab - vaddr for vaddr, off, size in loads if vaddr <= (strtab or -1) < vaddr + size), None)
    if file_offset is None:
        raise ElfError(f"{name}: dynamic string table outside the loaded segments")

    def string(index: int) -> str:
        return data[file_offset + index:data.index(b"\0", file_offset + index)].decode()

    needed = tuple(string(v) for tag, v in entries if tag == DT_NEEDED)
    paths = [string(v) for tag, v in entries if tag in (DT_RUNPATH, DT_RPATH)]
    return ElfInfo(machine, interpreter, needed, tuple(p for path in paths for p in path.split(":") if p))


def resolve_inside(root: Path, path: str) -> Path:
    """The file `path` names when `root` is `/`: every symbolic link (absolute ones too) is
    followed inside root. Raises FileNotFoundError if it is missing."""
    parts, done, links = list(PurePosixPath("/", path).parts[1:]), PurePosixPath("/"), 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            done = done.parent
            continue
        current = root / str(done / part).lstrip("/")
        if current.is_symlink():
            links += 1
            if links > MAX_LINKS:
                raise ElfError(f"{root}{done / part}: too many levels of symbolic links")
            target = PurePosixPath(os.readlink(current))
            parts = list(target.parts[1:] if target.is_absolute() else target.parts) + parts
            done = PurePosixPath("/") if target.is_absolute() else done
        else:
            done = done / part
    found = root / str(done).lstrip("/")
    if not found.is_file():
        raise FileNotFoundError(found)
    return found


def shared_libraries(root: Path, program: str) -> dict[str, Path]:
    """image path (e.g. "lib/aarch64-linux-gnu/libc.so.6") -> file under root, for the dynamic
    loader and every library `program` (a path inside root) needs, transitively."""
    info = read_elf(resolve_inside(root, program).read_bytes(), f"{root}:{program}")
    triplet = TRIPLETS.get(info.machine)
    if triplet is None:
        raise ElfError(f"{program}: ELF machine {info.machine} is not one the lab builds for")
    system_dirs = (f"/lib/{triplet}", f"/usr/lib/{triplet}", "/lib", "/usr/lib")
    found: dict[str, Path] = {}
    if info.interpreter:
        try:
            found[info.interpreter.lstrip("/")] = resolve_inside(root, info.interpreter)
        except FileNotFoundError:
            raise ElfError(f"{program}: its loader {info.interpreter} not found under {root}") from None
    pending = [(name, info.runpath, str(PurePosixPath(program).parent)) for name in info.needed]
    # libc names the loader too; it is mapped once, as the interpreter
    seen = {PurePosixPath(info.interpreter).name} if info.interpreter else set()
    while pending:
        name, runpath, origin = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for folder in [p.replace("$ORIGIN", origin) for p in runpath] + list(system_dirs):
            image_path = f"{folder}/{name}"
            try:
                path = resolve_inside(root, image_path)
            except FileNotFoundError:
                continue
            library = read_elf(path.read_bytes(), str(path))
            if library.machine != info.machine:
                continue  # the loader skips a library of another architecture
            found[image_path.lstrip("/")] = path
            pending += [(n, library.runpath, folder) for n in library.needed]
            break
        else:
            raise ElfError(f"{program}: library {name} not found under {root} (its Debian package is not installed)")
    return found
