"""The GRUB files on TFTP: Debian's signed shim and netboot GRUB under the names the chain asks
for, `grub/grub.cfg`, rendered for whichever machine asks (known by its address from DHCP), and
the assets folder under `assets/` (that GRUB has no HTTP)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bootserver.boot.loaders import GRUB, GRUB_ARM64, GRUB_CONFIGS, SHIM, signed_loader
from bootserver.boot.request import BootRequest, Stage
from bootserver.config import Settings
from bootserver.render.grub import ASSETS_ON_TFTP, no_boot_config
from bootserver.tftp.server import FileRequest, TFTPServer

_cache: dict[tuple, bytes] = {}  # (path, size, mtime) -> bytes: two files of a few MB at most


def _read(path: Path) -> bytes | None:
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _cache:
        if len(_cache) > 4:
            _cache.clear()
        _cache[key] = path.read_bytes()
    return _cache[key]


def register_grub_files(tftp: TFTPServer, runtime, settings: Settings) -> None:
    def loader(name: str):
        async def serve(_request: FileRequest) -> bytes | None:
            return await asyncio.to_thread(_read, signed_loader(name, settings))
        return serve

    async def config(request: FileRequest) -> bytes:
        if request.mac is None:  # this address never asked bootserver for anything over DHCP or HTTP
            return no_boot_config(f"bootserver does not know the machine at {request.client_ip}").encode()
        record = await runtime.machine(request.mac)  # the arch its firmware gave over DHCP (arm64 or x86-64)
        arch = record.arch if record is not None and record.arch else "x86_64-efi"
        boot = BootRequest(mac=request.mac, arch=arch, stage=Stage.GRUB, client_ip=request.client_ip)
        base = runtime.advertise_url(request.server_ip or None)
        return (await runtime.grub_config(boot, base, request.server_ip)).encode()

    tftp.register(GRUB, loader(GRUB))
    tftp.register(SHIM, loader(SHIM))
    tftp.register(GRUB_ARM64, loader(GRUB_ARM64))
    for name in GRUB_CONFIGS:
        tftp.register(name, config)
    tftp.serve_folder(ASSETS_ON_TFTP, str(settings.assets))  # kernels and initrds for GRUB
