"""GET /metadata?mac=…: the merged metadata as KEY=value lines (like matchbox) or JSON."""

from __future__ import annotations

from aiohttp import web

from bootserver.boot.request import Stage
from bootserver.http.common import MACHINE, boot_request, runtime_of
from bootserver.render.context import plain
from bootserver.render.metadata import metadata_lines


async def get_metadata(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    boot = boot_request(request, Stage.OS)
    found = runtime.match(boot)
    if found is None:
        raise web.HTTPNotFound(text=f"no profile matches MAC {boot.mac}\n")
    request[MACHINE] = found.name
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response(plain(found.metadata))
    return web.Response(text=metadata_lines(found.metadata), content_type="text/plain")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metadata", get_metadata)
