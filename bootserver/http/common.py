"""Shared by the HTTP endpoints: turning a query into a BootRequest, and the base URL."""

from __future__ import annotations

import re
from types import MappingProxyType

from aiohttp import web

from bootserver.boot.request import ARCHES, BootRequest, Stage, arch_from_ipxe
from bootserver.catalog.mac import MacError, normalize_mac
from bootserver.runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)
MACHINE = web.RequestKey("machine", str)  # the machine's name, for the access log
MAC = web.RequestKey("mac", str)
#: query parameters that describe the request itself; any other parameter becomes a label
RESERVED = {"mac", "uuid", "arch", "platform", "token", "stage"}


def runtime_of(request: web.Request) -> Runtime:
    return request.app[RUNTIME]


#: a Host header that can be written into a URL, an iPXE script or a shell line as it is
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?")


def base_url(request: web.Request) -> str:
    """Where this machine reached us: the advertise_url setting, else the Host it asked for.
    A Host that is not a host name or address (with a port) is a 400."""
    advertised = runtime_of(request).settings.advertise_url
    if advertised:
        return advertised.rstrip("/")
    if not _HOST.fullmatch(request.host):
        raise web.HTTPBadRequest(text="bad Host header: expected a host name or address, with an optional port\n")
    return f"{request.scheme}://{request.host}"


def boot_request(request: web.Request, stage: Stage) -> BootRequest:
    """The BootRequest for `?mac=…&arch=…`; a bad or missing MAC is a 400 with a plain reason."""
    query = request.query
    raw = query.get("mac")
    if not raw:
        raise web.HTTPBadRequest(text="missing query parameter 'mac' (e.g. ?mac=52:54:00:12:34:56)\n")
    try:
        mac = normalize_mac(raw)
    except MacError as exc:
        raise web.HTTPBadRequest(text=f"bad query parameter 'mac': {exc}\n") from None
    arch = query.get("arch")
    if arch not in ARCHES:
        arch = arch_from_ipxe(arch, query.get("platform"))
    labels = {k: v for k, v in query.items() if k not in RESERVED and v}
    uuid = query.get("uuid") or None
    request[MAC] = mac
    return BootRequest(mac=mac, arch=arch, stage=stage, uuid=uuid, client_ip=request.remote,
                       labels=MappingProxyType(labels))
