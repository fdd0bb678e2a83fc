"""Operations the admin API and the `machines` command share, and the JSON shapes they show.

Tokens never appear in these views: they are the installer's secret, not an operator's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bootserver.boot import lifecycle
from bootserver.state.base import Event, MachineRecord, Store, UnknownMachine


class NotAdopted(ValueError):
    """Reinstall asked for a machine the catalog does not name yet."""


def iso(epoch: float | None) -> str | None:
    if not epoch:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def machine_view(rec: MachineRecord) -> dict[str, Any]:
    return {"mac": rec.mac, "name": rec.name, "profile": rec.profile, "state": rec.state, "arch": rec.arch,
            "uuid": rec.uuid, "vendor": rec.vendor, "interface": rec.interface, "client_ip": rec.client_ip,
            "first_seen": iso(rec.first_seen), "last_seen": iso(rec.last_seen),
            "state_changed": iso(rec.state_changed)}


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
