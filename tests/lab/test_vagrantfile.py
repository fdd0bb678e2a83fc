"""The Vagrant lab's Vagrantfile, checked by Debian's vagrant with the vagrant-libvirt plugin."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

VAGRANT_DIR = Path(__file__).resolve().parents[2] / "vagrant"


def validate(tmp_path, **env):
    if shutil.which("vagrant") is None:
        pytest.fail("vagrant is not installed (scripts/apt-packages.txt lists vagrant and vagrant-libvirt)")
    return subprocess.run(["vagrant", "validate"], cwd=VAGRANT_DIR, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "VAGRANT_DEFAULT_PROVIDER": "libvirt",
                               "VAGRANT_HOME": str(tmp_path / "vagrant.d"), "VAGRANT_CHECKPOINT_DISABLE": "1",
                               **env})


@pytest.mark.parametrize("firmware,machines", [("bios", "2"), ("uefi", "3")])
def test_vagrantfile_validates(tmp_path, firmware, machines):
    proc = validate(tmp_path, BOOTSERVER_FIRMWARE=firmware, BOOTSERVER_MACHINES=machines)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout


def test_vagrantfile_refuses_unknown_firmware(tmp_path):
    proc = validate(tmp_path, BOOTSERVER_FIRMWARE="coreboot")
    assert proc.returncode != 0
    assert "BOOTSERVER_FIRMWARE must be bios or uefi" in proc.stdout + proc.stderr
