"""The JSON shapes of machines and timeline events, shared by the admin API and `bootserver machines`.

Tokens never appear in these views: they are the installer's secret, not an operator's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bootserver.boot.lifecycle import BootDecision
from bootserver.boot.machine import Event, MachineRecord
from bootserver.boot.request import BootRequest
from bootserver.boot.updates import UpdateRecord


def iso(epoch: float | None) -> str | None:
    if not epoch:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def machine_view(rec: MachineRecord, update: UpdateRecord | None = None) -> dict[str, Any]:
    """The machine, with the OS version and update state its update_engine last reported."""
    return {"mac": rec.mac, "name": rec.name, "profile": rec.profile, "state": rec.state, "arch": rec.arch,
            "uuid": rec.uuid, "vendor": rec.vendor, "interface": rec.interface, "client_ip": rec.client_ip,
            "first_seen": iso(rec.first_seen), "last_seen": iso(rec.last_seen),
            "state_changed": iso(rec.state_changed),
            "os_version": update.version if update else None, "update": update.status if update else None,
            "update_target": update.target if update else None}


def as_last_asked(rec: MachineRecord) -> BootRequest:
    """The request the machine would make now, as it last asked (arch, uuid, address)."""
    return BootRequest(mac=rec.mac, arch=rec.arch, uuid=rec.uuid, client_ip=rec.client_ip)


def decision_view(decision: BootDecision) -> dict[str, Any]:
    return {"action": decision.action, "reason": decision.reason,
            "profile": decision.match.profile.name if decision.match else None}


def event_view(event: Event) -> dict[str, Any]:
    return {"seq": event.seq, "time": iso(event.at), "kind": event.kind, "source": event.source,
            "detail": event.detail, "key": event.key}
