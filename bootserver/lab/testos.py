"""Build the lab's test OS from Debian packages on this machine, cached by content.

Flatcar images cannot be downloaded in CI, so the lab boots a stand-in: Debian's kernel
(linux-image-amd64) plus a busybox-static initramfs that runs systemd and real Ignition, as
Flatcar's initramfs does (files/testos-init, files/testos-install, testos_ignition.py). Debian builds the NIC and disk drivers as modules, so the initramfs carries
them and /init loads them in dependency order.
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

from bootserver.lab.disk import disk_payload

#: The virtio PCI transport and the drivers for the lab NICs and disk (dependencies are added).
MODULES = ("virtio_pci", "virtio_net", "e1000", "virtio_blk")
BUSYBOX = Path("/bin/busybox")
KERNEL_NAME = "testos-vmlinuz"
INITRD_NAME = "testos-initramfs.img"


class TestOSError(RuntimeError):
    pass


@dataclass(frozen=True)
class TestOS:
    kernel: Path
    initrd: Path


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bootserver" / "lab"


def latest_kernel_version(modules_root: Path = Path("/lib/modules")) -> str:
    versions = sorted((p.name for p in modules_root.iterdir() if (Path("/boot") / f"vmlinuz-{p.name}").exists()),
                      key=_version_key) if modules_root.is_dir() else []
    if not versions:
        raise TestOSError("no kernel found: install linux-image-amd64 (needs /boot/vmlinuz-* and /lib/modules/*)")
    return versions[-1]


def _version_key(version: str) -> list:
    return [int(p) if p.isdigit() else p for p in version.replace("-", ".").split(".")]


def _modinfo(kver: str, module: str, field: str) -> str:
    try:
        out = subprocess.run(["modinfo", "-k", kver, "-F", field, module], check=True,
                             capture_output=True, text=True).stdout
    except FileNotFoundError:
        raise TestOSError("modinfo not found: install kmod") from None
    except subprocess.CalledProcessError as exc:
        raise TestOSError(f"module {module} not found for kernel {kver}: {exc.stderr.strip()}") from None
    return out.strip()


def module_load_order(kver: str, modules: tuple[str, ...] = MODULES) -> list[tuple[str, Path]]:
    """The modules and their dependencies, each after what it depends on."""
    order: list[tuple[str, Path]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dep in filter(None, _modinfo(kver, name, "depends").split(",")):
            visit(dep)
        filename = _modinfo(kver, name, "filename")
        if filename.endswith(".ko"):  # "(builtin)" needs nothing
            order.append((name, Path(filename)))
        elif not filename.startswith("(builtin)"):
            raise TestOSError(f"module {name}: compressed module {filename} is not supported")

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


def _initramfs_inputs(kver: str) -> tuple[dict[str, bytes], set[str], dict[str, str]]:
    from bootserver.lab import testos_ignition  # it uses TestOSError from here

    if not BUSYBOX.exists():
        raise TestOSError(f"{BUSYBOX} not found: install busybox-static")
    lab_files = resources.files("bootserver.lab") / "files"
    modules = module_load_order(kver, MODULES + testos_ignition.MODULES)
    files = {
        "init": (lab_files / "testos-init").read_bytes(),
        "testos-install": (lab_files / "testos-install").read_bytes(),
        "udhcpc.script": (lab_files / "udhcpc-script").read_bytes(),
        "bin/busybox": BUSYBOX.read_bytes(),
        "disk-payload.img": disk_payload(),
        "lib/modules/order": "".join(f"{name}\n" for name, _ in modules).encode(),
    }
    for name, path in modules:
        files[f"lib/modules/{name}.ko"] = path.read_bytes()
    ignition_files, ignition_executables, links = testos_ignition.ignition_inputs()
    files.update(ignition_files)
    return files, {"init", "testos-install", "udhcpc.script", "bin/busybox"} | ignition_executables, links


def build(cache_dir: Path | None = None, kver: str | None = None) -> TestOS:
    """Build (or reuse from the cache) the test OS kernel and initramfs; returns their paths."""
    kver = kver or latest_kernel_version()
    kernel_src = Path(f"/boot/vmlinuz-{kver}")
    if not kernel_src.exists():
        raise TestOSError(f"{kernel_src} not found: install linux-image-amd64")
    files, executables, links = _initramfs_inputs(kver)
    digest = hashlib.sha256(kernel_src.read_bytes())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    for name in sorted(links):
        digest.update(f"{name}\0{links[name]}\0".encode())
    target = (cache_dir or default_cache_dir()) / f"testos-{kver}-{digest.hexdigest()[:16]}"
    result = TestOS(kernel=target / KERNEL_NAME, initrd=target / INITRD_NAME)
    if result.kernel.exists() and result.initrd.exists():
        return result
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".testos-", dir=target.parent))
    try:
        shutil.copyfile(kernel_src, staging / KERNEL_NAME)
        (staging / INITRD_NAME).write_bytes(build_initramfs(files, executables, links))
        try:
            staging.rename(target)  # atomic: a parallel build that won the race is just as good
        except OSError:
            if not result.initrd.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def install_into(assets_dir: Path, subdir: str = "testos", cache_dir: Path | None = None) -> tuple[str, str]:
    """Put the test OS into an assets folder; returns the kernel and initrd paths relative to it."""
    built = build(cache_dir)
    dest = assets_dir / subdir
    dest.mkdir(parents=True, exist_ok=True)
    for src in (built.kernel, built.initrd):
        target = dest / src.name
        if not target.exists() or target.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, target)
    return f"{subdir}/{KERNEL_NAME}", f"{subdir}/{INITRD_NAME}"
