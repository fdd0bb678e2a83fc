"""The admin API: machines, their timelines, and reinstall.

Bearer token from the `admin_token` setting; with no token set it answers loopback clients only.
With an HTTPS listener configured, non-loopback clients must use it: over plain HTTP they get 403
before any token is read (firmware endpoints stay on plain HTTP: Debian's iPXE has no HTTPS).
A missing or wrong token gets 401, a non-loopback client without a configured token 403; both
are logged with the client's address.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from bootserver.boot.request import is_loopback
from bootserver.http.common import request_mac
from bootserver.http.views import as_last_asked, decision_view, event_view, machine_view
from bootserver.runtime import NotAdopted, StateChanged, StoreUnavailable, UnknownMachine

log = logging.getLogger("bootserver.admin")
MAX_EVENTS = 1000




def authorize(request: web.Request, token: str | None, https: bool = False) -> None:
    if https and not request.secure and not is_loopback(request.remote):
        log.warning("admin API: refused %s %s from %s: plain HTTP while HTTPS is configured (no token is read)",
                    request.method, request.path, request.remote)
        raise web.HTTPForbidden(text="the admin API answers non-loopback clients over HTTPS only (the https "
                                     "setting); a token sent over plain HTTP should be changed\n")
    if token is None:
        if not is_loopback(request.remote):
            log.warning("admin API: refused %s %s from %s: not loopback and no admin_token is set",
                        request.method, request.path, request.remote)
            raise web.HTTPForbidden(text="the admin API answers only loopback clients while admin_token is unset\n")
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        problem = "missing"
    elif not hmac.compare_digest(given.strip().encode(), token.encode()):
        problem = "wrong"
    else:
        return
    log.warning("admin API: refused %s %s from %s: %s bearer token", request.method, request.path,
                request.remote, problem)
    raise web.HTTPUnauthorized(text=f"{problem} admin token (Authorization: Bearer …)\n",
                               headers={"WWW-Authenticate": 'Bearer realm="bootserver admin"'})


def _mac(request: web.Request) -> str:
    return request_mac(request, request.match_info["mac"], "MAC in the path")


def _int(request: web.Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"query parameter {name!r} must be a whole number from {low} to {high}\n")
    return value


def add_routes(app: web.Application, runtime, settings) -> None:
    admin_token = settings.admin_token
    https = bool(settings.https)

    def guarded(handler):
        """Authorize, then turn store answers into HTTP statuses."""
        async def run(request: web.Request) -> web.Response:
            authorize(request, admin_token, https)
            try:
                return await handler(request)
            except UnknownMachine as exc:
                raise web.HTTPNotFound(text=f"no machine {exc.args[0]} in the state store\n") from None
            except StoreUnavailable as exc:
                raise web.HTTPServiceUnavailable(text=f"{exc}\n", headers={"Retry-After": "5"}) from None
            except StateChanged as exc:
                raise web.HTTPConflict(text=f"{exc}; ask again\n") from None
        return run

    async def list_machines(request: web.Request) -> web.Response:
        state = request.query.get("state") or None
        updates = await runtime.update_states()
        machines = await runtime.machines(state)
        return web.json_response({"machines": [machine_view(m, updates.get(m.mac)) for m in machines]})

    async def show_machine(request: web.Request) -> web.Response:
        mac = _mac(request)
        record = await runtime.machine(mac)
        if record is None:
            raise UnknownMachine(mac)
        decision = runtime.next_boot(record, as_last_asked(record))
        update = (await runtime.update_states()).get(mac)
        return web.json_response({**machine_view(record, update), "next_boot": decision_view(decision)})

    async def machine_events(request: web.Request) -> web.Response:
        mac = _mac(request)
        limit = _int(request, "limit", 100, 1, MAX_EVENTS)
        before = _int(request, "before", None, 1, 2**62)
        events = await runtime.timeline(mac, limit, before)
        older = events[0].seq if len(events) == limit else None
        return web.json_response({"mac": mac, "events": [event_view(e) for e in events], "before": older})

    async def reinstall_machine(request: web.Request) -> web.Response:
        mac = _mac(request)
        try:
            previous, record = await runtime.reinstall(mac, request.remote)
        except NotAdopted as exc:
            raise web.HTTPConflict(text=f"{exc}\n") from None
        log.info("admin API: %s asked to reinstall %s (%s): %s -> %s", request.remote, record.name or "unknown",
                 mac, previous, record.state)
        return web.json_response({**machine_view(record), "previous": previous})

    async def forget_machine(request: web.Request) -> web.Response:
        mac = _mac(request)
        await runtime.forget(mac)
        log.info("admin API: %s made the store forget %s", request.remote, mac)
        return web.json_response({"mac": mac, "forgotten": True})

    app.router.add_get("/api/v1/machines", guarded(list_machines))
    app.router.add_get("/api/v1/machines/{mac}", guarded(show_machine))
    app.router.add_delete("/api/v1/machines/{mac}", guarded(forget_machine))
    app.router.add_get("/api/v1/machines/{mac}/events", guarded(machine_events))
    app.router.add_post("/api/v1/machines/{mac}/reinstall", guarded(reinstall_machine))
