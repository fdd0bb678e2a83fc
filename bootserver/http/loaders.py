"""GET /loaders/{name}: the iPXE EFI binaries for UEFI HTTP Boot clients (the proxyDHCP hands out
this URL instead of a TFTP file name). Flat names only, from the same folders TFTP serves, plus
Debian's signed shim and GRUB (boot.loaders), and bootserver's arm64 HTTP Boot GRUB, built for the
server address the machine reached (arm64_http_grub)."""

from __future__ import annotations

import logging
import re

from aiohttp import web
from yarl import URL

from bootserver.arm64_http_grub import Arm64HttpGrub, BuildError
from bootserver.boot.loaders import GRUB_ARM64, GRUB_ARM64_HTTP, signed_loader
from bootserver.http.common import SETTINGS, settings_of
from bootserver.render.grub import GrubRenderError
from bootserver.boot_files import PathRefused, Root, resolve

log = logging.getLogger("bootserver.http")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
ARM64_HTTP_GRUB = web.AppKey("arm64_http_grub", Arm64HttpGrub)


def _server_address(request: web.Request, settings) -> tuple[str, int]:
    """advertise_url's host and port, else the local address this connection came in on (never the
    Host header: a client must not make bootserver build images for names of its choosing)."""
    if settings.advertise_url:
        url = URL(settings.advertise_url)
        if url.scheme != "http" or url.host is None:
            raise web.HTTPNotFound(text=f"{GRUB_ARM64_HTTP} fetches its config over plain http://, "
                                        f"not {settings.advertise_url}\n")
        return url.host, url.port or 80
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        raise web.HTTPNotFound(text="no local address for this connection\n")
    return sockname[0], sockname[1]


async def arm64_http_grub(request: web.Request) -> web.Response:
    """grubhttpaa64.efi with this server's address (as the machine reached it) in its early config."""
    settings = settings_of(request)
    if settings.arm64_loader != GRUB_ARM64 or not settings.arm64_http_boot:
        raise web.HTTPNotFound(text=f"{GRUB_ARM64_HTTP} is served with arm64_loader: {GRUB_ARM64} "
                                    "and arm64_http_boot on\n")
    host, port = _server_address(request, settings)
    try:
        image = await request.app[ARM64_HTTP_GRUB].image(host, port)
    except GrubRenderError as exc:
        log.warning("refused %s to %s: %s", GRUB_ARM64_HTTP, request.remote, exc)
        raise web.HTTPNotFound(text=f"{exc}\n") from None
    except BuildError as exc:
        log.error("cannot build %s: %s", GRUB_ARM64_HTTP, exc)
        raise web.HTTPServiceUnavailable(text=f"cannot build {GRUB_ARM64_HTTP}: {exc}\n") from None
    return web.Response(body=image, headers={"Content-Type": "application/efi"})


async def get_loader(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if not NAME.match(name):
        raise web.HTTPNotFound(text="no such loader\n")
    if name == GRUB_ARM64_HTTP:
        return await arm64_http_grub(request)
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
    app[ARM64_HTTP_GRUB] = Arm64HttpGrub(app[SETTINGS])
    app.router.add_get("/loaders/{name}", get_loader)
    # shim loaded over UEFI HTTP Boot asks for its second stage as <its folder>/ + "\grubx64.efi",
    # so the name arrives after a double slash (measured: GET /loaders//grubx64.efi)
    app.router.add_get("/loaders//{name}", get_loader)
