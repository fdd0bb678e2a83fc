"""`bootserver render`: what the server would serve a MAC, computed through the same Runtime and
render functions as HTTP, without a server and without changing any machine's state."""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType

from bootserver.boot.request import BootRequest, Stage
from bootserver.catalog.loader import CatalogError, load_catalog
from bootserver.catalog.mac import MacError, normalize_mac
from bootserver.config import Settings
from bootserver.render.args import ArgError
from bootserver.render.context import plain
from bootserver.render.ipxe import script_for
from bootserver.render.metadata import metadata_lines
from bootserver.render.errors import RenderError
from bootserver.runtime import Runtime
from bootserver.state import open_store

PREVIEW_TOKEN = "PREVIEW-TOKEN-machine-not-seen-yet"


def _store_url(settings: Settings) -> str:
    """The configured store, or an empty one when the SQLite file does not exist (nothing seen yet)."""
    if settings.state.startswith("sqlite:///") and not Path(settings.state.removeprefix("sqlite:///")).exists():
        return "memory://"
    return settings.state


async def render(settings: Settings, what: str, raw_mac: str, arch: str | None, labels: dict[str, str],
                 client_ip: str | None, base: str | None, stage: str = "") -> tuple[str, int]:
    try:
        mac = normalize_mac(raw_mac)
    except MacError as exc:
        return f"bootserver render: {exc}", 2
    try:
        catalog = load_catalog(settings.catalog, settings.assets)
    except CatalogError as exc:
        return f"bootserver render: {exc}", 1
    store = open_store(_store_url(settings), settings.event_retention)
    await store.open()
    try:
        runtime = Runtime(settings, catalog, store)
        request = BootRequest(mac=mac, arch=arch, stage=Stage.IPXE, client_ip=client_ip,
                              labels=MappingProxyType(labels))
        return await _preview(runtime, settings, what, request, base, stage)
    finally:
        await store.close()


async def _preview(runtime: Runtime, settings: Settings, what: str, request: BootRequest, base: str | None,
                   stage: str) -> tuple[str, int]:
    mac = request.mac
    found = runtime.match(request)
    record = await runtime.machine(mac)
    base = (base or settings.effective_advertise_url()).rstrip("/")
    token = record.token if record else PREVIEW_TOKEN
    if what == "match":
        if found is None:
            return f"{mac}: no match ({'ignored' if settings.unknown_machines == 'ignore' else 'discovered'})", 1
        return (f"{mac}: {found.why}\nprofile: {found.profile.name} ({found.profile.source})\n"
                f"state: {record.state if record else 'not seen yet'}\n"
                f"metadata: {json.dumps(plain(found.metadata), sort_keys=True)}\n"), 0
    if what == "metadata":
        if found is None:
            return f"no profile matches MAC {mac}", 1
        return metadata_lines(found.metadata), 0
    decision = runtime.next_boot(record, request)
    if what == "grub":
        from bootserver.render.grub_preview import preview_grub

        return preview_grub(decision, request, base, token)
    if what == "ipxe":
        try:
            return script_for(decision, request, base, token), 0
        except (ArgError, ValueError) as exc:
            return f"bootserver render: {exc}", 1
    if decision.match is None:
        return f"no profile matches MAC {mac}", 1
    try:
        _profile, body = await runtime.ignition(decision.match, request, stage, base, token)
    except (LookupError, ValueError) as exc:
        return f"bootserver render: {str(exc).strip(chr(39))}", 1
    except RenderError as exc:
        return f"bootserver render: {exc}", 1
    return json.dumps(json.loads(body), indent=2) + "\n", 0
