"""`bootserver render`: what the server would serve a MAC, computed by the same functions as HTTP,
without a server and without changing any machine's state."""

from __future__ import annotations

import json
from types import MappingProxyType

from bootserver.boot import lifecycle
from bootserver.boot.request import BootRequest, Stage
from bootserver.catalog.loader import CatalogError, load_catalog
from bootserver.catalog.mac import MacError, normalize_mac
from bootserver.catalog.matching import match
from bootserver.config import Settings
from bootserver.http.metadata import metadata_lines
from bootserver.render import ipxe
from bootserver.render.args import ArgError
from bootserver.render.context import plain, template_context
from bootserver.render.profile_ignition import RenderError, for_profile, profile_for_stage

PREVIEW_TOKEN = "PREVIEW-TOKEN-machine-not-seen-yet"


async def _record(settings: Settings, mac: str):
    from bootserver.state import open_store

    if settings.state.startswith("sqlite:///"):
        from pathlib import Path

        if not Path(settings.state.removeprefix("sqlite:///")).exists():
            return None
    store = open_store(settings.state, settings.event_retention)
    await store.open()
    try:
        return await store.get(mac)
    finally:
        await store.close()


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
    request = BootRequest(mac=mac, arch=arch, stage=Stage.IPXE, client_ip=client_ip,
                          labels=MappingProxyType(labels))
    fallback = settings.unknown_profile if settings.unknown_machines == "discover" else None
    found = match(catalog, request, fallback)
    record = await _record(settings, mac)
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
    decision = lifecycle.decide(request, found, record, settings)
    if what == "grub":
        from bootserver.render.grub_preview import preview_grub

        return preview_grub(decision, request, base, token)
    if what == "ipxe":
        if decision.action == "ignore":
            return ipxe.no_boot_script(decision.reason), 0
        if decision.action == "local-disk":
            return ipxe.local_disk_script(found.name, request.firmware), 0
        try:
            return ipxe.boot_script(found.name, found.profile, template_context(found, request, base, token),
                                    base), 0
        except (ArgError, ValueError) as exc:
            return f"bootserver render: {exc}", 1
    if found is None:
        return f"no profile matches MAC {mac}", 1
    try:
        profile = profile_for_stage(found.profile, stage, catalog)
    except (LookupError, ValueError) as exc:
        return f"bootserver render: {str(exc).strip(chr(39))}", 1
    if profile.ignition is None:
        return f"profile {profile.name} has no ignition config", 1
    try:
        body = for_profile(profile, template_context(found, request, base, token), catalog)
    except RenderError as exc:
        return f"bootserver render: {exc}", 1
    return json.dumps(json.loads(body), indent=2) + "\n", 0
