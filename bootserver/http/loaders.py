"""GET /loaders/{name}: the iPXE EFI binaries for UEFI HTTP Boot clients (the proxyDHCP hands out
this URL instead of a TFTP file name). Flat names only, from the same folders TFTP serves, plus
Debian's signed shim and GRUB (boot.loaders)."""

from __future__ import annotations

import logging
import re

from aiohttp import web

from bootserver.boot.loaders import signed_loader
from bootserver.http.common import settings_of
from bootserver.boot_files import PathRefused, Root, resolve

log = logging.getLogger("bootserver.http")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


async def get_loader(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if not NAME.match(name):
        raise web.HTTPNotFound(text="no such loader\n")
    settings = settings_of(request)
    signed = signed_loader(name, settings)
    if signed is not None:
        if not signed.is_file():
            raise web.HTTPNotFound(text=f"{name}: {signed} is missing (install grub-efi-amd64-signed, shim-signed; "
                                        "arm64: scripts/bootstrap.sh install)\n")
        return web.FileResponse(signed, headers={"Content-Type": "application/efi"})
    # the same rule as TFTP: the iPXE package's own links (ipxe.efi -> /boot/ipxe.efi) are trusted,
    # a link in a tftp_root folder must stay inside it
    roots = [Root(str(settings.ipxe_dir), confined=False), *(Root(str(p)) for p in settings.tftp_root)]
    try:
        path = resolve(name, roots)
    except PathRefused as exc:
        log.warning("refused loader %r to %s: %s", name, request.remote, exc)
        raise web.HTTPForbidden(text="refused\n") from None
    if path is None:
        raise web.HTTPNotFound(text=f"no loader {name!r} in {settings.ipxe_dir}\n")
    return web.FileResponse(path, headers={"Content-Type": "application/efi"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/loaders/{name}", get_loader)
    # shim loaded over UEFI HTTP Boot asks for its second stage as <its folder>/ + "\grubx64.efi",
    # so the name arrives after a double slash (measured: GET /loaders//grubx64.efi)
    app.router.add_get("/loaders//{name}", get_loader)
