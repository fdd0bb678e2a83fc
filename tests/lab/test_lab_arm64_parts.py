"""The arm64 lab parts without a network: the test OS built from Debian's arm64 packages (its
programs are run by tests/lab/test_testos_ignition.py), the
AArch64 EFI disk loader booted by real AAVMF, and the QEMU command line."""

import gzip
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from bootserver.lab import testos
from bootserver.lab.disk import DISK_BOOT_MARKER, ESP_START, SECTOR, create_disk, disk_payload
from bootserver.lab.qemu import AAVMF_CODE, AAVMF_VARS, Machine

from tests.lab.disk_boot import console_until_disk_marker

EM_AARCH64 = 183


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return testos.build(tmp_path_factory.mktemp("cache"), testos.ARM64)


def test_arm64_test_os_is_built_from_the_arm64_packages(built, tmp_path):
    kernel, initrd = built.kernel, built.initrd
    image = gzip.decompress(kernel.read_bytes())
    assert image[56:60] == b"ARM\x64"  # the arm64 Image header's magic (Documentation/arm64/booting)
    subprocess.run(["cpio", "-id", "--quiet"], input=gzip.decompress(initrd.read_bytes()), cwd=tmp_path, check=True)
    for program in ("bin/busybox", "usr/bin/ignition", "usr/lib/systemd/systemd", "lib/ld-linux-aarch64.so.1",
                    "lib/aarch64-linux-gnu/libc.so.6"):
        binary = (tmp_path / program).read_bytes()
        assert binary[:4] == b"\x7fELF" and struct.unpack_from("<H", binary, 18)[0] == EM_AARCH64, program
    order = (tmp_path / "lib/modules/order").read_text().split()
    assert order.index("virtio_pci_modern_dev") < order.index("virtio_pci")
    assert order.index("failover") < order.index("net_failover") < order.index("virtio_net")
    for name in order:
        ko = (tmp_path / f"lib/modules/{name}.ko").read_bytes()
        assert struct.unpack_from("<H", ko, 18)[0] == EM_AARCH64, name
    assert os.access(tmp_path / "init", os.X_OK)
    subprocess.run(["busybox", "sh", "-n", str(tmp_path / "init")], check=True)  # shell syntax
    esp = (tmp_path / "disk-payload.img").read_bytes()[ESP_START * SECTOR:]
    assert b"BOOTAA64EFI" in esp and b"BOOTX64 EFI" not in esp
    assert testos.build(kernel.parent.parent, testos.ARM64) == built  # cached by content


def test_arm64_disk_boots_in_aavmf_and_prints_the_marker(tmp_path):
    """Real AAVMF, no network: the firmware's removable-media path runs our AArch64 EFI application."""
    disk = create_disk(tmp_path / "disk.img")
    with open(disk, "r+b") as f:
        f.write(disk_payload("aa64"))
    shutil.copyfile(AAVMF_VARS, tmp_path / "vars.fd")
    log = tmp_path / "serial.log"
    argv = ["qemu-system-aarch64", "-machine", "virt", "-cpu", "cortex-a57", "-accel", "tcg", "-m", "256",
            "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none", "-serial", f"file:{log}",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={AAVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={tmp_path / 'vars.fd'}",
            "-drive", f"if=none,id=d0,format=raw,file={disk}", "-device", "virtio-blk-pci,drive=d0,bootindex=1"]
    assert f"{DISK_BOOT_MARKER} firmware=uefi" in console_until_disk_marker(argv, log, 120)


def test_arm64_machine_on_the_qemu_command_line(tmp_path):
    argv = Machine(name="m", mac="52:54:00:77:07:01", firmware="arm64-uefi", disk=Path("d"), workdir=tmp_path,
                   tap="tap0").command()
    line = " ".join(argv)
    assert argv[0] == "qemu-system-aarch64" and "-machine virt -cpu cortex-a57" in line and "-accel tcg" in line
    assert f"file={AAVMF_CODE}" in line and "virtio-net-pci" in line and "virtio-blk-pci" in line
    assert "IPv4PXESupport" not in line  # PXE (arch 11) stays


def test_arm64_http_machine_has_no_pxe_entry(tmp_path):
    """AAVMF reads the same fw_cfg knob as OVMF: without its PXE entry, HTTPv4 is its network entry."""
    argv = Machine(name="m", mac="52:54:00:77:08:01", firmware="arm64-uefi-http", disk=Path("d"), workdir=tmp_path,
                   tap="tap0").command()
    line = " ".join(argv)
    assert argv[0] == "qemu-system-aarch64" and f"file={AAVMF_CODE}" in line
    assert "-fw_cfg name=opt/org.tianocore/IPv4PXESupport,string=no" in line
