"""What real Ignition must have left on a lab machine's disk, read back without mounting it.

The expectations are written from the lab's Butane (bootserver/lab/files/lab.bu) and Ignition's
documented behaviour (spec 3.3: default modes 0644/0755, owner root; users before files; enabled
units as presets; SSH keys in ~/.ssh/authorized_keys.d/ignition), not from bootserver's renderer.
"""

from __future__ import annotations

import json
from pathlib import Path

from bootserver.lab import catalog as lab_catalog
from bootserver.lab.diskread import ESP_TYPE, Ext4Reader, read_gpt

LINUX_FS_TYPE = "0fc63daf-8483-4772-8e79-3d69d8477de4"  # sgdisk's default partition type (8300)
LAB_UID, LAB_GID = 1500, 1600

#: A config Ignition must reject: the merged fragment's hash does not match what /assets serves.
BAD_CONFIG = {"fragment_sha512": "0" * 128}


def expected_items(spec) -> dict[str, tuple]:
    """path -> (kind, permissions, uid, gid, content or link target or None)."""
    env = f"LAB_MACHINE={spec.name}\nLAB_MAC={spec.mac}\n".encode()
    unit = (b"[Unit]\nDescription=Say hello from the lab\n\n[Service]\nType=oneshot\n"
            b"ExecStart=/usr/bin/cat /etc/lab/greeting.txt\n\n[Install]\nWantedBy=multi-user.target\n")
    return {
        "/etc/hostname": ("file", 0o644, 0, 0, spec.hostname.encode()),
        "/etc/lab": ("dir", 0o755, 0, 0, None),
        "/etc/lab/machine.env": ("file", 0o640, 0, LAB_GID, env),
        "/etc/lab/greeting.txt": ("file", 0o444, 0, 0, lab_catalog.GREETING.encode()),
        "/etc/lab/fragment.txt": ("file", 0o644, 0, 0, b"merged from bootserver's assets\n"),
        "/etc/lab/payload": ("link", 0o777, 0, 0, "/var/lib/lab/payload.txt"),
        "/var/lib/lab": ("dir", 0o750, LAB_UID, LAB_GID, None),
        "/var/lib/lab/payload.txt": ("file", 0o600, LAB_UID, LAB_GID, lab_catalog.PAYLOAD),
        "/home/labuser": ("dir", 0o755, LAB_UID, LAB_GID, None),
        "/home/labuser/.ssh/authorized_keys.d/ignition": (
            "file", 0o600, LAB_UID, LAB_GID, (lab_catalog.lab_ssh_key(spec.name) + "\n").encode()),
        "/etc/systemd/system/lab-hello.service": ("file", 0o644, 0, 0, unit),
        "/etc/systemd/system/lab-hello.service.d/10-machine.conf": (
            "file", 0o644, 0, 0, b"[Service]\nEnvironmentFile=/etc/lab/machine.env\n"),
        "/etc/systemd/system-preset/20-ignition.preset": ("file", 0o644, 0, 0, b"enable lab-hello.service\n"),
    }


def root_filesystem(disk: Path) -> Ext4Reader:
    """The disk's layout as the Butane declared it; returns a reader for the ROOT filesystem."""
    partitions = read_gpt(disk)
    assert partitions is not None, f"{disk}: no GPT: Ignition's disks stage did not run"
    by_number = {p.number: p for p in partitions}
    assert sorted(by_number) == [1, 2], partitions
    esp, root = by_number[1], by_number[2]
    assert (esp.name, esp.type_guid, esp.first_lba, esp.size) == ("EFI-SYSTEM", ESP_TYPE, 2048, 8 << 20)
    assert (root.name, root.type_guid, root.first_lba) == ("ROOT", LINUX_FS_TYPE, 2048 + 16384)
    assert root.last_lba >= disk.stat().st_size // 512 - 34 - 2048, "ROOT does not fill the disk"
    filesystem = Ext4Reader(disk, root.offset)
    assert filesystem.label() == "ROOT"
    return filesystem


def check_installed_disk(disk: Path, spec, others: list) -> None:
    """Every item the machine's Butane declared is there with its content, mode and owner, and
    nothing from the other machines' configs is."""
    fs = root_filesystem(disk)
    found = fs.walk()
    for path, (kind, permissions, uid, gid, content) in expected_items(spec).items():
        assert path in found, f"{spec.name}: {path} missing from the disk"
        entry = found[path]
        assert (entry.kind, entry.permissions, entry.uid, entry.gid) == (kind, permissions, uid, gid), \
            f"{spec.name}: {path}: {entry}"
        if kind == "file":
            assert fs.read(path) == content, f"{spec.name}: {path} content"
        elif kind == "link":
            assert fs.link_target(path) == content
    passwd = fs.read("/etc/passwd").decode().splitlines()
    assert [line for line in passwd if line.startswith("labuser:")] == [
        f"labuser:x:{LAB_UID}:{LAB_GID}::/home/labuser:/bin/bash"]
    assert f"lab:x:{LAB_GID}:" in fs.read("/etc/group").decode().splitlines()
    assert json.loads(fs.read("/etc/.ignition-result.json"))["userConfigProvided"] is True
    # nothing of another machine: its name, MAC, hostname or key appear in no file of this disk
    texts = {path: fs.read(path) for path, entry in found.items() if entry.kind == "file"}
    for other in others:
        marks = [other.mac.encode(), other.hostname.encode(), lab_catalog.lab_ssh_key(other.name).encode()]
        leaks = [(path, mark) for path, data in texts.items() for mark in marks if mark in data]
        assert not leaks, f"{spec.name}'s disk holds {other.name}'s config: {leaks}"


def check_untouched_disk(disk: Path) -> None:
    """A rejected config leaves the disk as it was: no partition table, no byte written."""
    assert read_gpt(disk) is None
    with open(disk, "rb") as f:
        while chunk := f.read(1 << 20):
            assert not chunk.strip(b"\0"), f"{disk} was written to"
