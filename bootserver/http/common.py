"""Shared by the HTTP endpoints: turning a query into a BootRequest, the MAC rule, the base URL."""

from __future__ import annotations

import re
from types import MappingProxyType

from aiohttp import web

from bootserver.boot.request import BootRequest, Stage, arch_from_ipxe
from bootserver.catalog.mac import MacError, normalize_mac
from bootserver.catalog.model import ARCHES
from bootserver.config import Settings
from bootserver.runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)
SETTINGS = web.AppKey("settings", Settings)
MACHINE = web.RequestKey("machine", str)  # the machine's name, for the access log
MAC = web.RequestKey("mac", str)
#: query parameters that describe the request itself; any other parameter becomes a label
RESERVED = {"mac", "uuid", "arch", "platform", "token", "stage", "assets"}


def runtime_of(request: web.Request) -> Runtime:
    return request.app[RUNTIME]


def settings_of(request: web.Request) -> Settings:
    return request.app[SETTINGS]


def request_mac(request: web.Request, raw: str | None, where: str) -> str:
    """The normalised MAC from `raw` (a query parameter or path segment named by `where`), noted
    for the access log; a missing or bad MAC is a 400 with a plain reason. The one MAC rule of HTTP."""
    if not raw:
        raise web.HTTPBadRequest(text=f"missing {where} (e.g. 52:54:00:12:34:56)\n")
    try:
        mac = normalize_mac(raw)
    except MacError as exc:
        raise web.HTTPBadRequest(text=f"bad {where}: {exc}\n") from None
    request[MAC] = mac
    return mac


#: a Host header that can be written into a URL, an iPXE script or a shell line as it is
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?")


def base_url(request: web.Request) -> str:
    """Where this machine reached us: the advertise_url setting, else the Host it asked for.
    A Host that is not a host name or address (with a port) is a 400."""
    advertised = settings_of(request).advertise_url
    if advertised:
        return advertised.rstrip("/")
    if not _HOST.fullmatch(request.host):
        raise web.HTTPBadRequest(text="bad Host header: expected a host name or address, with an optional port\n")
    return f"{request.scheme}://{request.host}"


#: (query string, client address, stage) -> its BootRequest (immutable): a machine asking again
#: costs a look-up, not a parse; bounded (a flood of new MACs starts it over).
_REQUESTS: dict[tuple, BootRequest] = {}
REQUESTS_KEPT = 8192


def boot_request(request: web.Request, stage: Stage) -> BootRequest:
    """The BootRequest for `?mac=…&arch=…` (a bad or missing MAC is a 400: request_mac)."""
    key = (request.query_string, request.remote, stage)
    found = _REQUESTS.get(key)
    if found is not None:
        request[MAC] = found.mac
        return found
    if len(_REQUESTS) >= REQUESTS_KEPT:
        _REQUESTS.clear()
    found = _REQUESTS[key] = _parse_boot_request(request, stage)
    return found


def _parse_boot_request(request: web.Request, stage: Stage) -> BootRequest:
    query = request.query
    mac = request_mac(request, query.get("mac"), "query parameter 'mac'")
    arch = query.get("arch")
    if arch not in ARCHES:
        arch = arch_from_ipxe(arch, query.get("platform"))
    labels = {k: v for k, v in query.items() if k not in RESERVED and v}
    uuid = query.get("uuid") or None
    return BootRequest(mac=mac, arch=arch, stage=stage, uuid=uuid, client_ip=request.remote,
                       labels=MappingProxyType(labels))


async def read_bounded(request: web.Request, limit: int) -> bytes:
    """The body, or its first limit + 1 bytes: one read() may return only part of a chunked body,
    so keep reading until the end or past the limit."""
    parts, size = [], 0
    while size <= limit:
        part = await request.content.read(limit + 1 - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)
