"""POST /api/v1/machines/{mac}/events: the installer reports progress, success or failure.

Authenticated by the machine's own token (carried in `urls.events`), never by the admin token.
"""

from __future__ import annotations

import json
import logging
import secrets

from aiohttp import web

from bootserver.catalog.mac import MacError, normalize_mac
from bootserver.http.common import MAC, MACHINE, runtime_of
from bootserver.state.base import StoreUnavailable

log = logging.getLogger("bootserver.http")
EVENTS = ("installed", "failed", "progress")
MAX_BODY = 64 * 1024


async def post_event(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    try:
        mac = normalize_mac(request.match_info["mac"])
    except MacError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    request[MAC] = mac
    token = request.query.get("token") or request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    record = await runtime.store.get(mac)
    if record is None or not token or not secrets.compare_digest(token.encode(), record.token.encode()):
        log.warning("refused installer event for %s from %s: %s token", mac, request.remote,
                    "missing" if not token else "wrong")
        raise web.HTTPForbidden(text="missing or wrong machine token\n")
    request[MACHINE] = record.name or "unknown"
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(raw))
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, RecursionError):  # not JSON, not UTF-8, numbers of 4,300+ digits, nesting too deep
        raise web.HTTPBadRequest(text='body must be JSON: {"event": "installed", "detail": "..."}\n') from None
    event = body.get("event") if isinstance(body, dict) else None
    if event not in EVENTS:
        raise web.HTTPBadRequest(text=f"'event' must be one of: {', '.join(EVENTS)}\n")
    detail = str(body.get("detail", ""))[:4096]
    try:
        await runtime.observe(mac, f"installer.{event}", {"detail": detail}, source=request.remote)
    except StoreUnavailable as exc:
        log.error("%s (%s) reports %s but the store is unavailable (%s); asking it to retry", record.name, mac,
                  event, exc)
        raise web.HTTPServiceUnavailable(text="state store unavailable; retry\n", headers={"Retry-After": "5"})
    record = await runtime.store.get(mac)
    log.info("%s (%s) reports %s%s; state is now %s", record.name or "unknown", mac, event,
             f": {detail}" if detail else "", record.state)
    return web.json_response({"mac": mac, "event": event, "state": record.state})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/machines/{mac}/events", post_event)
