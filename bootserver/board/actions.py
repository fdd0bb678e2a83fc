"""The board's only writes: reinstall and forget a machine, through Runtime's intent methods.

Each needs the admin token (typed into the form, or a Bearer header) — or, with no token set, a
loopback client, as the admin API allows — and the page's form token, with an Origin (when the
browser sends one) that is this server: a cross-site page can neither read the form token nor
pass the Origin check, so it cannot make a logged-in operator's browser act.
"""

from __future__ import annotations

import hmac
import logging
from urllib.parse import urlsplit

from aiohttp import web

from bootserver.boot.request import is_loopback
from bootserver.board.pages import Board, page_mac
from bootserver.runtime import NotAdopted, StoreUnavailable, UnknownMachine

log = logging.getLogger("bootserver.board")
MAX_FORM = 4096




def _same_site(request: web.Request) -> bool:
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin:
        return True  # not a browser (curl): the form token still has to match
    return origin != "null" and urlsplit(origin).netloc == request.host


def _equal(given: str, wanted: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), wanted.encode())


async def _check(request: web.Request, board: Board) -> None:
    """Raise 403/401 unless the form is ours and the client may act (the admin API's rules)."""
    if board.https and not request.secure and not is_loopback(request.remote):
        log.warning("board: refused %s %s from %s: plain HTTP while HTTPS is configured (no token is read)",
                    request.method, request.path, request.remote)
        raise web.HTTPForbidden(text="refused: board actions from afar go over HTTPS (the https setting)\n")
    if request.content_length is not None and request.content_length > MAX_FORM:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM, actual_size=request.content_length)
    form = await request.post()
    if not _same_site(request) or not _equal(str(form.get("csrf", "")), board.csrf):
        log.warning("board: refused %s %s from %s: cross-site or missing form token", request.method,
                    request.path, request.remote)
        raise web.HTTPForbidden(text="refused: this form did not come from the board (form token / Origin)\n")
    if board.admin_token is None:
        if is_loopback(request.remote):
            return
        log.warning("board: refused %s %s from %s: not loopback and no admin_token is set", request.method,
                    request.path, request.remote)
        raise web.HTTPForbidden(text="refused: actions answer only loopback clients while admin_token is unset\n")
    scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
    given = str(form.get("admin_token", "")) or (bearer.strip() if scheme.lower() == "bearer" else "")
    if not _equal(given, board.admin_token):
        log.warning("board: refused %s %s from %s: %s admin token", request.method, request.path, request.remote,
                    "wrong" if given else "missing")
        raise web.HTTPUnauthorized(text=f"refused: {'wrong' if given else 'missing'} admin token\n")


def add_routes(app: web.Application, board: Board) -> None:
    runtime = board.runtime

    async def act(request: web.Request, what: str) -> web.Response:
        mac = page_mac(request)
        await _check(request, board)
        try:
            if what == "reinstall":
                previous, record = await runtime.reinstall(mac, request.remote)
                log.info("board: %s asked to reinstall %s (%s): %s -> %s", request.remote, record.name or "unknown",
                         mac, previous, record.state)
                raise web.HTTPSeeOther(f"/ui/machines/{mac}?done=reinstall")
            await runtime.forget(mac)
            log.info("board: %s made the store forget %s", request.remote, mac)
            raise web.HTTPSeeOther("/ui/?done=forgot")
        except UnknownMachine:
            raise web.HTTPNotFound(text=f"no machine {mac} in the state store\n") from None
        except NotAdopted as exc:
            raise web.HTTPConflict(text=f"{exc}\n") from None
        except StoreUnavailable as exc:
            raise web.HTTPServiceUnavailable(text=f"{exc}\n", headers={"Retry-After": "5"}) from None

    async def reinstall(request: web.Request) -> web.Response:
        return await act(request, "reinstall")

    async def forget(request: web.Request) -> web.Response:
        return await act(request, "forget")

    app.router.add_post("/ui/machines/{mac}/reinstall", reinstall)
    app.router.add_post("/ui/machines/{mac}/forget", forget)
