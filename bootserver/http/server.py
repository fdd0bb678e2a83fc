"""The aiohttp application: one module per endpoint group, an access log, request metrics."""

from __future__ import annotations

import logging
import time

from aiohttp import web
from prometheus_client import Counter

from bootserver.http import (admin, assets, boot, events, grub, health, ignition, loaders, metadata, omaha,
                             updates_admin)
from bootserver.config import Settings
from bootserver.logs import FastInfo
from bootserver.http.common import MAC, MACHINE, RUNTIME, SETTINGS
from bootserver.http.throttle import per_client_limit
from bootserver.metrics import REGISTRY
from bootserver.runtime import Runtime

access = logging.getLogger("bootserver.access")
access_line = FastInfo(access)  # straight to the log's stream when nothing else would see the record

REQUESTS = Counter("bootserver_http_requests_total", "HTTP requests by endpoint and status",
                   ["endpoint", "status"], registry=REGISTRY)
BYTES = Counter("bootserver_http_bytes_sent_total", "HTTP body bytes sent by endpoint", ["endpoint"],
                registry=REGISTRY)


_COUNTERS: dict[tuple[str, int], tuple] = {}  # (endpoint, status) -> its two counters: labels() locks and builds a key


def _endpoint(request: web.Request) -> str:
    route = request.match_info.route.resource
    return route.canonical if route is not None else "unmatched"


def _counters(endpoint: str, status: int) -> tuple:
    found = _COUNTERS.get((endpoint, status))
    if found is None:  # bounded: routes are fixed and statuses are the few HTTP has
        found = _COUNTERS[(endpoint, status)] = (REQUESTS.labels(endpoint, str(status)), BYTES.labels(endpoint))
    return found


def _reason(exc: web.HTTPException) -> str:
    """The first line of a refusal's text (what the client was told), for the access log."""
    text = (exc.text or "").strip().splitlines()
    return text[0][:200] if text else exc.reason


@web.middleware
async def access_log(request: web.Request, handler) -> web.StreamResponse:
    started = time.perf_counter()
    status, size, reason = 500, 0, None
    try:
        response = await handler(request)
        status = response.status
        size = response.body_length if response.prepared else (response.content_length or 0)
        return response
    except web.HTTPException as exc:
        status, size = exc.status, len(exc.body or b"")
        if 400 <= status < 500:
            reason = _reason(exc)
        raise
    finally:
        if status in (204, 304) or request.method == "HEAD":
            size = 0  # no body went out, whatever the headers describe
        requests, sent = _counters(_endpoint(request), status)
        requests.inc()
        sent.inc(size)
        settings = request.app[SETTINGS]
        if settings.access_log and access.isEnabledFor(logging.INFO):
            ms = (time.perf_counter() - started) * 1000
            fields = None
            if settings.log_format == "json":  # only the JSON formatter reads them
                fields = {"client": request.remote, "machine": request.get(MACHINE), "mac": request.get(MAC),
                          "method": request.method, "path": request.path, "status": status, "bytes": size,
                          "ms": round(ms, 1)}
                if reason:
                    fields["reason"] = reason
            access_line.info("%s %s %s %s %s %d %dB %.1fms%s", request.remote, request.get(MACHINE, "unknown"),
                             request.get(MAC, "-"), request.method, request.path, status, size, ms,
                             f": {reason}" if reason else "", extra={"fields": fields} if fields else None)


def make_app(runtime: Runtime, settings: Settings) -> web.Application:
    throttle = per_client_limit(settings)
    app = web.Application(middlewares=[access_log, *([throttle] if throttle else [])], client_max_size=1024 * 1024)
    app[RUNTIME] = runtime
    app[SETTINGS] = settings
    for module in (boot, grub, ignition, metadata, events, health, loaders, omaha):
        module.add_routes(app)
    for module in (assets, admin, updates_admin):  # these keep per-server state, so they take what they serve
        module.add_routes(app, runtime, settings)
    return app
