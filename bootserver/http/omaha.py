"""POST /v1/update/: the Omaha endpoint Flatcar's update_engine asks (SERVER= in update.conf).

Translates bytes to Omaha dataclasses and back; what to answer is Runtime.update_check's. A body
that is too big, not XML, or XML with a DTD or entities gets a plain 400 and changes nothing.
"""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import Counter

from bootserver.http.common import base_url, read_bounded, runtime_of
from bootserver.metrics import REGISTRY
from bootserver.omaha.codec import MalformedRequest, build_response, parse_request
from bootserver.runtime import StoreUnavailable

log = logging.getLogger("bootserver.http")
PATH = "/v1/update/"
MAX_BODY = 64 * 1024  # update_engine's requests are about 1 KiB

REJECTED = Counter("bootserver_omaha_rejected_total", "Omaha requests refused with 400, by reason", ["reason"],
                   registry=REGISTRY)


async def post_update(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    if request.content_length is not None and request.content_length > MAX_BODY:
        REJECTED.labels("too-big").inc()
        raise web.HTTPBadRequest(text=f"Omaha request body over {MAX_BODY} bytes\n")
    body = await read_bounded(request, MAX_BODY)
    if len(body) > MAX_BODY:
        REJECTED.labels("too-big").inc()
        raise web.HTTPBadRequest(text=f"Omaha request body over {MAX_BODY} bytes\n")
    try:
        omaha = parse_request(body)
    except MalformedRequest as exc:
        REJECTED.labels("malformed").inc()
        log.warning("Omaha request from %s refused: %s", request.remote, exc)
        raise web.HTTPBadRequest(text=f"malformed Omaha request: {exc}\n") from None
    try:
        answers = [await runtime.update_check(app, request.remote, base_url(request)) for app in omaha.apps]
    except StoreUnavailable as exc:
        log.error("Omaha request from %s: state store unavailable: %s", request.remote, exc)
        raise web.HTTPServiceUnavailable(text="state store unavailable; retry\n", headers={"Retry-After": "60"})
    return web.Response(body=build_response(answers), content_type="text/xml", charset="utf-8")


def add_routes(app: web.Application) -> None:
    app.router.add_post(PATH, post_update)
    app.router.add_post(PATH.rstrip("/"), post_update)  # SERVER= written without the slash
