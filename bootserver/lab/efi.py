"""A UEFI boot proof for the lab disk: a tiny EFI application on a FAT16 EFI system partition.

The application prints `DISK_BOOT_MARKER firmware=uefi` through the firmware's console (OVMF
mirrors it to the serial port) and then idles. Both are built here as bytes, so the test OS can
write them to its disk with dd and no tools: a PE32+ image (x86-64 code, one no-op base
relocation so the loader may place it anywhere), in x86-64 or AArch64 code, and a FAT16 file system
holding it as \\EFI\\BOOT\\BOOTX64.EFI (BOOTAA64.EFI on arm64), the path firmware boots from a
disk without any boot variables.
"""

from __future__ import annotations

import struct

SECTOR = 512
FILE_ALIGN = 0x200
SECTION_ALIGN = 0x1000


#: ConOut->OutputString(ConOut, message), then idle; the message follows the code.
_X64_CODE = (b"\x48\x83\xec\x28"  # sub rsp, 0x28 (shadow space + alignment)
             b"\x48\x8b\x4a\x40"  # mov rcx, [rdx+0x40]: SystemTable->ConOut
             b"\x48\x8d\x15\x06\x00\x00\x00"  # lea rdx, [rip+6]: the message, right after this code
             b"\xff\x51\x08"  # call [rcx+8]: ConOut->OutputString(ConOut, message)
             b"\xf4\xeb\xfd")  # idle: hlt; jmp idle
_AA64_CODE = struct.pack("<6I",
                         0xF9402020,  # ldr x0, [x1, #0x40]: SystemTable->ConOut
                         0xF9400402,  # ldr x2, [x0, #8]: ConOut->OutputString
                         0x10000081,  # adr x1, .+16: the message, right after this code
                         0xD63F0040,  # blr x2
                         0xD503207F,  # idle: wfi
                         0x17FFFFFF)  # b idle
#: PE machine type and code per architecture
MACHINES = {"x64": (0x8664, _X64_CODE), "aa64": (0xAA64, _AA64_CODE)}


def efi_application(message: str, arch: str = "x64") -> bytes:
    """PE32+ EFI application (subsystem 10): ConOut->OutputString(message), then idle forever.
    `arch`: x64 or aa64."""
    text = message.encode("utf-16-le") + b"\0\0"
    machine, code = MACHINES[arch]
    assert code != _X64_CODE or code[11:15] == struct.pack("<i", len(code) - 15)  # lea lands on the message
    body = code + text
    if len(body) > FILE_ALIGN:
        raise ValueError("message too long for the lab EFI application")
    text_rva, reloc_rva = SECTION_ALIGN, 2 * SECTION_ALIGN
    reloc = struct.pack("<IIHH", text_rva, 12, 0, 0)  # one block, two IMAGE_REL_BASED_ABSOLUTE (no-op) entries

    coff = struct.pack("<HHIIIHH", machine, 2, 0, 0, 0, 240, 0x0022)  # executable, large-address aware
    optional = struct.pack("<HBBIIIII", 0x20B, 0, 0, FILE_ALIGN, FILE_ALIGN, 0, text_rva, text_rva)
    optional += struct.pack("<QII", 0x10000000, SECTION_ALIGN, FILE_ALIGN)
    optional += struct.pack("<HHHHHHI", 0, 0, 0, 0, 0, 0, 0)
    optional += struct.pack("<IIIHH", 3 * SECTION_ALIGN, FILE_ALIGN, 0, 10, 0)  # size of image/headers, EFI app
    optional += struct.pack("<QQQQII", 0x10000, 0x10000, 0x10000, 0x1000, 0, 16)
    directories = [(0, 0)] * 16
    directories[5] = (reloc_rva, len(reloc))  # base relocation table
    optional += b"".join(struct.pack("<II", *d) for d in directories)
    assert len(optional) == 240
    sections = struct.pack("<8sIIIIIIHHI", b".text", len(body), text_rva, FILE_ALIGN, FILE_ALIGN, 0, 0, 0, 0,
                           0x60000020)  # code, execute, read
    sections += struct.pack("<8sIIIIIIHHI", b".reloc", len(reloc), reloc_rva, FILE_ALIGN, 2 * FILE_ALIGN, 0, 0,
                            0, 0, 0x42000040)  # initialized data, discardable, read
    dos = b"MZ" + b"\0" * 0x3A + struct.pack("<I", 0x40)
    headers = (dos + b"PE\0\0" + coff + optional + sections).ljust(FILE_ALIGN, b"\0")
    return headers + body.ljust(FILE_ALIGN, b"\0") + reloc.ljust(FILE_ALIGN, b"\0")


def _dir_entry(name: bytes, attr: int, cluster: int, size: int = 0) -> bytes:
    date = (0 << 9) | (1 << 5) | 1  # 1980-01-01
    return struct.pack("<11sBBBHHHHHHHI", name, attr, 0, 0, 0, date, date, 0, 0, date, cluster, size)


def fat16_esp(files: dict[str, bytes], start_lba: int, sectors: int = 16384) -> tuple[bytes, int]:
    """A FAT16 file system holding `files` (paths like EFI/BOOT/BOOTX64.EFI, 8.3 names).

    Returns the bytes of the used part (everything after it is zero) and the total sector count.
    """
    root_entries, fat_sectors = 512, 64
    data_start = 1 + 2 * fat_sectors + root_entries * 32 // SECTOR
    if sectors - data_start < 4085:
        raise ValueError("too small for FAT16")
    boot = bytearray(SECTOR)
    boot[0:3] = b"\xeb\x3c\x90"
    boot[3:11] = b"BOOTSRV "
    struct.pack_into("<HBHBHHBHHHII", boot, 11, SECTOR, 1, 1, 2, root_entries, sectors, 0xF8, fat_sectors,
                     32, 64, start_lba, 0)
    struct.pack_into("<BBBI11s8s", boot, 36, 0x80, 0, 0x29, 0x0B007AB1, b"BOOTSRV-ESP", b"FAT16   ")
    boot[510:512] = b"\x55\xaa"

    fat = [0xFFF8, 0xFFFF]
    clusters: dict[int, bytes] = {}
    root = bytearray()

    def allocate(data: bytes) -> int:
        count = max(1, -(-len(data) // SECTOR))
        first = len(fat)
        for i in range(count):
            fat.append(first + i + 1 if i < count - 1 else 0xFFFF)
            clusters[first + i] = data[i * SECTOR:(i + 1) * SECTOR].ljust(SECTOR, b"\0")
        return first

    def short_name(part: str) -> bytes:
        stem, _, ext = part.upper().partition(".")
        if not (0 < len(stem) <= 8 and len(ext) <= 3):
            raise ValueError(f"{part!r} is not an 8.3 name")
        return stem.ljust(8).encode() + ext.ljust(3).encode()

    # A tree of directories: each directory is a list of entries, filled in after its children.
    tree: dict[str, dict] = {}
    for path, data in files.items():
        node = tree
        *dirs, name = path.split("/")
        for d in dirs:
            node = node.setdefault(d, {})
        node[name] = data

    def write_dir(node: dict, parent_cluster: int) -> int:
        cluster = len(fat)  # reserve this directory's cluster first
        fat.append(0xFFFF)
        entries = _dir_entry(b".          ", 0x10, cluster) + _dir_entry(b"..         ", 0x10, parent_cluster)
        for name, child in node.items():
            if isinstance(child, dict):
                entries += _dir_entry(short_name(name), 0x10, write_dir(child, cluster))
            else:
                entries += _dir_entry(short_name(name), 0x20, allocate(child), len(child))
        clusters[cluster] = entries.ljust(SECTOR, b"\0")
        return cluster

    for name, child in tree.items():
        if not isinstance(child, dict):
            raise ValueError("files must live in a directory")
        root += _dir_entry(short_name(name), 0x10, write_dir(child, 0))
    fat_bytes = b"".join(struct.pack("<H", e) for e in fat).ljust(fat_sectors * SECTOR, b"\0")
    image = bytes(boot) + fat_bytes + fat_bytes + bytes(root).ljust(root_entries * 32, b"\0")
    for n in range(2, len(fat)):
        image += clusters[n]
    assert len(image) == (data_start + len(fat) - 2) * SECTOR
    return image, sectors
