"""The admin API for Flatcar updates: GET /api/v1/updates shows every rollout and machine,
POST /api/v1/updates/pause and /resume (optional ?rollout=group/NAME) control them.
Same authorization as the rest of the admin API."""

from __future__ import annotations

import logging

from aiohttp import web

from bootserver.boot.updates import UnknownRollout
from bootserver.http.admin import authorize
from bootserver.runtime import StoreUnavailable

log = logging.getLogger("bootserver.admin")


def add_routes(app: web.Application, runtime, settings) -> None:
    admin_token = settings.admin_token

    def guarded(handler):
        async def run(request: web.Request) -> web.Response:
            authorize(request, admin_token, bool(settings.https))
            try:
                return await handler(request)
            except StoreUnavailable as exc:
                raise web.HTTPServiceUnavailable(text=f"{exc}\n") from None
        return run

    async def status(request: web.Request) -> web.Response:
        return web.json_response(await runtime.updates_status())

    def control(paused: bool):
        async def handler(request: web.Request) -> web.Response:
            rollout = request.query.get("rollout") or None
            try:
                result = await runtime.updates_pause(rollout, paused)
            except UnknownRollout as exc:
                raise web.HTTPNotFound(text=f"{exc}\n") from None
            log.info("admin API: %s %s updates for %s", request.remote, "paused" if paused else "resumed",
                     rollout or "every rollout")
            return web.json_response(result)
        return handler

    app.router.add_get("/api/v1/updates", guarded(status))
    app.router.add_post("/api/v1/updates/pause", guarded(control(True)))
    app.router.add_post("/api/v1/updates/resume", guarded(control(False)))
