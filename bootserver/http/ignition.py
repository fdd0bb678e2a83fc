"""GET /ignition?mac=…: the machine's rendered Ignition config (JSON, with an ETag)."""

from __future__ import annotations

import hashlib
import json
import logging

from aiohttp import web

from bootserver.boot.request import Stage
from bootserver.http.common import MACHINE, base_url, boot_request, runtime_of
from bootserver.render.errors import RenderError
from bootserver.resources import OncePerSecond

log = logging.getLogger("bootserver.http")
said = OncePerSecond(log)  # a client probing MACs cannot flood the log
_ETAGS: dict[bytes, str] = {}  # served body -> its ETag: the answers are kept, so each is hashed once
ETAGS_KEPT = 4096  # bodies, and at most ETAG_BYTES_KEPT bytes of them (the answer cache holds the same objects)
ETAG_BYTES_KEPT = 32 * 1024 * 1024
_etag_bytes = 0


def etag_of(body: bytes) -> str:
    """The body's ETag (a SHA-256 prefix). A body the answer cache hands out again is the same object,
    whose hash Python keeps, so the look-up costs nothing next to hashing it again."""
    global _etag_bytes
    found = _ETAGS.get(body)
    if found is None:
        if len(_ETAGS) >= ETAGS_KEPT or _etag_bytes + len(body) > ETAG_BYTES_KEPT:
            _ETAGS.clear()
            _etag_bytes = 0
        found = _ETAGS[body] = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        _etag_bytes += len(body)
    return found


def _json_error(status: type[web.HTTPException], message: str, **extra) -> web.HTTPException:
    return status(text=json.dumps({"error": message}) + "\n", content_type="application/json", **extra)


async def get_ignition(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    boot = boot_request(request, Stage.OS)
    decision = await runtime.decide(boot)
    if decision.match is None:
        raise _json_error(web.HTTPNotFound, f"no profile matches MAC {boot.mac}: {decision.reason}")
    request[MACHINE] = decision.match.name
    allowed, fetched, foreign = runtime.ignition_access(decision.record, boot)
    if foreign:
        said.warning("%s (%s): Ignition asked %s; %s", decision.match.name, boot.mac, foreign,
                     "served, but the install does not start" if allowed else "refused (strict_machine_address)")
    if not allowed:
        raise _json_error(web.HTTPForbidden, "this config is served only to the address the machine booted from")
    try:
        profile, body = await runtime.ignition(decision.match, boot, request.query.get("stage", ""),
                                               base_url(request), decision.record.token if decision.record else None)
    except LookupError as exc:
        raise _json_error(web.HTTPNotFound, str(exc).strip("'\"")) from None
    except ValueError as exc:
        raise _json_error(web.HTTPBadRequest, str(exc)) from None
    except RenderError as exc:
        if decision.record is None:  # the store could not be read: a config needing the token must wait
            log.warning("%s (%s): Ignition of %s needs the state store, which is unreachable: %s",
                        decision.match.name, boot.mac, decision.match.profile.name, exc)
            raise _json_error(web.HTTPServiceUnavailable, "state store unavailable; retry",
                              headers={"Retry-After": "5"}) from None
        log.error("%s (%s): Ignition render failed for profile %s: %s", decision.match.name, boot.mac,
                  decision.match.profile.name, exc)
        await runtime.observe(boot, "render.failed", {"what": "ignition", "error": str(exc)})
        raise _json_error(web.HTTPInternalServerError, f"render failed: {exc}") from None
    etag = etag_of(body)
    unchanged = etag in request.headers.get("If-None-Match", "")  # 304: no body goes out
    await runtime.observe(boot, fetched, {"profile": profile.name, "status": 304 if unchanged else 200,
                                          "bytes": 0 if unchanged else len(body),
                                          **({"stage": "final"} if profile is not decision.match.profile else {})},
                          known=decision.record)
    if unchanged:
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(body=body, content_type="application/json", headers={"ETag": etag})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ignition", get_ignition)
