"""POST /api/v1/machines/{mac}/events: the installer reports progress, success or failure.

Authenticated by the machine's own token (carried in `urls.events`), never by the admin token.
An `Idempotency-Key` header (or "key" in the body) makes a retried POST the same event, not a second.
"""

from __future__ import annotations

import json
import logging
import re

from aiohttp import web

from bootserver.http.common import MACHINE, request_mac, runtime_of
from bootserver.runtime import INSTALLER_EVENTS, StoreUnavailable, WrongToken

log = logging.getLogger("bootserver.http")
MAX_BODY = 64 * 1024
#: An idempotency key: what uuidgen, `date +%s%N` or a random hex string give; nothing else is accepted.
KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def idempotency_key(request: web.Request, body: object) -> str | None:
    """The installer's idempotency key (header `Idempotency-Key`, else the body's "key"), or None."""
    key = request.headers.get("Idempotency-Key")
    if key is None and isinstance(body, dict):
        key = body.get("key")
    if key is None:
        return None
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise web.HTTPBadRequest(text="idempotency key: 1-128 characters of A-Z a-z 0-9 . _ : -\n")
    return key


async def post_event(request: web.Request) -> web.Response:
    mac = request_mac(request, request.match_info["mac"], "MAC in the path")
    token = request.query.get("token") or request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(raw))
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, RecursionError):  # not JSON, not UTF-8, numbers of 4,300+ digits, nesting too deep
        body = None
    event = body.get("event") if isinstance(body, dict) else None
    detail = str(body.get("detail", ""))[:4096] if isinstance(body, dict) else ""
    key = idempotency_key(request, body)
    try:
        record = await runtime_of(request).report(mac, token, event, detail, request.remote, key)
    except WrongToken as exc:
        log.warning("refused installer event for %s from %s: %s", mac, request.remote, exc)
        raise web.HTTPForbidden(text="missing or wrong machine token\n") from None
    except StoreUnavailable as exc:
        log.error("%s reports %s but the store is unavailable (%s); asking it to retry", mac, event, exc)
        raise web.HTTPServiceUnavailable(text="state store unavailable; retry\n", headers={"Retry-After": "5"})
    except ValueError:
        if body is None:
            raise web.HTTPBadRequest(text='body must be JSON: {"event": "installed", "detail": "..."}\n') from None
        raise web.HTTPBadRequest(text=f"'event' must be one of: {', '.join(INSTALLER_EVENTS)}\n") from None
    request[MACHINE] = record.name or "unknown"
    log.info("%s (%s) reports %s%s; state is now %s", record.name or "unknown", mac, event,
             f": {detail}" if detail else "", record.state)
    return web.json_response({"mac": mac, "event": event, "state": record.state})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/machines/{mac}/events", post_event)
