"""Build the lab's test OSes from Debian packages, cached by content.

Flatcar images cannot be downloaded in CI, so the lab boots a stand-in: Debian's kernel plus a
busybox-static initramfs that runs systemd and real Ignition, as Flatcar's initramfs does
(files/testos-init, files/testos-install, testos_ignition.py). One builder makes both: the x86
test OS from the host's own packages (root `/`), the arm64 one from Debian's arm64 packages that
scripts/bootstrap.sh unpacks under config.ARM64_ROOT (an amd64 host cannot install them). Debian
builds the NIC and disk drivers as modules, so the initramfs carries them and /init loads them in
dependency order.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bootserver.config import ARM64_ROOT
from bootserver.lab.disk import disk_payload


@dataclass(frozen=True)
class Flavor:
    """What differs between the x86 and the arm64 test OS: where the packages are, and names."""
    name: str  # the cache folder's and the assets subfolder's prefix
    root: Path  # where the Debian packages are unpacked (installed, for the host's own)
    efi_arch: str  # the disk's removable-media loader, BOOT<efi_arch>.EFI
    modules: tuple[str, ...]  # drivers for the lab's NICs and disk (dependencies are added)
    kernel_name: str
    gzip_kernel: bool  # arm64's Image is not compressed: a gzip'd one is a third of the TFTP transfer
    install_hint: str


#: The virtio PCI transport and the drivers for the lab NICs and disk.
X86 = Flavor("testos", Path("/"), "x64", ("virtio_pci", "virtio_net", "e1000", "virtio_blk"),
             "testos-vmlinuz", False, "install linux-image-amd64 and busybox-static")
ARM64 = Flavor("testos-arm64", ARM64_ROOT, "aa64", ("virtio_pci", "virtio_net", "virtio_blk"),
               "testos-arm64-vmlinuz.gz", True,
               f"run scripts/bootstrap.sh install (it unpacks Debian's arm64 packages into {ARM64_ROOT})")
INITRD_NAME = "initramfs.img"


class TestOSError(RuntimeError):
    pass


@dataclass(frozen=True)
class TestOS:
    kernel: Path
    initrd: Path


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bootserver" / "lab"


def kernel_version(flavor: Flavor) -> str:
    """The newest kernel under the flavor's root that has its modules."""
    root = flavor.root
    versions = sorted((p.name.removeprefix("vmlinuz-") for p in (root / "boot").glob("vmlinuz-*")
                       if (root / "lib/modules" / p.name.removeprefix("vmlinuz-")).is_dir()), key=_version_key)
    if not versions:
        raise TestOSError(f"no kernel with modules under {root / 'boot'}: {flavor.install_hint}")
    return versions[-1]


def _version_key(version: str) -> list:
    return [int(p) if p.isdigit() else p for p in version.replace("-", ".").split(".")]


def module_load_order(root: Path, kver: str, modules: tuple[str, ...]) -> list[tuple[str, Path]]:
    """The modules and their dependencies, each after what it depends on (modinfo reads any
    architecture's .ko); modules built into the kernel need nothing."""
    tree = root / "lib/modules" / kver
    index = {p.name.removesuffix(".ko").replace("-", "_"): p for p in tree.rglob("*.ko")}
    builtin_list = tree / "modules.builtin"
    builtin = {Path(line).name.removesuffix(".ko").replace("-", "_")
               for line in (builtin_list.read_text().split() if builtin_list.exists() else ())}
    order: list[tuple[str, Path]] = []

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name in builtin or name in (n for n, _ in order):
            return
        path = index.get(name)
        if path is None:
            raise TestOSError(f"module {name} not found under {tree} (compressed modules are not supported)")
        try:
            depends = subprocess.run(["modinfo", "-F", "depends", str(path)], check=True, capture_output=True,
                                     text=True).stdout.strip()
        except FileNotFoundError:
            raise TestOSError("modinfo not found: install kmod") from None
        for dep in filter(None, depends.split(",")):
            visit(dep)
        order.append((name, path))

    for module in modules:
        visit(module)
    return order


def _cpio_entry(name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0), ino: int = 1) -> bytes:
    """One entry of a "newc" cpio archive (what the kernel unpacks as initramfs)."""
    encoded = name.encode() + b"\0"
    header = "070701" + "".join(f"{v:08x}" for v in (
        ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0))
    out = header.encode() + encoded
    out += b"\0" * (-len(out) % 4)
    out += data + b"\0" * (-len(data) % 4)
    return out


def build_initramfs(files: dict[str, bytes], executables: set[str], links: dict[str, str] | None = None) -> bytes:
    """A gzip'd newc cpio with the standard directories, /dev/console and /dev/null, `files`
    (parent directories added) and symbolic `links` (name -> target)."""
    links = links or {}
    archive = io.BytesIO()
    ino = 1
    dirs = {"bin", "dev", "proc", "sys", "tmp", "run", "lib", "lib/modules"}
    for name in list(files) + list(links):
        parts = name.split("/")[:-1]
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    for d in sorted(dirs):
        archive.write(_cpio_entry(d, 0o040755, ino=ino))
        ino += 1
    # The kernel opens /dev/console for PID 1 before /init can mount devtmpfs.
    archive.write(_cpio_entry("dev/console", 0o020600, rdev=(5, 1), ino=ino))
    archive.write(_cpio_entry("dev/null", 0o020666, rdev=(1, 3), ino=ino + 1))
    ino += 2
    for name, data in sorted(files.items()):
        mode = 0o100755 if name in executables else 0o100644
        archive.write(_cpio_entry(name, mode, data, ino=ino))
        ino += 1
    for name, target in sorted({**links, "bin/sh": "busybox"}.items()):
        archive.write(_cpio_entry(name, 0o120777, target.encode(), ino=ino))
        ino += 1
    archive.write(_cpio_entry("TRAILER!!!", 0, ino=0))
    return gzip.compress(archive.getvalue(), compresslevel=6, mtime=0)


def _initramfs_inputs(flavor: Flavor, kver: str) -> tuple[dict[str, bytes], set[str], dict[str, str]]:
    from bootserver.lab import testos_ignition  # it uses TestOSError from here

    busybox = flavor.root / "bin/busybox"
    if not busybox.is_file():
        raise TestOSError(f"{busybox} not found: {flavor.install_hint}")
    lab_files = resources.files("bootserver.lab") / "files"
    modules = module_load_order(flavor.root, kver, flavor.modules + testos_ignition.MODULES)
    files = {
        "init": (lab_files / "testos-init").read_bytes(),
        "testos-install": (lab_files / "testos-install").read_bytes(),
        "udhcpc.script": (lab_files / "udhcpc-script").read_bytes(),
        "bin/busybox": busybox.read_bytes(),
        "disk-payload.img": disk_payload(flavor.efi_arch),
        "lib/modules/order": "".join(f"{name}\n" for name, _ in modules).encode(),
    }
    for name, path in modules:
        files[f"lib/modules/{name}.ko"] = path.read_bytes()
    ignition_files, ignition_executables, links = testos_ignition.ignition_inputs(flavor.root)
    files.update(ignition_files)
    return files, {"init", "testos-install", "udhcpc.script", "bin/busybox"} | ignition_executables, links


def build(cache_dir: Path | None = None, flavor: Flavor = X86) -> TestOS:
    """Build (or reuse from the cache) the test OS kernel and initramfs; returns their paths."""
    kver = kernel_version(flavor)
    kernel_src = flavor.root / "boot" / f"vmlinuz-{kver}"
    files, executables, links = _initramfs_inputs(flavor, kver)
    digest = hashlib.sha256(kernel_src.read_bytes())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    for name in sorted(links):
        digest.update(f"{name}\0{links[name]}\0".encode())
    target = (cache_dir or default_cache_dir()) / f"{flavor.name}-{kver}-{digest.hexdigest()[:16]}"
    result = TestOS(kernel=target / flavor.kernel_name, initrd=target / f"{flavor.name}-{INITRD_NAME}")
    if result.kernel.exists() and result.initrd.exists():
        return result
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{flavor.name}-", dir=target.parent))
    try:
        kernel = kernel_src.read_bytes()
        (staging / result.kernel.name).write_bytes(gzip.compress(kernel, 6, mtime=0) if flavor.gzip_kernel else kernel)
        (staging / result.initrd.name).write_bytes(build_initramfs(files, executables, links))
        try:
            staging.rename(target)  # atomic: a parallel build that won the race is just as good
        except OSError:
            if not result.initrd.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def install_into(assets_dir: Path, flavor: Flavor = X86, cache_dir: Path | None = None) -> tuple[str, str]:
    """Put the test OS into the assets folder's `flavor.name` subfolder; returns the kernel and
    initrd paths relative to the assets folder."""
    built = build(cache_dir, flavor)
    dest = assets_dir / flavor.name
    dest.mkdir(parents=True, exist_ok=True)
    for src in (built.kernel, built.initrd):
        target = dest / src.name
        if not target.exists() or target.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, target)
    return f"{flavor.name}/{built.kernel.name}", f"{flavor.name}/{built.initrd.name}"
