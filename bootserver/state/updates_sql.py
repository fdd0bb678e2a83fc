"""What the SQL backends share for Flatcar updates: the schema (migration 2), columns, rows."""

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


def update_from_row(row: Sequence[Any]) -> UpdateRecord:
    return UpdateRecord(*row)


def update_values(record: UpdateRecord) -> tuple:
    return tuple(getattr(record, column) for column in UPDATE_COLUMNS)


def upsert(placeholders: list[str]) -> str:
    return (f"INSERT INTO updates ({UPDATE_SELECT}) VALUES ({', '.join(placeholders)}) "
            "ON CONFLICT (machine_id) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in UPDATE_COLUMNS[1:]))
