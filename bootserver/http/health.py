"""GET /healthz (catalog generation, last reload error, components) and GET /metrics (Prometheus)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bootserver.http.common import runtime_of
from bootserver.metrics import REGISTRY


async def get_healthz(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    healthy = all(runtime.components.values())
    return web.json_response({
        "status": "ok" if healthy else "degraded",
        "catalog": {"generation": runtime.catalog.generation, "root": str(runtime.catalog.root),
                    "profiles": len(runtime.catalog.profiles), "machines": len(runtime.catalog.machines),
                    "groups": len(runtime.catalog.groups)},
        "last_reload_error": runtime.last_reload_error,
        "components": runtime.components,
    }, status=200 if healthy else 503)


async def get_metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", get_healthz)
    app.router.add_get("/metrics", get_metrics)
