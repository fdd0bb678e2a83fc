"""The lab's parts without a network boot: test OS image, boot sector, catalog, namespaces."""

import gzip
import os
import secrets
import shutil
import subprocess
import sys

import pytest

from bootserver.lab import catalog as lab_catalog
from bootserver.lab import testos
from bootserver.lab.disk import (DISK_BOOT_MARKER, MARKER_SECTOR, boot_sector, create_disk, disk_payload,
                                 read_install_marker)
from bootserver.lab.lab import MachineSpec
from bootserver.lab.netns import Topology, in_netns, list_netns
from bootserver.lab.qemu import OVMF_CODE, OVMF_VARS

from tests.lab.disk_boot import console_until_disk_marker


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return testos.build(tmp_path_factory.mktemp("cache"))


def test_initramfs_is_a_cpio_the_kernel_can_unpack(built, tmp_path):
    listing = subprocess.run(["cpio", "-t"], input=gzip.decompress(built.initrd.read_bytes()),
                             capture_output=True, check=True).stdout.decode().split()
    for name in ("init", "bin/busybox", "bin/sh", "dev/console", "udhcpc.script", "disk-payload.img",
                 "lib/modules/order", "lib/modules/virtio_net.ko", "lib/modules/virtio_blk.ko"):
        assert name in listing
    subprocess.run(["cpio", "-id", "--quiet"], input=gzip.decompress(built.initrd.read_bytes()), cwd=tmp_path,
                   check=True)
    order = (tmp_path / "lib/modules/order").read_text().split()
    assert order.index("virtio_ring") < order.index("virtio") < order.index("virtio_net")
    assert order.index("failover") < order.index("net_failover") < order.index("virtio_net")
    assert os.access(tmp_path / "init", os.X_OK)
    subprocess.run(["busybox", "sh", "-n", str(tmp_path / "init")], check=True)  # shell syntax


def test_build_is_cached_by_content(built):
    again = testos.build(built.kernel.parent.parent)
    assert again == built
    assert built.kernel.read_bytes()[:2] == b"MZ"  # an EFI-stub kernel: boots on BIOS and UEFI


def boot_disk(tmp_path, firmware):
    """Boot QEMU from an installed lab disk only (no network); return the serial console text."""
    disk = create_disk(tmp_path / "disk.img")
    with open(disk, "r+b") as f:
        f.write(disk_payload())
    log = tmp_path / "serial.log"
    argv = ["qemu-system-x86_64", "-nodefaults", "-no-user-config", "-accel", "tcg", "-display", "none",
            "-monitor", "none", "-serial", f"file:{log}", "-drive", f"if=none,id=d0,format=raw,file={disk}",
            "-device", "virtio-blk-pci,drive=d0,bootindex=1"]
    if firmware == "bios":
        argv += ["-machine", "pc,graphics=off"]
    else:
        shutil.copyfile(OVMF_VARS, tmp_path / "vars.fd")
        argv += ["-machine", "q35", "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
                 "-drive", f"if=pflash,format=raw,unit=1,file={tmp_path / 'vars.fd'}"]
    return console_until_disk_marker(argv, log, 90)


def test_boot_sector_fits_beside_the_partition_table():
    sector = boot_sector()
    assert len(sector) == 512 and sector.endswith(b"\x55\xaa")
    assert sector[440:510] == bytes(70)  # disk signature and partition table left free
    payload = disk_payload()
    assert payload[446 + 4] == 0xEF  # partition 1 is an EFI system partition


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_installed_disk_boots_and_prints_the_marker(tmp_path, firmware):
    console = boot_disk(tmp_path, firmware)
    assert f"{DISK_BOOT_MARKER} firmware={firmware}" in console


def test_install_marker_roundtrip(tmp_path):
    disk = create_disk(tmp_path / "d.img", 1)
    assert read_install_marker(disk) is None
    with open(disk, "r+b") as f:
        f.seek(MARKER_SECTOR * 512)
        f.write(b"BOOTSERVER-LAB-INSTALLED host=h mac=52:54:00:00:00:01\n")
    assert read_install_marker(disk) == "BOOTSERVER-LAB-INSTALLED host=h mac=52:54:00:00:00:01"


def test_lab_catalog_validates_with_the_real_cli(tmp_path):
    (tmp_path / "assets/testos").mkdir(parents=True)
    for name in ("k", "i"):
        (tmp_path / "assets/testos" / name).write_bytes(b"x")
    specs = [MachineSpec.make(1, "bios"), MachineSpec.make(2, "uefi")]
    defaults = lab_catalog.write_ignition_assets(tmp_path / "assets")
    root = lab_catalog.write_catalog(tmp_path / "catalog",
                                     lab_catalog.test_os_profile("testos/k", "testos/i", defaults),
                                     [(s.name, s.mac, s.hostname) for s in specs])
    proc = subprocess.run([sys.executable, "-m", "bootserver", "validate", str(root), "--assets",
                           str(tmp_path / "assets")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.netns
def test_topology_is_found_and_removed_by_name():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    topo = Topology(f"bse2e-{secrets.token_hex(3)}")
    try:
        topo.create()
        topo.add_tap("tap0")
        leftover = subprocess.Popen(in_netns(topo.server, ["sleep", "300"]), start_new_session=True)
        # an aborted run: a new Topology object of the same name finds and removes everything
        removed = Topology(topo.prefix).destroy(log=lambda _: None)
        assert sorted(removed) == sorted(topo.namespaces)
        assert leftover.wait(10) is not None
        assert not set(topo.namespaces) & set(list_netns())
    finally:
        topo.destroy(log=lambda _: None)


def test_bad_lab_names_are_refused():
    with pytest.raises(ValueError):
        Topology("Bad Name; rm -rf /")
