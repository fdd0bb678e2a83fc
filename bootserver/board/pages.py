"""The board's read-only pages, rendered server-side (Jinja2, autoescaped)."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from pathlib import Path

import jinja2
from aiohttp import web

from bootserver.boot.machine import STATES
from bootserver.board.snippets import machine_yaml
from bootserver.catalog.mac import MacError, normalize_mac

HERE = Path(__file__).parent
PAGE_SIZE = 100
MAX_SEARCH = 200


def span(seconds: int) -> str:
    """A duration as people say it: 45s, 12m, 5h, 3d."""
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def ago(epoch: float | None, now: float | None = None) -> str:
    if not epoch:
        return "—"
    return span(max(0, int((now or time.time()) - epoch))) + " ago"


def clock(epoch: float | None) -> str:
    if not epoch:
        return "—"
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def took(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s" if seconds < 120 else span(int(seconds))


class Board:
    """What every board handler shares: the runtime, its settings, templates, the CSRF secret."""

    def __init__(self, runtime, settings) -> None:
        self.runtime = runtime
        self.admin_token: str | None = settings.admin_token
        # one form token per process: a cross-site page cannot read it, so it cannot forge a POST
        self.csrf = secrets.token_urlsafe(24)
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                      autoescape=True, undefined=jinja2.StrictUndefined)
        self.env.filters.update(ago=ago, clock=clock, took=took)
        self.env.globals.update(states=STATES)

    def render(self, name: str, status: int = 200, **context) -> web.Response:
        html = self.env.get_template(name).render(now=time.time(), **context)
        return web.Response(text=html, status=status, content_type="text/html",
                            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                     "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'"})

    def row_html(self, row) -> str:
        return self.env.get_template("row.html").render(row=row, now=time.time())


def page_mac(request: web.Request) -> str:
    try:
        return normalize_mac(request.match_info["mac"])
    except MacError as exc:
        raise web.HTTPBadRequest(text=f"bad MAC in the path: {exc}\n") from None


def fleet_query(request: web.Request) -> tuple[str | None, str, int]:
    state = request.query.get("state") or None
    if state is not None and state not in STATES:
        raise web.HTTPBadRequest(text=f"unknown state {state!r}; one of {', '.join(STATES)}\n")
    search = request.query.get("q", "")[:MAX_SEARCH]
    try:
        page = max(1, min(int(request.query.get("page", "1")), 10**6))
    except ValueError:
        raise web.HTTPBadRequest(text="page must be a whole number\n") from None
    return state, search, page


def add_routes(app: web.Application, board: Board) -> None:
    runtime = board.runtime

    async def fleet(request: web.Request) -> web.Response:
        state, search, page = fleet_query(request)
        view = await runtime.fleet(state, search, (page - 1) * PAGE_SIZE, PAGE_SIZE)
        pages = max(1, -(-view.total // PAGE_SIZE))
        return board.render("fleet.html", view=view, state=state, search=search, page=page, pages=pages,
                            row_html=board.row_html)

    async def machine(request: web.Request) -> web.Response:
        mac = page_mac(request)
        detail = await runtime.machine_detail(mac)
        if detail is None:
            return board.render("missing.html", status=404, mac=mac)
        return board.render("machine.html", m=detail, csrf=board.csrf,
                            needs_token=board.admin_token is not None, notice=request.query.get("done", ""))

    async def timeline(request: web.Request) -> web.Response:
        detail = await runtime.machine_detail(page_mac(request))
        if detail is None:
            raise web.HTTPNotFound(text="no such machine\n")
        html = board.env.get_template("timeline.html").render(m=detail, now=time.time())
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def health(request: web.Request) -> web.Response:
        return board.render("health.html", h=await runtime.catalog_health())

    async def discovered(request: web.Request) -> web.Response:
        machines = await runtime.discovered()
        return board.render("discovered.html", machines=[(m, machine_yaml(m)) for m in machines[:1000]],
                            total=len(machines))

    async def to_fleet(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ui/")

    app.router.add_get("/ui", to_fleet)
    app.router.add_get("/ui/", fleet)
    app.router.add_get("/ui/machines/{mac}", machine)
    app.router.add_get("/ui/machines/{mac}/timeline", timeline)
    app.router.add_get("/ui/health", health)
    app.router.add_get("/ui/discovered", discovered)
    app.router.add_static("/ui/static", HERE / "static", append_version=True)
