"""scripts/bootstrap.sh: `serve` installs only what serving needs; `test` installs everything.

The serve list is checked against what the server really runs: every outside program and file it
uses at run time must come from a package on that list (asked of dpkg, not assumed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bootserver.config import ARM64_ROOT, Settings

ROOT = Path(__file__).resolve().parents[1]
#: what `bootserver serve` and `bootserver assets fetch` use outside Python
SERVE_NEEDS = ("/usr/lib/ipxe/ipxe.efi", "/usr/lib/ipxe/undionly.kpxe", "gpgv", "gpg", "/usr/bin/python3",
               "/usr/sbin/update-ca-certificates", str(Settings.grub_efi), str(Settings.shim_efi))
TEST_ONLY = {"qemu-system-x86", "ovmf", "postgresql", "vagrant", "linux-image-amd64", "chromium",
             "chromium-driver", "tcpdump", "dnsmasq-base", "tftpd-hpa", "qemu-user"}


def plan(action: str) -> dict[str, list[str]]:
    if os.geteuid() != 0:
        pytest.fail("bootstrap.sh needs root; run the tests as root (CI does)")
    run = subprocess.run(["bash", str(ROOT / "scripts" / "bootstrap.sh"), action], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "BOOTSTRAP_PLAN": "1"}, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = dict(line.split(": ", 1) for line in run.stdout.splitlines())
    return {"apt": lines["apt"].split(), "pip": [lines["pip"]], "arm64": lines.get("arm64", "").split()}


def package_of(path: str) -> str:
    path = path if path.startswith("/") else os.path.realpath(shutil.which(path) or path)
    found = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
    if found.returncode != 0:  # /usr/bin vs /bin (merged /usr): ask for the other spelling
        found = subprocess.run(["dpkg", "-S", path.replace("/usr/bin/", "/bin/")], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    return found.stdout.split(":", 1)[0]


def test_serve_installs_only_what_serving_uses():
    serve, test = plan("serve"), plan("test")
    assert serve["pip"] == ["."] and test["pip"] == [".[test]"]
    assert not TEST_ONLY & set(serve["apt"])
    assert set(serve["apt"]) < set(test["apt"]) and TEST_ONLY <= set(test["apt"])
    for need in SERVE_NEEDS:
        assert package_of(need).split(",")[0].strip() in serve["apt"] or package_of(need).startswith("python3"), need
    # arm64: serving needs only Debian's arm64 GRUB (the PXE loader, and the modules of the HTTP Boot
    # GRUB); the lab's test OS packages come with test, after them, so a tree made by test serves too
    assert serve["arm64"] == ["grub-efi-arm64-signed", "grub-efi-arm64-bin"]
    assert test["arm64"][:2] == serve["arm64"] and "ignition" in test["arm64"]


def test_the_arm64_tree_is_made_of_exactly_the_listed_packages():
    """bootstrap.sh unpacks only the listed arm64 packages (no dependency resolution), and stamps
    the tree with the list: so the arm64 test OS builds in tests/lab (which fail naming a missing
    library or program) prove the list is complete for a fresh machine."""
    listed = plan("test")["arm64"]
    assert {"ignition", "systemd", "udev", "libc6", "busybox-static", "linux-image-arm64"} <= set(listed)
    assert (ARM64_ROOT / ".packages").read_text().split() == listed, "re-run scripts/bootstrap.sh install"
