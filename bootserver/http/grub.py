"""GET /grub.cfg?mac=…: the machine's GRUB config over HTTP (the same answer TFTP gives as
grub/grub.cfg), for GRUB builds that fetch it over HTTP and for a look from a browser."""

from __future__ import annotations

from aiohttp import web

from bootserver.boot.request import Stage
from bootserver.http.common import base_url, boot_request, runtime_of


async def get_grub_cfg(request: web.Request) -> web.Response:
    boot = boot_request(request, Stage.GRUB)
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    text = await runtime_of(request).grub_config(boot, base_url(request), sockname[0] if sockname else "0.0.0.0")
    return web.Response(text=text, content_type="text/plain")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/grub.cfg", get_grub_cfg)
