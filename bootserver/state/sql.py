"""What the SQL backends share: column lists, row conversion and the migration rule."""

from __future__ import annotations

import json
from typing import Any, Sequence

from bootserver.state.base import Event, MachineRecord, SchemaTooNew

MACHINE_COLUMNS = ("mac", "state", "token", "name", "profile", "arch", "uuid", "vendor", "interface",
                   "client_ip", "first_seen", "last_seen", "state_changed")
MACHINE_SELECT = ", ".join(MACHINE_COLUMNS)


def machine_from_row(row: Sequence[Any]) -> MachineRecord:
    return MachineRecord(*row)


def event_from_row(row: Sequence[Any]) -> Event:
    seq, mac, kind, source, detail, at = row
    return Event(mac=mac, kind=kind, source=source, detail=json.loads(detail) if detail else {}, at=at, seq=seq)


def detail_json(detail: dict[str, Any]) -> str:
    return json.dumps(detail or {}, separators=(",", ":"), sort_keys=True, default=str)


def pending_migrations(current: int, migrations: Sequence[tuple[int, Any]], where: str) -> list[tuple[int, Any]]:
    """The migrations still to apply; refuses a database written by a newer bootserver."""
    latest = migrations[-1][0]
    if current > latest:
        raise SchemaTooNew(
            f"state database {where} has schema version {current}, but this bootserver knows versions up to "
            f"{latest}: a newer bootserver has upgraded it. Run that newer bootserver, or point the `state` "
            f"setting at another database. Nothing was changed.")
    return [m for m in migrations if m[0] > current]
