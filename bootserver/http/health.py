"""GET /healthz (catalog generation, last reload error, components) and GET /metrics (Prometheus)."""

from __future__ import annotations

import os

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bootserver.http.common import runtime_of
from bootserver.metrics import REGISTRY


async def get_healthz(request: web.Request) -> web.Response:
    health = runtime_of(request).health()
    health["pid"] = os.getpid()  # which process answered: with http_workers, one of several
    return web.json_response(health, status=200 if health["status"] == "ok" else 503)


async def get_metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", get_healthz)
    app.router.add_get("/metrics", get_metrics)
