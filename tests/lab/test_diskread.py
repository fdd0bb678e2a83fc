"""The disk reader the e2e tests use, against disks made here by the real tools: sgdisk writes the
GPT, mke2fs (-d) writes an ext4 filesystem at the partition's offset from a prepared folder."""

from __future__ import annotations

import os
import subprocess

import pytest

from bootserver.lab.diskread import ESP_TYPE, DiskReadError, Ext4Reader, read_gpt


@pytest.fixture
def disk(tmp_path):
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["sgdisk", "--new=1:2048:+4096", "--change-name=1:EFI-SYSTEM", f"--typecode=1:{ESP_TYPE}",
                    "--new=2:0:0", "--change-name=2:ROOT", str(image)], check=True, capture_output=True)
    tree = tmp_path / "tree"
    (tree / "etc/lab").mkdir(parents=True)
    (tree / "etc/lab/secret").write_bytes(b"top\0secret\n")
    os.chmod(tree / "etc/lab/secret", 0o600)
    os.chmod(tree / "etc/lab", 0o750)
    os.symlink("/etc/lab/secret", tree / "etc/link")
    if os.geteuid() == 0:
        os.chown(tree / "etc/lab/secret", 1500, 1600)
    root = read_gpt(image)[1]
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-L", "ROOT", "-d", str(tree), "-E", f"offset={root.offset}",
                    str(image), f"{root.size // 1024}k"], check=True, capture_output=True)
    return image


def test_gpt_is_read_as_sgdisk_wrote_it(disk):
    esp, root = read_gpt(disk)
    assert (esp.number, esp.name, esp.type_guid, esp.first_lba, esp.last_lba) == (1, "EFI-SYSTEM", ESP_TYPE, 2048, 6143)
    assert (root.number, root.name, root.first_lba) == (2, "ROOT", 6144)
    printed = subprocess.run(["sgdisk", "-i", "2", str(disk)], capture_output=True, text=True, check=True).stdout
    assert f"Partition unique GUID: {root.guid.upper()}" in printed
    assert f"Last sector: {root.last_lba} " in printed


def test_no_gpt_and_damaged_gpt(disk, tmp_path):
    blank = tmp_path / "blank.img"
    blank.write_bytes(b"\0" * 65536)
    assert read_gpt(blank) is None
    data = bytearray(disk.read_bytes())
    data[512 + 24] ^= 1  # a byte of the header's own LBA field: the header CRC no longer matches
    disk.write_bytes(bytes(data))
    with pytest.raises(DiskReadError, match="header CRC"):
        read_gpt(disk)


def test_filesystem_entries_contents_and_links(disk):
    fs = Ext4Reader(disk, read_gpt(disk)[1].offset)
    assert fs.label() == "ROOT"
    found = fs.walk()
    assert set(found) == {"/etc", "/etc/lab", "/etc/lab/secret", "/etc/link"}
    secret = found["/etc/lab/secret"]
    assert (secret.kind, secret.permissions, secret.size) == ("file", 0o600, 11)
    if os.geteuid() == 0:
        assert (secret.uid, secret.gid) == (1500, 1600)
    assert (found["/etc/lab"].kind, found["/etc/lab"].permissions) == ("dir", 0o750)
    assert fs.read("/etc/lab/secret") == b"top\0secret\n"
    assert found["/etc/link"].kind == "link" and fs.link_target("/etc/link") == "/etc/lab/secret"
    with pytest.raises(DiskReadError):
        fs.read("/etc/missing")
