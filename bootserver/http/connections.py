"""A cap on open HTTP connections, so idle clients cannot use up the process's open files.

Idle connections already close after `http_idle_timeout` (aiohttp's keep-alive timer also runs
from the moment a connection opens, so a client that never finishes its headers is closed too).
But a thousand clients can open connections faster than that. Past the cap, each new connection
closes the oldest idle one (one with no request in progress); if every connection is busy, the
new one is closed instead. Busy transfers are never cut.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from aiohttp import web
from prometheus_client import Counter

from bootserver.metrics import REGISTRY
from bootserver.resources import OncePerSecond

log = logging.getLogger("bootserver.http")
SHED = Counter("bootserver_http_connections_shed_total", "HTTP connections closed to stay under the cap",
               ["which"], registry=REGISTRY)


class ConnectionCap:
    """Installed on an aiohttp low-level server: sees every connection open and close."""

    def __init__(self, server: web.Server, limit: int) -> None:
        self.limit = limit
        self._open: OrderedDict[Any, asyncio.Transport] = OrderedDict()  # handler -> transport, oldest first
        self._said = OncePerSecond(log)
        self._made, self._lost = server.connection_made, server.connection_lost
        server.connection_made = self.connection_made  # type: ignore[method-assign]
        server.connection_lost = self.connection_lost  # type: ignore[method-assign]

    def __len__(self) -> int:
        return len(self._open)

    def connection_made(self, handler: Any, transport: asyncio.Transport) -> None:
        self._made(handler, transport)
        self._open[handler] = transport
        if len(self._open) > self.limit:
            self._shed(handler)

    def connection_lost(self, handler: Any, exc: BaseException | None = None) -> None:
        self._open.pop(handler, None)
        self._lost(handler, exc)

    def _shed(self, newest: Any) -> None:
        for handler, transport in self._open.items():
            if handler is not newest and not getattr(handler, "_request_in_progress", False):
                which = "idle"
                break
        else:
            handler, transport, which = newest, self._open[newest], "new"
        del self._open[handler]
        SHED.labels(which).inc()
        self._said.warning("HTTP: %d connections open (the cap for this open-file limit); closing the %s one",
                           self.limit, "oldest idle" if which == "idle" else "new")
        transport.abort()
