"""Both test OS initramfses (x86 and arm64) carry real Ignition and everything its stages run,
complete with the shared libraries each program needs: every program starts inside the unpacked
initramfs, where only what was packed exists (x86: chroot; arm64: qemu-aarch64 with the initramfs
as its only library root)."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess

import pytest

from bootserver.lab import testos, testos_ignition

#: program -> an argument that makes it print its version or usage and exit
PROGRAMS = {"usr/bin/ignition": "-version", "usr/lib/systemd/systemd": "--version",
            "usr/bin/udevadm": "--version",
            "usr/sbin/sgdisk": "--version", "usr/sbin/mkfs.ext4": "-V", "usr/sbin/mke2fs": "-V", "usr/sbin/wipefs": "--version",
            "usr/sbin/useradd": "--help", "usr/sbin/groupadd": "--help", "usr/sbin/usermod": "--help",
            "usr/sbin/setfiles": "-h", "usr/lib/systemd/systemd-udevd": "--version"}


ELF_MACHINE = {"testos": 62, "testos-arm64": 183}  # EM_X86_64, EM_AARCH64


@pytest.fixture(scope="module", params=[testos.X86, testos.ARM64], ids=["x86", "arm64"])
def flavor(request):
    return request.param


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory, flavor):
    built = testos.build(tmp_path_factory.mktemp("cache"), flavor)
    root = tmp_path_factory.mktemp(flavor.name)
    subprocess.run(["cpio", "-id", "--quiet"], input=gzip.decompress(built.initrd.read_bytes()), cwd=root, check=True)
    return root


def run_inside(root, flavor, program, argument):
    """Start `program` with only the initramfs's files as its system: x86 in a chroot; arm64 under
    qemu-aarch64, whose -L makes the initramfs the root for the loader and every library."""
    if flavor is testos.X86:
        argv = ["chroot", str(root), f"/{program}", argument]
    else:
        if shutil.which("qemu-aarch64") is None:
            pytest.fail("qemu-aarch64 not found: install qemu-user")
        argv = ["qemu-aarch64", "-L", str(root), str(root / program), argument]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_every_program_ignitions_stages_call_is_packed(unpacked):
    assert set(PROGRAMS) >= set(testos_ignition.PROGRAMS) | {"usr/sbin/mkfs.ext4"}


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_program_runs_with_only_the_packed_libraries(unpacked, flavor, program):
    if os.geteuid() != 0 and flavor is testos.X86:
        pytest.skip("chroot needs root")
    binary = (unpacked / program).resolve()
    assert struct.unpack_from("<H", binary.read_bytes(), 18)[0] == ELF_MACHINE[flavor.name], program
    proc = run_inside(unpacked, flavor, program, PROGRAMS[program])
    output = proc.stdout + proc.stderr
    assert "error while loading shared libraries" not in output and "not found" not in output, output
    assert proc.returncode in (0, 1, 2, 255) and output.strip(), (proc.returncode, output)


def test_installer_scripts_are_valid_shell(unpacked):
    for script in ("init", "testos-install", "testos-ignition"):
        assert os.access(unpacked / script, os.X_OK)
        subprocess.run(["busybox", "sh", "-n", str(unpacked / script)], check=True)
    units = unpacked / "etc/systemd/system"
    assert "Requires=testos-install.service" in (units / "default.target").read_text()
    assert "ExecStart=/testos-install" in (units / "testos-install.service").read_text()
    for module in ("ext4", "crc32c_generic", "jbd2"):
        assert (unpacked / f"lib/modules/{module}.ko").exists()
