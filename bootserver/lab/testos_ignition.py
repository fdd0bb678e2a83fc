"""What the test OS carries to run real Ignition the way Flatcar's initramfs does.

Ignition's stages wait for block devices through systemd (D-Bus on /run/systemd/private), so
the test OS boots systemd as PID 1 with udev, and runs Debian's Ignition binary (the one its
dracut module ships) with the programs its stages call. Everything comes from one root folder:
`/` for the x86 test OS, the unpacked Debian arm64 packages for the arm64 one. Each program is
copied with the loader and shared libraries its ELF headers name (elf_libraries.py); a missing
file names the Debian package to install.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from bootserver.lab.elf_libraries import ElfError, resolve_inside, shared_libraries
from bootserver.lab.testos import TestOSError

#: initramfs path -> (path in the root, as the Debian package ships it; the package). Ignition's
#: stages call sgdisk (disks), wipefs, mkfs.ext4 (filesystems), udevadm (settle, trigger),
#: useradd/usermod/groupadd (passwd); systemd is PID 1 and systemd-udevd names the devices
#: (by-partlabel, by-label).
PROGRAMS = {
    "usr/bin/ignition": ("/usr/lib/dracut/modules.d/30ignition/ignition", "ignition"),
    "usr/lib/systemd/systemd": ("/lib/systemd/systemd", "systemd"),
    "usr/bin/udevadm": ("/bin/udevadm", "udev"),
    "usr/sbin/sgdisk": ("/sbin/sgdisk", "gdisk"),
    "usr/sbin/mke2fs": ("/sbin/mke2fs", "e2fsprogs"),
    "usr/sbin/wipefs": ("/sbin/wipefs", "util-linux"),
    "usr/sbin/useradd": ("/usr/sbin/useradd", "passwd"),
    "usr/sbin/usermod": ("/usr/sbin/usermod", "passwd"),
    "usr/sbin/groupadd": ("/usr/sbin/groupadd", "passwd"),
    "usr/sbin/setfiles": ("/sbin/setfiles", "policycoreutils"),
}
LINKS = {
    "usr/sbin/mkfs.ext4": "mke2fs",
    "usr/lib/systemd/systemd-udevd": "../../bin/udevadm",
}
#: udev rules that give block devices their /dev/disk/by-* names and the "systemd" tag
#: (a device unit is "plugged" only with that tag, and Ignition waits for device units).
UDEV_RULES = ("50-udev-default.rules", "60-block.rules", "60-persistent-storage.rules", "99-systemd.rules")
#: files the programs read (path -> package): useradd's defaults.
DATA = {"etc/login.defs": "login"}
#: Kernel modules for the ext4 filesystem Ignition makes (crc32c is requested at mount time).
MODULES = ("crc32c_generic", "ext4")


def _read(root: Path, path: str, package: str) -> bytes:
    try:
        return resolve_inside(root, path).read_bytes()
    except FileNotFoundError:
        raise TestOSError(f"{root / path.lstrip('/')} not found: install {package}") from None


def ignition_inputs(root: Path = Path("/")) -> tuple[dict[str, bytes], set[str], dict[str, str]]:
    """(files, executables, symlinks) to add to the test OS initramfs, taken from `root`."""
    files: dict[str, bytes] = {}
    for target, (source, package) in PROGRAMS.items():
        files[target] = _read(root, source, package)
        try:
            libraries = shared_libraries(root, source)
        except ElfError as exc:
            raise TestOSError(str(exc)) from None
        for image_path, library in libraries.items():
            files.setdefault(image_path, library.read_bytes())
    for rule in UDEV_RULES:
        files[f"usr/lib/udev/rules.d/{rule}"] = _read(root, f"/lib/udev/rules.d/{rule}", "udev")
    for name, package in DATA.items():
        files[name] = _read(root, name, package)
    lab_files = resources.files("bootserver.lab") / "files" / "ignition"
    for item in lab_files.iterdir():
        if item.name.endswith((".target", ".service")):
            files[f"etc/systemd/system/{item.name}"] = item.read_bytes()
    for name in ("passwd", "group", "shadow", "gshadow", "selinux-config", "file_contexts"):
        files[f"usr/share/testos/baselayout/{name}"] = (lab_files / f"baselayout.{name}").read_bytes()
    files["etc/initrd-release"] = files["etc/os-release"] = (lab_files / "os-release").read_bytes()
    files["testos-ignition"] = (lab_files / "testos-ignition").read_bytes()
    executables = set(PROGRAMS) | {"testos-ignition"}
    # shared objects are mapped executable; the dynamic loader itself must be
    executables |= {name for name in files if name.startswith(("lib", "usr/lib")) and ".so" in name}
    return files, executables, dict(LINKS)
