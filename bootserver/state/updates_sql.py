"""What the SQL backends share for Flatcar updates: schema version 2 and every statement, built
per dialect like `sql.Statements` (a dialect here needs only `real` and `p(n)`)."""

from __future__ import annotations

from typing import Any, Sequence

from bootserver.boot.updates import HOLDING, UpdateRecord

UPDATE_COLUMNS = ("machine_id", "mac", "client_ip", "rollout", "version", "track", "status", "target",
                  "offered_at", "error_code", "last_check", "updated")
UPDATE_SELECT = ", ".join(UPDATE_COLUMNS)
HOLDING_LIST = ", ".join(f"'{status}'" for status in HOLDING)  # constants, never user input


def migration(real: str) -> list[str]:
    """Schema version 2: one row per machine-id update_engine reported, and paused rollouts."""
    return [
        f"""CREATE TABLE updates (
             machine_id TEXT PRIMARY KEY, mac TEXT, client_ip TEXT, rollout TEXT, version TEXT, track TEXT,
             status TEXT NOT NULL, target TEXT, offered_at {real}, error_code INTEGER,
             last_check {real} NOT NULL, updated {real} NOT NULL)""",
        "CREATE INDEX updates_mac ON updates (mac)",
        "CREATE INDEX updates_rollout ON updates (rollout, status)",
        f"CREATE TABLE update_pauses (rollout TEXT PRIMARY KEY, paused_at {real} NOT NULL)",
    ]


class UpdateStatements:
    """Every update statement a backend runs, in its dialect."""

    def __init__(self, d: Any) -> None:
        p = d.p
        self.get = f"SELECT {UPDATE_SELECT} FROM updates WHERE machine_id = {p(1)}"
        self.upsert = (f"INSERT INTO updates ({UPDATE_SELECT}) "
                       f"VALUES ({', '.join(p(i) for i in range(1, len(UPDATE_COLUMNS) + 1))}) "
                       "ON CONFLICT (machine_id) DO UPDATE SET "
                       + ", ".join(f"{c} = excluded.{c}" for c in UPDATE_COLUMNS[1:]))
        self.all = f"SELECT {UPDATE_SELECT} FROM updates ORDER BY COALESCE(rollout, ''), machine_id"
        #: machines of a rollout (other than the asking one) holding a slot that is not stale
        self.busy = (f"SELECT COUNT(*) FROM updates WHERE rollout = {p(1)} AND machine_id <> {p(2)} "
                     f"AND status IN ({HOLDING_LIST}) AND updated > {p(3)}")
        #: offers made to other machines of a rollout since a time
        self.recent = (f"SELECT COUNT(*) FROM updates WHERE rollout = {p(1)} AND machine_id <> {p(2)} "
                       f"AND offered_at > {p(3)}")
        self.mac_for_address = (f"SELECT mac FROM machines WHERE client_ip = {p(1)} "
                                "ORDER BY last_seen DESC LIMIT 1")
        self.unknown = "SELECT COUNT(*) FROM updates WHERE mac IS NULL"
        self.pauses = "SELECT rollout FROM update_pauses"
        self.pause = (f"INSERT INTO update_pauses (rollout, paused_at) VALUES ({p(1)}, {p(2)}) "
                      "ON CONFLICT (rollout) DO NOTHING")
        self.resume = f"DELETE FROM update_pauses WHERE rollout = {p(1)}"


def limit_reached(busy: int, recent: int, max_updating: int | None, max_per_hour: int | None) -> str | None:
    """Which rollout limit a new offer would break, in words; None when a slot is free."""
    if max_updating is not None and busy >= max_updating:
        return f"{busy} machine(s) updating, the rollout allows {max_updating} at once"
    if max_per_hour is not None and recent >= max_per_hour:
        return f"{recent} offer(s) in the last hour, the rollout allows {max_per_hour}"
    return None


def update_from_row(row: Sequence[Any]) -> UpdateRecord:
    return UpdateRecord(*row)


def update_values(record: UpdateRecord) -> tuple:
    return tuple(getattr(record, column) for column in UPDATE_COLUMNS)
