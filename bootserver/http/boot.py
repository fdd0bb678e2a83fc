"""GET /boot.ipxe (the same chain script for every client) and GET /ipxe (the machine's own script)."""

from __future__ import annotations

import logging

from aiohttp import web

from bootserver.boot.request import Stage
from bootserver.http.common import MACHINE, base_url, boot_request, runtime_of
from bootserver.logs import FastInfo
from bootserver.render.args import ArgError
from bootserver.render.ipxe import chain_script

log = logging.getLogger("bootserver.http")
decided = FastInfo(log)  # a line per answer that is not a repeat (timeline_fold): up to one per machine a second
IPXE_TYPE = "text/plain"


async def get_boot_ipxe(request: web.Request) -> web.Response:
    return web.Response(text=chain_script(base_url(request)), content_type=IPXE_TYPE)


async def get_ipxe(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    boot = boot_request(request, Stage.IPXE)
    decision = await runtime.decide(boot)
    name = decision.match.name if decision.match else "unknown"
    request[MACHINE] = name
    token = decision.record.token if decision.record else None
    try:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        script = runtime.ipxe_script(decision, boot, base_url(request), sockname[0] if sockname else None)
    except (ArgError, ValueError) as exc:
        profile = decision.match.profile
        if token is None:  # the store could not be read: a script needing the machine's token must wait
            log.warning("%s (%s): profile %s needs the state store, which is unreachable: %s", name, boot.mac,
                        profile.name, exc)
            raise web.HTTPServiceUnavailable(text="state store unavailable; retry\n",
                                             headers={"Retry-After": "5"}) from None
        log.error("%s (%s): cannot render profile %s (%s): %s", name, boot.mac, profile.name, profile.source, exc)
        await runtime.observe(boot, "render.failed", {"what": "ipxe", "error": str(exc)})
        raise web.HTTPInternalServerError(text=f"cannot render the boot script: {exc}\n") from None
    detail = {"action": decision.action, "reason": decision.reason}
    if decision.match is not None and decision.action != "ignore":
        detail["profile"] = decision.match.profile.name
    if await runtime.observe(boot, "http.ipxe", detail):  # not the same answer again a moment later
        decided.info("%s (%s) gets %s: %s", name, boot.mac, decision.action, decision.reason)
    return web.Response(text=script, content_type=IPXE_TYPE)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/boot.ipxe", get_boot_ipxe)
    app.router.add_get("/ipxe", get_ipxe)
