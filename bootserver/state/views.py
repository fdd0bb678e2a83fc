"""Operations the admin API and the `machines` command share, and the JSON shapes they show.

Tokens never appear in these views: they are the installer's secret, not an operator's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bootserver.boot import lifecycle
from bootserver.boot.request import BootRequest
from bootserver.boot.updates import UpdateRecord
from bootserver.catalog.matching import match
from bootserver.catalog.model import Catalog
from bootserver.config import Settings
from bootserver.state.base import Event, MachineRecord, Store, UnknownMachine


class NotAdopted(ValueError):
    """Reinstall asked for a machine the catalog does not name yet."""


def iso(epoch: float | None) -> str | None:
    if not epoch:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def machine_view(rec: MachineRecord, update: UpdateRecord | None = None) -> dict[str, Any]:
    return {"mac": rec.mac, "name": rec.name, "profile": rec.profile, "state": rec.state, "arch": rec.arch,
            "uuid": rec.uuid, "vendor": rec.vendor, "interface": rec.interface, "client_ip": rec.client_ip,
            "first_seen": iso(rec.first_seen), "last_seen": iso(rec.last_seen),
            "state_changed": iso(rec.state_changed),
            "os_version": update.version if update else None, "update": update.status if update else None,
            "update_target": update.target if update else None}


async def machine_views(store: Store, state: str | None = None) -> list[dict[str, Any]]:
    """Every machine (or those in `state`) with the OS version and update state update_engine reported."""
    updates = {u.mac: u for u in sorted(await store.update_list(), key=lambda u: u.updated) if u.mac}
    return [machine_view(m, updates.get(m.mac)) for m in await store.machines(state)]


async def update_of(store: Store, mac: str) -> UpdateRecord | None:
    found = [u for u in await store.update_list() if u.mac == mac]
    return max(found, key=lambda u: u.updated) if found else None


def next_boot(rec: MachineRecord, catalog: Catalog, settings: Settings) -> dict[str, Any]:
    """What the machine would get if it asked /ipxe now, as it last asked (arch, uuid, address), and why."""
    request = BootRequest(mac=rec.mac, arch=rec.arch, uuid=rec.uuid, client_ip=rec.client_ip)
    fallback = settings.unknown_profile if settings.unknown_machines == "discover" else None
    decision = lifecycle.decide(request, match(catalog, request, fallback), rec, settings)
    return {"action": decision.action, "reason": decision.reason,
            "profile": decision.match.profile.name if decision.match else None}


def event_view(event: Event) -> dict[str, Any]:
    return {"seq": event.seq, "time": iso(event.at), "kind": event.kind, "source": event.source,
            "detail": event.detail}


async def reinstall(store: Store, mac: str, source: str | None = None) -> tuple[str, MachineRecord]:
    """Send the machine back to `ready` so its next boot installs again; returns (previous state, record)."""
    record = await store.get(mac)
    if record is None:
        raise UnknownMachine(mac)
    target = lifecycle.next_state(record.state, "reinstall", None)
    if target is None and record.state == lifecycle.DISCOVERED:
        raise NotAdopted(f"{mac} is only discovered: add it to the catalog (bootserver machines adopt) first")
    await store.record(Event(mac, "reinstall", source, {"from": record.state}))
    return record.state, (await store.set_state(mac, target) if target else record)
