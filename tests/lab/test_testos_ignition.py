"""The test OS initramfs carries real Ignition and everything its stages run, complete with the
shared libraries each program needs: every program starts inside the unpacked initramfs (chroot),
where only what was packed exists."""

from __future__ import annotations

import gzip
import os
import subprocess

import pytest

from bootserver.lab import testos, testos_ignition

#: program -> an argument that makes it print its version or usage and exit
PROGRAMS = {"usr/bin/ignition": "-version", "usr/lib/systemd/systemd": "--version",
            "usr/bin/udevadm": "--version",
            "usr/sbin/sgdisk": "--version", "usr/sbin/mkfs.ext4": "-V", "usr/sbin/mke2fs": "-V", "usr/sbin/wipefs": "--version",
            "usr/sbin/useradd": "--help", "usr/sbin/groupadd": "--help", "usr/sbin/usermod": "--help",
            "usr/sbin/setfiles": "-h", "usr/lib/systemd/systemd-udevd": "--version"}


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    built = testos.build(tmp_path_factory.mktemp("cache"))
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["cpio", "-id", "--quiet"], input=gzip.decompress(built.initrd.read_bytes()), cwd=root, check=True)
    return root


def test_every_program_ignitions_stages_call_is_packed(unpacked):
    assert set(PROGRAMS) >= set(testos_ignition.PROGRAMS) | {"usr/sbin/mkfs.ext4"}


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_program_runs_with_only_the_packed_libraries(unpacked, program):
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")
    proc = subprocess.run(["chroot", str(unpacked), f"/{program}", PROGRAMS[program]], capture_output=True,
                          text=True, timeout=60)
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
