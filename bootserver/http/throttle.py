"""Per-client rate limits on the endpoints that answer about machines (/ipxe, /ignition, /metadata).

MACs are visible to anyone on a LAN, and without a limit one client can probe thousands of MACs a
second for their configs. A machine boots with a handful of requests; past `http_requests_per_client`
a second (with two seconds' burst) a client gets 429 with Retry-After. Keyed by the client address,
which TCP's handshake makes costly to spoof, unlike a MAC.
"""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import Counter

from bootserver.config import Settings
from bootserver.metrics import REGISTRY
from bootserver.ratelimit import Buckets
from bootserver.resources import OncePerSecond

log = logging.getLogger("bootserver.http")
LIMITED = ("/ipxe", "/ignition", "/metadata")
THROTTLED = Counter("bootserver_http_throttled_total", "Requests answered 429 (per-client rate limit)",
                    registry=REGISTRY)


def per_client_limit(settings: Settings):
    """The middleware, or None when the limit is off (http_requests_per_client: 0)."""
    rate = settings.http_requests_per_client
    if rate <= 0:
        return None
    buckets = Buckets(rate, 2 * rate)
    said = OncePerSecond(log)

    @web.middleware
    async def throttle(request: web.Request, handler) -> web.StreamResponse:
        if request.path in LIMITED and not buckets.allow(request.remote):
            THROTTLED.inc()
            said.warning("HTTP: %s asks faster than %d requests/s; answering 429", request.remote, rate)
            raise web.HTTPTooManyRequests(text=f"too many requests from {request.remote}; slow down\n",
                                          headers={"Retry-After": str(buckets.retry_after(request.remote))})
        return await handler(request)

    return throttle
