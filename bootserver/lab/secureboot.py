r"""The lab's Secure Boot pieces: a disk that boots through Debian's signed shim and GRUB, and the
extra initrd that carries it to the test OS.

Under Secure Boot the lab's own \EFI\BOOT\BOOTX64.EFI (unsigned) is refused, so the installed
disk also holds \EFI\debian\shimx64.efi (signed by Microsoft's UEFI CA, which OVMF's .ms
variables trust), \EFI\debian\grubx64.efi (signed by Debian, which shim trusts) and a grub.cfg
beside them that prints the disk marker. bootserver's local-disk GRUB config tries
\EFI\BOOT\BOOTX64.EFI first (refused: the negative case shows on the console), then the shim.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

from bootserver.lab.disk import DISK_BOOT_MARKER, ESP_START, SECTOR, boot_sector
from bootserver.lab.efi import efi_application, fat16_esp

SHIM = Path("/usr/lib/shim/shimx64.efi.signed")
GRUB = Path("/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed")
INITRD_NAME = "testos-secureboot-disk.img"
DISK_GRUB_CFG = f"echo '{DISK_BOOT_MARKER} firmware=uefi via=shim-grub'\nsleep 86400\n"


class SecureBootError(RuntimeError):
    pass


def disk_payload() -> bytes:
    """MBR (BIOS code + ESP partition) and an ESP with the lab's app and the signed shim + GRUB."""
    for path, package in ((SHIM, "shim-signed"), (GRUB, "grub-efi-amd64-signed")):
        if not path.exists():
            raise SecureBootError(f"{path} not found: install {package}")
    files = {"EFI/BOOT/BOOTX64.EFI": efi_application(f"\r\n{DISK_BOOT_MARKER} firmware=uefi\r\n"),
             "EFI/DEBIAN/SHIMX64.EFI": SHIM.read_bytes(), "EFI/DEBIAN/GRUBX64.EFI": GRUB.read_bytes(),
             "EFI/DEBIAN/GRUB.CFG": DISK_GRUB_CFG.encode()}
    esp, esp_sectors = fat16_esp(files, ESP_START)
    mbr = bytearray(boot_sector())
    mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\xfe\xff\xff", 0xEF, b"\xfe\xff\xff", ESP_START, esp_sectors)
    return bytes(mbr).ljust(ESP_START * SECTOR, b"\0") + esp


def install_into(assets_dir: Path, subdir: str = "testos") -> str:
    """The extra initrd (a cpio with /disk-payload.img, which replaces the test OS's own when the
    kernel unpacks it second) in the assets folder; returns its path relative to the folder."""
    from bootserver.lab.testos import build_initramfs

    image = build_initramfs({"disk-payload.img": disk_payload()}, set())
    target = assets_dir / subdir / INITRD_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or hashlib.sha256(target.read_bytes()).digest() != hashlib.sha256(image).digest():
        target.write_bytes(image)
    return f"{subdir}/{INITRD_NAME}"
