"""GET /ui/events: one server-sent-event stream per open board page.

The stream carries rendered rows of machines that changed (coalesced: a machine that logs ten
events in a burst is sent once) and the fleet's counts per state. Bounded everywhere: Runtime caps
the number of streams and each one's backlog (a reader that falls behind gets `resync` and
reloads), each batch is capped, and an idle stream sends a keep-alive comment.
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from bootserver.board.pages import Board, fleet_query
from bootserver.catalog.mac import MacError, normalize_mac
from bootserver.overview import FleetRow
from bootserver.runtime import TooManySubscribers

log = logging.getLogger("bootserver.board")
KEEPALIVE = 15.0  # seconds between comments on an idle stream
CHECK = 1.0  # seconds between looks at whether the page went away (its slot is given back)
COALESCE = 0.2  # seconds to gather a burst before sending
MAX_BATCH = 200


def _event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _wanted(row: FleetRow, state: str | None, search: str) -> bool:
    if state and row.state != state:
        return False
    needle = search.strip().lower()
    return not needle or any(needle in (v or "").lower() for v in
                             (row.mac, row.name, row.profile, row.address, row.vendor, row.arch))


def add_routes(app: web.Application, board: Board) -> None:
    runtime = board.runtime

    async def events(request: web.Request) -> web.StreamResponse:
        state, search, _page = fleet_query(request)
        only = request.query.get("mac")
        if only:
            try:
                only = normalize_mac(only)
            except MacError as exc:
                raise web.HTTPBadRequest(text=f"bad mac: {exc}\n") from None
        try:
            feed = runtime.watch()
        except TooManySubscribers as exc:
            raise web.HTTPServiceUnavailable(text=f"{exc}; close a board tab\n", headers={"Retry-After": "10"})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
        try:
            await response.prepare(request)
            await response.write(b"retry: 2000\n\n")
            idle = 0.0
            while not feed.closed:
                macs, resync = await feed.wait(CHECK)
                if feed.closed or request.transport is None or request.transport.is_closing():
                    break
                if resync:
                    await response.write(_event("resync", {}))
                    continue
                if not macs:
                    idle += CHECK
                    if idle >= KEEPALIVE:
                        idle = 0.0
                        await response.write(b": keep-alive\n\n")
                    continue
                idle = 0.0
                await asyncio.sleep(COALESCE)
                more, resync = await feed.wait(0)
                macs = list(dict.fromkeys(macs + more))
                if only:
                    macs = [m for m in macs if m == only]
                for row in await runtime.fleet_rows(macs[:MAX_BATCH]):
                    if isinstance(row, str):
                        await response.write(_event("gone", {"mac": row}))
                    else:
                        await response.write(_event("row", {"mac": row.mac, "state": row.state,
                                                            "wanted": _wanted(row, state, search),
                                                            "html": board.row_html(row)}))
                if len(macs) > MAX_BATCH or resync:
                    await response.write(_event("resync", {}))
                if not only:
                    await response.write(_event("counts", await runtime.state_counts()))
        except ConnectionResetError:  # the page was closed
            pass
        finally:
            feed.close()
        return response

    async def close_streams(_app: web.Application) -> None:
        runtime.stop_watching()

    app.on_shutdown.append(close_streams)
    app.router.add_get("/ui/events", events)
