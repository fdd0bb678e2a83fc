"""The Vagrant lab's Vagrantfile, checked by Debian's vagrant with the vagrant-libvirt plugin
(`vagrant validate` / `vagrant status`, which need no libvirtd; `vagrant up` runs in tests/e2e)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

VAGRANT_DIR = Path(__file__).resolve().parents[2] / "vagrant"


def vagrant(tmp_path, *args, **env):
    if shutil.which("vagrant") is None:
        pytest.fail("vagrant is not installed (scripts/apt-packages.txt lists vagrant and vagrant-libvirt)")
    return subprocess.run(["vagrant", *args], cwd=VAGRANT_DIR, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "VAGRANT_DEFAULT_PROVIDER": "libvirt",
                               "VAGRANT_HOME": str(tmp_path / "vagrant.d"), "VAGRANT_CHECKPOINT_DISABLE": "1",
                               "VAGRANT_DOTFILE_PATH": str(tmp_path / "dot"), **env})


@pytest.mark.parametrize("env", [
    {"BOOTSERVER_FIRMWARE": "bios", "BOOTSERVER_MACHINES": "2"},
    {"BOOTSERVER_FIRMWARE": "uefi", "BOOTSERVER_MACHINES": "3", "BOOTSERVER_DRIVER": "qemu"},
    {"BOOTSERVER_SERVER": "host", "BOOTSERVER_FIRMWARE": "bios,bios,uefi", "BOOTSERVER_DRIVER": "qemu",
     "BOOTSERVER_BOOT_NET": "10.89.0"},
])
def test_vagrantfile_validates(tmp_path, env):
    proc = vagrant(tmp_path, "validate", **env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout


def machines(tmp_path, **env) -> list[str]:
    proc = vagrant(tmp_path, "status", "--machine-readable", **env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line.split(",")[1] for line in proc.stdout.splitlines() if ",state," in line]


def test_host_mode_defines_only_the_pxe_machines(tmp_path):
    assert machines(tmp_path, BOOTSERVER_SERVER="host", BOOTSERVER_FIRMWARE="bios,uefi") == ["pxe1", "pxe2"]
    assert machines(tmp_path, BOOTSERVER_MACHINES="1") == ["server", "pxe1"]


@pytest.mark.parametrize("env,message", [
    ({"BOOTSERVER_FIRMWARE": "coreboot"}, "BOOTSERVER_FIRMWARE must be bios or uefi"),
    ({"BOOTSERVER_FIRMWARE": "bios,xen"}, "BOOTSERVER_FIRMWARE must be bios or uefi"),
    ({"BOOTSERVER_FIRMWARE": "bios,uefi", "BOOTSERVER_MACHINES": "3"}, "BOOTSERVER_FIRMWARE lists 2 machines"),
    ({"BOOTSERVER_DRIVER": "xen"}, "BOOTSERVER_DRIVER must be kvm or qemu"),
    ({"BOOTSERVER_SERVER": "cloud"}, "BOOTSERVER_SERVER must be vm or host"),
    ({"BOOTSERVER_BOOT_NET": "10.88.0.0/24"}, "BOOTSERVER_BOOT_NET must be three octets"),
])
def test_vagrantfile_refuses_bad_settings(tmp_path, env, message):
    proc = vagrant(tmp_path, "validate", **env)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr

