"""The lab's UEFI additions without a network boot: the stall watch, the consistent start of a
second run, the Secure Boot disk and the QEMU command lines of the new firmware variants."""

import re
from pathlib import Path

from bootserver.lab import secureboot
from bootserver.lab.disk import ESP_START, SECTOR
from bootserver.lab.lab import Lab, MachineSpec
from bootserver.lab.qemu import Machine
from bootserver.lab.stall import StallWatch


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_stall_watch_sees_dead_ends_and_silence():
    clock = Clock()
    watch = StallWatch(silence_limit=150, clock=clock)
    assert watch.check("BdsDxe: loading Boot0002 ...\r\n") is None
    clock.now = 149
    assert watch.check("BdsDxe: loading Boot0002 ...\r\n") is None
    clock.now = 151
    assert "console silent for 151 s" in watch.check("BdsDxe: loading Boot0002 ...\r\n")
    assert watch.check("BdsDxe: loading Boot0002 ...\r\nmore\r\n") is None  # new output resets it
    for dead_end in ("Press ESC in 1 seconds to skip startup.nsh", "UEFI Interactive Shell v2.2",
                     "BdsDxe: No bootable option or device was found.", "No bootable device.", "grub> ",
                     "Kernel panic - not syncing: VFS"):
        assert "dead end" in StallWatch(clock=clock).check(f"a\r\n{dead_end}\r\n"), dead_end
    assert StallWatch(clock=clock).check("echo grub> is fine mid-line\r\n") is None


def lab_with(tmp_path, keep_state):
    return Lab("bsparts", tmp_path, [MachineSpec.make(1, "uefi")], server=None, keep_state=keep_state,
               log=lambda line: None)


def test_a_second_run_starts_from_one_consistent_state(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "bootserver.db").write_bytes(b"installed machines")
    (tmp_path / "uefi-1.disk.img").write_bytes(b"installed disk")
    lab_with(tmp_path, keep_state=True)._start_consistent()
    assert (tmp_path / "state" / "bootserver.db").exists() and (tmp_path / "uefi-1.disk.img").exists()
    lab_with(tmp_path, keep_state=False)._start_consistent()
    assert not (tmp_path / "state").exists() and not (tmp_path / "uefi-1.disk.img").exists()


def test_secure_boot_disk_holds_the_signed_chain(tmp_path):
    payload = secureboot.disk_payload()
    # the 8.3 names in the FAT directory entries of the ESP (behind the first MiB)
    names = set(re.findall(rb"(SHIMX64 EFI|GRUBX64 EFI|GRUB    CFG|BOOTX64 EFI)", payload[ESP_START * SECTOR:]))
    assert names == {b"SHIMX64 EFI", b"GRUBX64 EFI", b"GRUB    CFG", b"BOOTX64 EFI"}
    assert secureboot.SHIM.read_bytes() in payload and secureboot.GRUB.read_bytes() in payload
    assert secureboot.DISK_GRUB_CFG.encode() in payload
    rel = secureboot.install_into(tmp_path / "assets")
    assert (tmp_path / "assets" / rel).stat().st_size > 0


def test_firmware_variants_on_the_qemu_command_line(tmp_path):
    def argv(firmware):
        return " ".join(Machine(name="m", mac="52:54:00:77:05:01", firmware=firmware, disk=Path("d"),
                                workdir=tmp_path, tap="tap0").command())
    sb = argv("uefi-secureboot")
    assert "q35,smm=on" in sb and "OVMF_CODE_4M.ms.fd" in sb and "cfi.pflash01,property=secure,value=on" in sb
    assert "IPv4PXESupport,string=no" in argv("uefi-http") and "romfile=" in argv("uefi-http")
    assert "romfile=" not in argv("uefi-ipxerom") and "romfile=" in argv("uefi")
