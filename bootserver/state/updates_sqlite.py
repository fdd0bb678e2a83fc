"""SQLite part of the `Store` for Flatcar updates. Slot claims run on the one writer thread inside
its transaction, so "count the machines updating, then take a slot" is atomic."""

from __future__ import annotations

import sqlite3
import time

from bootserver.boot.updates import STALE_AFTER, UpdateRecord
from bootserver.state.updates_sql import (HOLDING_LIST, UPDATE_COLUMNS, UPDATE_SELECT, update_from_row,
                                          update_values, upsert)

_LIST = f"SELECT {UPDATE_SELECT} FROM updates ORDER BY COALESCE(rollout, ''), machine_id"
_UPSERT = upsert(["?"] * len(UPDATE_COLUMNS))


def claim_in(conn: sqlite3.Connection, record: UpdateRecord, max_updating: int | None,
             max_per_hour: int | None, now: float) -> str | None:
    """Take an update slot for `record` (saved as offered) or say which limit is full; runs inside
    the writer's transaction, which no other claim can interleave with."""
    if max_updating is not None:
        busy = conn.execute(
            f"SELECT COUNT(*) FROM updates WHERE rollout = ? AND machine_id <> ? AND status IN ({HOLDING_LIST}) "
            "AND updated > ?", (record.rollout, record.machine_id, now - STALE_AFTER)).fetchone()[0]
        if busy >= max_updating:
            return f"{busy} machine(s) updating, the rollout allows {max_updating} at once"
    if max_per_hour is not None:
        recent = conn.execute(
            "SELECT COUNT(*) FROM updates WHERE rollout = ? AND machine_id <> ? AND offered_at > ?",
            (record.rollout, record.machine_id, now - 3600)).fetchone()[0]
        if recent >= max_per_hour:
            return f"{recent} offer(s) in the last hour, the rollout allows {max_per_hour}"
    conn.execute(_UPSERT, update_values(record))
    return None


class SqliteUpdates:
    """Mixed into SqliteStore: uses its `_read` and `_write`."""

    async def update_get(self, machine_id: str) -> UpdateRecord | None:
        rows = await self._read(f"SELECT {UPDATE_SELECT} FROM updates WHERE machine_id = ?", (machine_id,))
        return update_from_row(rows[0]) if rows else None

    async def update_put(self, record: UpdateRecord) -> None:
        await self._write(lambda conn: conn.execute(_UPSERT, update_values(record)))

    async def update_claim(self, record: UpdateRecord, max_updating: int | None,
                           max_per_hour: int | None) -> str | None:
        return await self._write(lambda conn: claim_in(conn, record, max_updating, max_per_hour, time.time()))

    async def update_list(self) -> list[UpdateRecord]:
        rows = await self._read(_LIST)
        return [update_from_row(r) for r in rows]

    async def mac_for_address(self, ip: str) -> str | None:
        rows = await self._read("SELECT mac FROM machines WHERE client_ip = ? ORDER BY last_seen DESC LIMIT 1", (ip,))
        return rows[0][0] if rows else None

    async def update_pauses(self) -> set[str]:
        return {row[0] for row in await self._read("SELECT rollout FROM update_pauses")}

    async def update_pause(self, rollout: str, paused: bool) -> None:
        def op(conn: sqlite3.Connection) -> None:
            if paused:
                conn.execute("INSERT OR IGNORE INTO update_pauses (rollout, paused_at) VALUES (?, ?)",
                             (rollout, time.time()))
            else:
                conn.execute("DELETE FROM update_pauses WHERE rollout = ?", (rollout,))
        await self._write(op)
