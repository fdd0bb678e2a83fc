r"""The lab machines' disks: boot code that proves "booted from disk", and the install marker.

The test OS "installs" by writing `disk_payload()` to the start of the VM's raw disk and an
install marker line into sector MARKER_SECTOR. The payload is an MBR whose code prints `DISK_BOOT_MARKER`
on COM1 (SeaBIOS runs it when bootserver answers `sanboot --drive 0x80`), and whose partition
table holds an EFI system partition with \EFI\BOOT\BOOTX64.EFI printing the same marker
(OVMF runs it when it falls through to the disk). The lab reads the marker line back from the
disk image file to check what the installer wrote.
"""

from __future__ import annotations

import struct
from pathlib import Path

from bootserver.lab.efi import efi_application, fat16_esp

DISK_BOOT_MARKER = "BOOTSERVER-LAB-DISK-BOOT"
INSTALL_MARKER = b"BOOTSERVER-LAB-INSTALLED"
SECTOR = 512
COM1 = 0x3F8
MARKER_SECTOR = 1024  # the install marker: after the GPT (LBA 0-33), before the first partition
ESP_START = 2048  # LBA of the EFI system partition (1 MiB, the usual alignment)
DISK_MB = 16  # big enough for the ESP (8 MiB of FAT16) behind the first MiB


def _mbr_code(message_address: int) -> bytes:
    """16-bit real-mode code: program COM1 for 115200 8N1, send the NUL-terminated message, halt."""

    def out(port: int, value: int) -> bytes:
        return b"\xba" + struct.pack("<H", port) + b"\xb0" + bytes([value]) + b"\xee"  # mov dx; mov al; out

    code = b"\xfa\x31\xc0\x8e\xd8\x8e\xd0\xbc\x00\x7c\xfc"  # cli; xor ax,ax; ds=ss=0; sp=0x7c00; cld
    code += out(COM1 + 1, 0x00) + out(COM1 + 3, 0x80) + out(COM1, 0x01) + out(COM1 + 1, 0x00)
    code += out(COM1 + 3, 0x03)
    code += b"\xbe" + struct.pack("<H", message_address)  # mov si, message
    loop = (
        b"\xac"  # next: lodsb
        + b"\x84\xc0"  # test al, al
        + b"\x74\x12"  # jz done (+18)
        + b"\x88\xc3"  # mov bl, al
        + b"\xba" + struct.pack("<H", COM1 + 5)  # mov dx, LSR
        + b"\xec\xa8\x20\x74\xfb"  # wait: in al,dx; test al,0x20 (THR empty); jz wait
        + b"\xba" + struct.pack("<H", COM1)  # mov dx, THR
        + b"\x88\xd8\xee"  # mov al, bl; out dx, al
        + b"\xeb\xe9"  # jmp next (-23)
        + b"\xf4\xeb\xfd"  # done: hlt; jmp done
    )
    assert len(loop) == 26 and loop[5 + 0x12] == 0xF4  # jz lands on hlt; jmp -23 lands on lodsb
    return code + loop


def boot_sector(message: str = DISK_BOOT_MARKER) -> bytes:
    """A 512-byte MBR whose code prints `message` (plus CRLF) on COM1 and halts."""
    text = f"\r\n{message} firmware=bios\r\n".encode("ascii") + b"\0"
    code_length = len(_mbr_code(0))
    code = _mbr_code(0x7C00 + code_length)
    sector = code + text
    if len(sector) > 440:
        raise ValueError("boot message too long for the MBR code area")
    return sector.ljust(510, b"\0") + b"\x55\xaa"


def disk_payload(arch: str = "x64") -> bytes:
    """What the test OS writes at the start of the disk: MBR (BIOS code + one ESP partition) and the ESP
    with the removable-media loader for `arch` (x64: BOOTX64.EFI, aa64: BOOTAA64.EFI)."""
    app = efi_application(f"\r\n{DISK_BOOT_MARKER} firmware=uefi\r\n", arch)
    esp, esp_sectors = fat16_esp({f"EFI/BOOT/BOOT{arch.upper()}.EFI": app}, ESP_START)
    mbr = bytearray(boot_sector())
    # partition 1: type 0xEF (EFI system), CHS fields unused (0xFEFFFF), LBA start and length
    mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\xfe\xff\xff", 0xEF, b"\xfe\xff\xff", ESP_START, esp_sectors)
    return bytes(mbr).ljust(ESP_START * SECTOR, b"\0") + esp


def create_disk(path: Path, size_mb: int = DISK_MB) -> Path:
    """A fresh, empty (sparse) raw disk image: the machine has never been installed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    return path


def read_install_marker(path: Path) -> str | None:
    """The marker line the test OS wrote into sector MARKER_SECTOR, or None if the disk was never installed."""
    with open(path, "rb") as f:
        f.seek(MARKER_SECTOR * SECTOR)
        data = f.read(SECTOR)
    if not data.startswith(INSTALL_MARKER):
        return None
    return data.split(b"\n", 1)[0].decode("ascii", "replace")
