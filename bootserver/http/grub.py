"""GET /grub.cfg?mac=…: the machine's GRUB config over HTTP (the same answer TFTP gives as
grub/grub.cfg), for GRUB builds that fetch it over HTTP (arm64 HTTP Boot) and for a look from a browser.

The connection is closed after the answer: GRUB keeps the file open while it runs the config, so
the kernel starts with the connection still up, and every GRUB run opens its first connection from
the same port (21550). A connection left to the idle timeout then collides with the next boot's
first request, which hangs for 20 s and fails. Closed, GRUB answers the FIN with a reset, and no
state is left on either side.
"""

from __future__ import annotations

from aiohttp import web
from yarl import URL

from bootserver.boot.request import Stage
from bootserver.http.common import base_url, boot_request, runtime_of


async def get_grub_cfg(request: web.Request) -> web.Response:
    """`assets=http`: the asking GRUB has HTTP (bootserver's arm64 HTTP Boot GRUB), so kernel and
    initrds come from this HTTP server, as the machine reached it; else from TFTP."""
    boot = boot_request(request, Stage.GRUB)
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    base = base_url(request)
    http = None
    if request.query.get("assets") == "http":
        url = URL(base)
        http = (url.host or "", url.port or 80)
    text = await runtime_of(request).grub_config(boot, base, sockname[0] if sockname else "0.0.0.0", http)
    response = web.Response(text=text, content_type="text/plain")
    response.force_close()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/grub.cfg", get_grub_cfg)
