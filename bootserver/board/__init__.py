"""The operator's board under /ui: the fleet, a machine, catalog health, discovered machines.

Another adapter beside http/: it reads and acts only through Runtime's intent methods, renders
server-side with Jinja2 (templates and static files ship in the package: no CDN, no JS build), and
pushes changes over one server-sent-event stream per open page.
"""

from __future__ import annotations

from aiohttp import web

from bootserver.board import actions, live, pages


def add_routes(app: web.Application, runtime, settings) -> None:
    """Mount the board on the HTTP app (same port as the boot endpoints)."""
    board = pages.Board(runtime, settings)
    pages.add_routes(app, board)
    live.add_routes(app, board)
    actions.add_routes(app, board)
