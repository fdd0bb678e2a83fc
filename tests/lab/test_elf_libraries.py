"""Finding a program's loader and libraries inside a root folder, from its ELF headers: against
Debian's real binaries (the host's and the unpacked arm64 packages) and a made-up root."""

import os
import subprocess
from pathlib import Path

import pytest

from bootserver.config import ARM64_ROOT
from bootserver.lab.elf_libraries import ElfError, read_elf, resolve_inside, shared_libraries


def ldd(program: str) -> set[str]:
    """What the host's dynamic loader maps for a host program (the reference for root `/`)."""
    out = subprocess.run(["ldd", program], check=True, capture_output=True, text=True).stdout
    paths = set()
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts and parts[-2].startswith("/"):
            paths.add(parts[-2].lstrip("/"))
        elif parts and parts[0].startswith("/"):
            paths.add(parts[0].lstrip("/"))
    return paths


@pytest.mark.parametrize("program", ["/lib/systemd/systemd", "/sbin/mke2fs", "/usr/sbin/useradd"])
def test_host_programs_need_what_ldd_says(program):
    assert set(shared_libraries(Path("/"), program)) == ldd(program)


def test_arm64_systemd_needs_the_arm64_loader_libc_and_its_runpath_library():
    found = shared_libraries(ARM64_ROOT, "/lib/systemd/systemd")
    assert "lib/ld-linux-aarch64.so.1" in found  # PT_INTERP, as the kernel asks for it
    assert "lib/aarch64-linux-gnu/libc.so.6" in found
    assert "usr/lib/aarch64-linux-gnu/systemd/libsystemd-shared-252.so" in found  # from DT_RUNPATH
    for path in found.values():
        assert path.resolve().is_relative_to(ARM64_ROOT.resolve())
        assert read_elf(path.read_bytes()).machine == 183  # EM_AARCH64


def test_symbolic_links_stay_inside_the_root(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib/real.so.1.2").write_bytes(b"inside")
    os.symlink("real.so.1.2", tmp_path / "lib/real.so.1")
    os.symlink("/lib/real.so.1", tmp_path / "lib/absolute.so")  # absolute: means <root>/lib/...
    os.symlink("../../../../../etc/hostname", tmp_path / "lib/escape")
    assert resolve_inside(tmp_path, "/lib/absolute.so").read_bytes() == b"inside"
    with pytest.raises(FileNotFoundError):
        resolve_inside(tmp_path, "/lib/escape")  # ".." stops at the root, where there is no etc/
    os.symlink("loop", tmp_path / "lib/loop")
    with pytest.raises(ElfError, match="symbolic links"):
        resolve_inside(tmp_path, "/lib/loop")


def test_a_missing_library_names_it(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/prog").write_bytes(Path("/sbin/mke2fs").resolve().read_bytes())
    with pytest.raises(ElfError, match="loader /lib64/ld-linux-x86-64.so.2 not found"):
        shared_libraries(tmp_path, "/bin/prog")
    (tmp_path / "lib64").mkdir()
    (tmp_path / "lib64/ld-linux-x86-64.so.2").write_bytes(Path("/lib64/ld-linux-x86-64.so.2").resolve().read_bytes())
    with pytest.raises(ElfError, match=r"/bin/prog: library lib\S+\.so\S* not found under"):
        shared_libraries(tmp_path, "/bin/prog")
    (tmp_path / "bin/cut").write_bytes(Path("/sbin/mke2fs").resolve().read_bytes()[:200])
    with pytest.raises(ElfError, match="truncated or malformed"):
        shared_libraries(tmp_path, "/bin/cut")
    (tmp_path / "bin/text").write_text("#!/bin/sh\n")
    with pytest.raises(ElfError, match="not a 64-bit little-endian ELF"):
        shared_libraries(tmp_path, "/bin/text")
