"""GET /loaders/{name}: the iPXE EFI binaries for UEFI HTTP Boot clients (the proxyDHCP hands out
this URL instead of a TFTP file name). Flat names only, from the same folders TFTP serves, plus
Debian's signed shim and GRUB (boot.loaders)."""

from __future__ import annotations

import re

from aiohttp import web

from bootserver.boot.loaders import signed_loader
from bootserver.http.common import settings_of

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


async def get_loader(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if not NAME.match(name):
        raise web.HTTPNotFound(text="no such loader\n")
    settings = settings_of(request)
    signed = signed_loader(name, settings)
    if signed is not None:
        if not signed.is_file():
            raise web.HTTPNotFound(text=f"{name}: {signed} is missing (install grub-efi-amd64-signed, shim-signed)\n")
        return web.FileResponse(signed, headers={"Content-Type": "application/efi"})
    for folder in (settings.ipxe_dir, *settings.tftp_root):
        path = folder / name
        if path.is_file():  # the ipxe package's own symlinks (ipxe.efi -> /boot/ipxe.efi) are trusted
            return web.FileResponse(path, headers={"Content-Type": "application/efi"})
    raise web.HTTPNotFound(text=f"no loader {name!r} in {settings.ipxe_dir}\n")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/loaders/{name}", get_loader)
