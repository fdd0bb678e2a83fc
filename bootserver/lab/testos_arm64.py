"""The lab's arm64 test OS, built from Debian's arm64 packages (linux-image-arm64, busybox-static),
which scripts/bootstrap.sh downloads and unpacks under config.ARM64_ROOT (an amd64 host cannot
install them). Lighter than the x86 test OS: busybox only, no systemd and no Ignition binary; it
fetches its Ignition config, writes the arm64 boot disk and reports (files/testos-arm64-init).
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from bootserver.config import ARM64_ROOT
from bootserver.lab.disk import disk_payload
from bootserver.lab.testos import TestOSError, _version_key, build_initramfs, default_cache_dir

MODULES = ("virtio_pci", "virtio_net", "virtio_blk")  # CONFIG_VIRTIO=y; the rest are modules on arm64
KERNEL_NAME = "testos-arm64-vmlinuz.gz"  # gzip'd Image: a third of the TFTP transfer (GRUB inflates it)
INITRD_NAME = "testos-arm64-initramfs.img"
INSTALL_HINT = "run scripts/bootstrap.sh install (it unpacks Debian's arm64 packages into /opt/bootserver-arm64)"


def kernel_version(root: Path = ARM64_ROOT) -> str:
    kernels = sorted((p.name.removeprefix("vmlinuz-") for p in (root / "boot").glob("vmlinuz-*")), key=_version_key)
    if not kernels:
        raise TestOSError(f"no arm64 kernel under {root}/boot: {INSTALL_HINT}")
    return kernels[-1]


def module_load_order(root: Path, kver: str, modules: tuple[str, ...] = MODULES) -> list[tuple[str, Path]]:
    """The modules and their dependencies, each after what it depends on (modinfo reads any ELF)."""
    index = {p.name.removesuffix(".ko"): p for p in (root / "lib/modules" / kver).rglob("*.ko")}
    order: list[tuple[str, Path]] = []

    def visit(name: str) -> None:
        if name in (n for n, _ in order):
            return
        path = index.get(name.replace("-", "_")) or index.get(name)
        if path is None:
            raise TestOSError(f"arm64 module {name} not found under {root}/lib/modules/{kver}")
        depends = subprocess.run(["modinfo", "-F", "depends", str(path)], check=True, capture_output=True,
                                 text=True).stdout.strip()
        for dep in filter(None, depends.split(",")):
            visit(dep)
        order.append((name, path))

    for module in modules:
        visit(module)
    return order


def build(cache_dir: Path | None = None, root: Path = ARM64_ROOT) -> tuple[Path, Path]:
    """Build (or reuse from the cache) the arm64 kernel and initramfs; returns their paths."""
    kver = kernel_version(root)
    busybox = root / "bin/busybox"
    if not busybox.is_file():
        raise TestOSError(f"{busybox} not found: {INSTALL_HINT}")
    lab_files = resources.files("bootserver.lab") / "files"
    modules = module_load_order(root, kver)
    files = {
        "init": (lab_files / "testos-arm64-init").read_bytes(),
        "udhcpc.script": (lab_files / "udhcpc-script").read_bytes(),
        "bin/busybox": busybox.read_bytes(),
        "disk-payload.img": disk_payload("aa64"),
        "lib/modules/order": "".join(f"{name}\n" for name, _ in modules).encode(),
        **{f"lib/modules/{name}.ko": path.read_bytes() for name, path in modules},
    }
    kernel_src = root / "boot" / f"vmlinuz-{kver}"
    digest = hashlib.sha256(kernel_src.read_bytes())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    target = (cache_dir or default_cache_dir()) / f"testos-arm64-{kver}-{digest.hexdigest()[:16]}"
    kernel, initrd = target / KERNEL_NAME, target / INITRD_NAME
    if kernel.exists() and initrd.exists():
        return kernel, initrd
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".testos-arm64-", dir=target.parent))
    try:
        (staging / KERNEL_NAME).write_bytes(gzip.compress(kernel_src.read_bytes(), compresslevel=6, mtime=0))
        (staging / INITRD_NAME).write_bytes(build_initramfs(files, {"init", "udhcpc.script", "bin/busybox"}))
        try:
            staging.rename(target)  # atomic: a parallel build that won the race is just as good
        except OSError:
            if not initrd.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return kernel, initrd


def install_into(assets_dir: Path, subdir: str = "testos-arm64", cache_dir: Path | None = None) -> tuple[str, str]:
    """Put the arm64 test OS into an assets folder; returns the kernel and initrd paths relative to it."""
    dest = assets_dir / subdir
    dest.mkdir(parents=True, exist_ok=True)
    for src in build(cache_dir):
        target = dest / src.name
        if not target.exists() or target.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, target)
    return f"{subdir}/{KERNEL_NAME}", f"{subdir}/{INITRD_NAME}"
