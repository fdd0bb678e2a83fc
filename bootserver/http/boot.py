"""GET /boot.ipxe (the same chain script for every client) and GET /ipxe (the machine's own script)."""

from __future__ import annotations

import logging

from aiohttp import web

from bootserver.boot.request import Stage
from bootserver.http.common import MACHINE, base_url, boot_request, runtime_of
from bootserver.render.args import ArgError
from bootserver.render.context import template_context
from bootserver.render.ipxe import boot_script, chain_script, local_disk_script, no_boot_script

log = logging.getLogger("bootserver.http")
IPXE_TYPE = "text/plain"


async def get_boot_ipxe(request: web.Request) -> web.Response:
    return web.Response(text=chain_script(base_url(request)), content_type=IPXE_TYPE)


async def get_ipxe(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    boot = boot_request(request, Stage.IPXE)
    decision = await runtime.decide(boot)
    name = decision.match.name if decision.match else "unknown"
    request[MACHINE] = name
    if decision.action == "ignore":
        log.info("%s (%s): not booting: %s", name, boot.mac, decision.reason)
        await runtime.observe(boot, "http.ipxe", {"action": "ignore", "reason": decision.reason})
        return web.Response(text=no_boot_script(decision.reason), content_type=IPXE_TYPE)
    if decision.action == "local-disk":
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        script = local_disk_script(name, boot.firmware, base_url(request), sockname[0] if sockname else None)
    else:
        context = template_context(decision.match, boot, base_url(request), decision.record.token)
        try:
            script = boot_script(name, decision.match.profile, context, base_url(request))
        except (ArgError, ValueError) as exc:
            log.error("%s (%s): cannot render profile %s (%s): %s", name, boot.mac,
                      decision.match.profile.name, decision.match.profile.source, exc)
            await runtime.observe(boot, "render.failed", {"what": "ipxe", "error": str(exc)})
            raise web.HTTPInternalServerError(text=f"cannot render the boot script: {exc}\n") from None
    log.info("%s (%s) gets %s: %s", name, boot.mac, decision.action, decision.reason)
    await runtime.observe(boot, "http.ipxe", {"action": decision.action, "reason": decision.reason,
                                              "profile": decision.match.profile.name})
    return web.Response(text=script, content_type=IPXE_TYPE)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/boot.ipxe", get_boot_ipxe)
    app.router.add_get("/ipxe", get_ipxe)
