"""`bootserver validate` catches an arm64 machine pointed at an amd64 kernel (and the reverse):
an error when the kernel in the assets folder says so in its header, a warning when only its path
does. The kernels are the first bytes of Debian's real amd64 and arm64 kernels."""

import glob
import subprocess
import sys
from pathlib import Path

import pytest

from bootserver.catalog import kernel_arch
from bootserver.catalog.loader import validate
from bootserver.config import ARM64_ROOT

AMD64_KERNEL = Path(sorted(glob.glob("/boot/vmlinuz-*"))[-1]) if glob.glob("/boot/vmlinuz-*") else None
ARM64_KERNEL = next(iter(sorted((ARM64_ROOT / "boot").glob("vmlinuz-*"))), None)
REPO = Path(__file__).resolve().parents[2]

CATALOG = """apiVersion: bootserver/v1
kind: Profile
metadata: {{name: p}}
spec:
  boot: {{kernel: {kernel}, initrd: [os/initrd.img]}}
---
apiVersion: bootserver/v1
kind: Group
metadata: {{name: arm}}
spec:
  selector: {{mac_prefix: "52:54:00", arch: {arch}}}
  profile: p
"""


def write(tmp_path, kernel_ref, arch, kernel_bytes=None):
    catalog, assets = tmp_path / "c", tmp_path / "assets"
    catalog.mkdir(parents=True)
    (catalog / "c.yaml").write_text(CATALOG.format(kernel=kernel_ref, arch=arch))
    (assets / "os").mkdir(parents=True)
    (assets / "os/initrd.img").write_bytes(b"x")
    if kernel_bytes is not None:
        (assets / kernel_ref).parent.mkdir(parents=True, exist_ok=True)
        (assets / kernel_ref).write_bytes(kernel_bytes)
    return catalog, assets


def arch_problems(catalog, assets):
    return [p for p in validate(catalog, assets) if "machines get profile" in p.message]


def test_kernel_headers_of_debians_real_kernels():
    assert kernel_arch.from_file(AMD64_KERNEL) == "amd64"
    assert kernel_arch.from_file(ARM64_KERNEL) == "arm64"
    assert kernel_arch.from_header(b"not a kernel" * 100) is None


@pytest.mark.parametrize("arch, kernel, expected", [
    ("arm64-efi", AMD64_KERNEL, "amd64"), ("x86_64-efi", ARM64_KERNEL, "arm64"), ("arm64-efi", ARM64_KERNEL, None)])
def test_the_header_makes_an_error(tmp_path, arch, kernel, expected):
    catalog, assets = write(tmp_path, "os/vmlinuz", arch, kernel.read_bytes()[:kernel_arch.HEADER_BYTES])
    found = arch_problems(catalog, assets)
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].severity == "error" and found[0].field == "spec.selector.arch"
        assert f"is {expected} (its header says)" in found[0].message


def test_the_path_makes_a_warning(tmp_path):
    catalog, assets = write(tmp_path, "flatcar/amd64/current/flatcar_production_pxe.vmlinuz", "arm64-efi")
    found = arch_problems(catalog, assets)
    assert len(found) == 1 and found[0].severity == "warning" and "(its path says)" in found[0].message
    catalog, assets = write(tmp_path / "ok", "flatcar/arm64/current/flatcar_production_pxe.vmlinuz", "arm64-efi")
    assert arch_problems(catalog, assets) == []


def test_a_machine_that_says_arm64_and_the_real_cli(tmp_path):
    catalog, assets = write(tmp_path, "os/vmlinuz", "x86_64-efi", AMD64_KERNEL.read_bytes()[:4096])
    (catalog / "m.yaml").write_text("apiVersion: bootserver/v1\nkind: Machine\nmetadata: {name: a1}\n"
                                    "spec: {mac: '52:54:00:77:07:01', arch: arm64-efi, profile: p}\n")
    proc = subprocess.run([sys.executable, "-m", "bootserver", "validate", "--catalog", str(catalog),
                           "--assets", str(assets)], capture_output=True, text=True)
    assert proc.returncode != 0
    expected = "Machine a1: spec.arch: arm64-efi machines get profile p, whose kernel 'os/vmlinuz' is amd64"
    assert expected in proc.stdout + proc.stderr


def test_the_shipped_catalog_has_arm64_next_to_amd64():
    problems = validate(REPO / "profiles")
    assert not [p for p in problems if p.severity == "error" or "machines get profile" in p.message]
    text = (REPO / "profiles/flatcar-arm64.yaml").read_text()
    assert "flatcar/arm64/current/flatcar_production_pxe.vmlinuz" in text and "console=ttyAMA0" in text
