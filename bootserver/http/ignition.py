"""GET /ignition?mac=…: the machine's rendered Ignition config (JSON, with an ETag)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging

from aiohttp import web

from bootserver.boot.request import Stage
from bootserver.http.common import MACHINE, base_url, boot_request, runtime_of
from bootserver.render import profile_ignition as ignition_render
from bootserver.render.context import template_context

log = logging.getLogger("bootserver.http")


def _json_error(status: type[web.HTTPException], message: str) -> web.HTTPException:
    return status(text=json.dumps({"error": message}) + "\n", content_type="application/json")


async def get_ignition(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    boot = boot_request(request, Stage.OS)
    decision = await runtime.decide(boot)
    if decision.match is None:
        raise _json_error(web.HTTPNotFound, f"no profile matches MAC {boot.mac}: {decision.reason}")
    match = decision.match
    request[MACHINE] = match.name
    try:
        profile = ignition_render.profile_for_stage(match.profile, request.query.get("stage", ""), runtime.catalog)
    except LookupError as exc:
        raise _json_error(web.HTTPNotFound, str(exc).strip("'\"")) from None
    except ValueError as exc:
        raise _json_error(web.HTTPBadRequest, str(exc)) from None
    if profile.ignition is None:
        raise _json_error(web.HTTPNotFound, f"profile {profile.name} has no ignition config")
    context = template_context(match, boot, base_url(request), decision.record.token)
    try:
        # off the loop: a render may take up to its time limit (render/limits.py)
        body = await asyncio.to_thread(ignition_render.for_profile, profile, context, runtime.catalog)
    except ignition_render.RenderError as exc:
        log.error("%s (%s): Ignition render failed for profile %s: %s", match.name, boot.mac,
                  profile.name, exc)
        await runtime.observe(boot, "render.failed", {"what": "ignition", "error": str(exc)})
        raise _json_error(web.HTTPInternalServerError, f"render failed: {exc}") from None
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    await runtime.observe(boot, "http.ignition", {"profile": profile.name, "bytes": len(body),
                                                  **({"stage": "final"} if profile is not match.profile else {})})
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(body=body, content_type="application/json", headers={"ETag": etag})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ignition", get_ignition)
