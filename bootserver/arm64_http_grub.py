"""bootserver's own arm64 GRUB for UEFI HTTP Boot (arch 19): built with `grub-mkimage -O arm64-efi`
from Debian's arm64 GRUB modules (grub-efi-arm64-bin, unpacked by scripts/bootstrap.sh), with the
early config of render.grub_http_boot and the HTTP server's address in it.

Why a build and not Debian's image: Debian's signed netboot GRUB started by HTTP Boot has an
address but no server to load its config from (it looks for TFTP from the PXE DHCP packet) and
stops at its prompt, and its config cannot be changed without breaking its signature.
This image is unsigned, so an arm64 machine with Secure Boot enforcing takes the PXE path (arch 11).

One image per server address a machine reached (the Host of the loader URL), built on first
request in a worker process (about 0.1 s), kept in memory (about 700 KB each, a few addresses).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from bootserver.boot.loaders import GRUB_ARM64, GRUB_ARM64_HTTP
from bootserver.config import Settings
from bootserver.render.grub_http_boot import early_config, http_server

MKIMAGE = "grub-mkimage"
#: network, HTTP and TFTP (assets), the Linux loader, and what the local-disk config uses
MODULES = ("boot", "chain", "configfile", "echo", "efinet", "ext2", "fat", "gzio", "http", "linux", "minicmd",
           "net", "normal", "part_gpt", "part_msdos", "search", "search_fs_file", "search_fs_uuid", "search_label",
           "sleep", "test", "tftp", "true")
BUILD_TIMEOUT = 30  # seconds
MAX_IMAGES = 8  # distinct server addresses kept


class BuildError(RuntimeError):
    pass


def _missing(settings: Settings) -> list[str]:
    modules = settings.grub_arm64_modules
    wanted = ["kernel.img", "moddep.lst", *(f"{m}.mod" for m in MODULES)]
    return [name for name in wanted if not (modules / name).is_file()]


def status(settings: Settings) -> tuple[bool, str]:
    """Whether arm64 HTTP Boot is answered, and the line `bootserver serve` says about it at start."""
    if settings.arm64_loader != GRUB_ARM64:
        return False, f"arm64 HTTP Boot: not answered (it needs arm64_loader: {GRUB_ARM64})"
    if not settings.arm64_http_boot:
        return False, "arm64 HTTP Boot: not answered (arm64_http_boot: false); arm64 firmware takes PXE"
    if shutil.which(MKIMAGE) is None:
        return False, f"arm64 HTTP Boot: not answered: {MKIMAGE} not found (install grub-common)"
    missing = _missing(settings)
    if missing:
        return False, (f"arm64 HTTP Boot: not answered: {settings.grub_arm64_modules} lacks {', '.join(missing[:3])} "
                       "(scripts/bootstrap.sh install unpacks grub-efi-arm64-bin there)")
    return True, (f"arm64 HTTP Boot: serving {GRUB_ARM64_HTTP}, GRUB built by {MKIMAGE} from "
                  f"{settings.grub_arm64_modules} (unsigned; net_dhcp, then grub.cfg over HTTP)")


class Arm64HttpGrub:
    """Images by server address, each built once; concurrent first requests share one build."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._images: dict[str, bytes] = {}
        self._lock = asyncio.Lock()

    async def image(self, host: str, port: int) -> bytes:
        """The image for `host:port`; GrubRenderError for an address that cannot go in, BuildError if
        grub-mkimage fails."""
        server = http_server(host, port)
        async with self._lock:
            if server not in self._images:
                if len(self._images) >= MAX_IMAGES:
                    self._images.pop(next(iter(self._images)))
                self._images[server] = await self._build(host, port)
            return self._images[server]

    async def _build(self, host: str, port: int) -> bytes:
        with tempfile.TemporaryDirectory(prefix="bootserver-grub-") as tmp:
            config, output = Path(tmp) / "early.cfg", Path(tmp) / GRUB_ARM64_HTTP
            config.write_text(early_config(host, port))
            proc = await asyncio.create_subprocess_exec(
                MKIMAGE, "-O", "arm64-efi", "-d", str(self.settings.grub_arm64_modules), "-c", str(config),
                "-p", f"(http,{http_server(host, port)})/", "-o", str(output), *MODULES,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), BUILD_TIMEOUT)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
                raise BuildError(f"{MKIMAGE} took more than {BUILD_TIMEOUT} s") from None
            if proc.returncode != 0 or not output.is_file():
                raise BuildError(f"{MKIMAGE} failed ({proc.returncode}): {out.decode(errors='replace')[-300:]}")
            return await asyncio.to_thread(output.read_bytes)
