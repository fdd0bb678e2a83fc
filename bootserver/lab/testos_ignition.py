"""What the test OS carries to run real Ignition the way Flatcar's initramfs does.

Ignition's stages wait for block devices through systemd (D-Bus on /run/systemd/private), so
the test OS boots systemd as PID 1 with udev, and runs Debian's Ignition binary (the one its
dracut module ships) with the programs its stages call. Each program is copied with the shared
libraries `ldd` names for it; a missing program names the Debian package to install.
"""

from __future__ import annotations

import subprocess
from importlib import resources
from pathlib import Path

from bootserver.lab.testos import TestOSError

IGNITION = Path("/usr/lib/dracut/modules.d/30ignition/ignition")

#: initramfs path -> (host path, Debian package). Ignition's stages call sgdisk (disks),
#: wipefs, mkfs.ext4 (filesystems), udevadm (settle, trigger), useradd/usermod/groupadd (passwd);
#: systemd is PID 1 and systemd-udevd names the devices (by-partlabel, by-label).
PROGRAMS = {
    "usr/bin/ignition": (IGNITION, "ignition"),
    "usr/lib/systemd/systemd": (Path("/usr/lib/systemd/systemd"), "systemd"),
    "usr/bin/udevadm": (Path("/usr/bin/udevadm"), "udev"),
    "usr/sbin/sgdisk": (Path("/usr/sbin/sgdisk"), "gdisk"),
    "usr/sbin/mke2fs": (Path("/usr/sbin/mke2fs"), "e2fsprogs"),
    "usr/sbin/wipefs": (Path("/usr/sbin/wipefs"), "util-linux"),
    "usr/sbin/useradd": (Path("/usr/sbin/useradd"), "passwd"),
    "usr/sbin/usermod": (Path("/usr/sbin/usermod"), "passwd"),
    "usr/sbin/groupadd": (Path("/usr/sbin/groupadd"), "passwd"),
    "usr/sbin/setfiles": (Path("/usr/sbin/setfiles"), "policycoreutils"),
}
LINKS = {
    "usr/sbin/mkfs.ext4": "mke2fs",
    "usr/lib/systemd/systemd-udevd": "../../bin/udevadm",
}
#: udev rules that give block devices their /dev/disk/by-* names and the "systemd" tag
#: (a device unit is "plugged" only with that tag, and Ignition waits for device units).
UDEV_RULES = ("50-udev-default.rules", "60-block.rules", "60-persistent-storage.rules", "99-systemd.rules")
#: host files the programs read: useradd's defaults.
DATA = ("etc/login.defs",)
#: Kernel modules for the ext4 filesystem Ignition makes (crc32c is requested at mount time).
MODULES = ("crc32c_generic", "ext4")


def _shared_libraries(program: Path) -> list[Path]:
    """The libraries the dynamic loader maps for `program`, interpreter included (absolute paths)."""
    try:
        out = subprocess.run(["ldd", str(program)], check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        raise TestOSError("ldd not found: install libc-bin") from None
    except subprocess.CalledProcessError as exc:
        raise TestOSError(f"ldd {program}: {exc.stderr.strip() or exc.stdout.strip()}") from None
    libraries = []
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) > parts.index("=>") + 1 and parts[parts.index("=>") + 1].startswith("/"):
            libraries.append(Path(parts[parts.index("=>") + 1]))
        elif parts and parts[0].startswith("/"):
            libraries.append(Path(parts[0]))
        elif "not found" in line:
            raise TestOSError(f"{program}: library {parts[0]} not found")
    return libraries


def ignition_inputs() -> tuple[dict[str, bytes], set[str], dict[str, str]]:
    """(files, executables, symlinks) to add to the test OS initramfs."""
    files: dict[str, bytes] = {}
    for target, (source, package) in PROGRAMS.items():
        if not source.exists():
            raise TestOSError(f"{source} not found: install {package}")
        files[target] = source.read_bytes()
        for library in _shared_libraries(source):
            files.setdefault(str(library).lstrip("/"), library.read_bytes())
    for rule in UDEV_RULES:
        path = Path("/usr/lib/udev/rules.d") / rule
        if not path.exists():
            raise TestOSError(f"{path} not found: install udev")
        files[f"usr/lib/udev/rules.d/{rule}"] = path.read_bytes()
    for name in DATA:
        files[name] = (Path("/") / name).read_bytes()
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
