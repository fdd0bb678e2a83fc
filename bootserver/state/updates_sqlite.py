"""SQLite part of the `Store` for Flatcar updates. Slot claims run on the one writer thread inside
its transaction, so "count the machines updating, then take a slot" is atomic."""

from __future__ import annotations

import sqlite3
import time

from bootserver.boot.updates import STALE_AFTER, UpdateRecord
from bootserver.state.sql import SQLITE
from bootserver.state.updates_sql import UpdateStatements, limit_reached, update_from_row, update_values

SQL = UpdateStatements(SQLITE)


def claim_in(conn: sqlite3.Connection, record: UpdateRecord, max_updating: int | None,
             max_per_hour: int | None, now: float) -> str | None:
    """Take an update slot for `record` (saved as offered) or say which limit is full; runs inside
    the writer's transaction, which no other claim can interleave with."""
    busy = conn.execute(SQL.busy, (record.rollout, record.machine_id, now - STALE_AFTER)).fetchone()[0]
    recent = conn.execute(SQL.recent, (record.rollout, record.machine_id, now - 3600)).fetchone()[0]
    refused = limit_reached(busy, recent, max_updating, max_per_hour)
    if refused is None:
        conn.execute(SQL.upsert, update_values(record))
    return refused


class SqliteUpdates:
    """Mixed into SqliteStore: uses its `_read` and `_write`."""

    async def update_get(self, machine_id: str) -> UpdateRecord | None:
        rows = await self._read(SQL.get, (machine_id,))
        return update_from_row(rows[0]) if rows else None

    async def update_put(self, record: UpdateRecord) -> None:
        await self._write(lambda conn: conn.execute(SQL.upsert, update_values(record)))

    async def update_claim(self, record: UpdateRecord, max_updating: int | None,
                           max_per_hour: int | None) -> str | None:
        return await self._write(lambda conn: claim_in(conn, record, max_updating, max_per_hour, time.time()))

    async def update_list(self) -> list[UpdateRecord]:
        return [update_from_row(r) for r in await self._read(SQL.all)]

    async def update_unknown_count(self) -> int:
        return (await self._read(SQL.unknown))[0][0]

    async def mac_for_address(self, ip: str) -> str | None:
        rows = await self._read(SQL.mac_for_address, (ip,))
        return rows[0][0] if rows else None

    async def update_pauses(self) -> set[str]:
        return {row[0] for row in await self._read(SQL.pauses)}

    async def update_pause(self, rollout: str, paused: bool) -> None:
        if paused:
            await self._write(lambda conn: conn.execute(SQL.pause, (rollout, time.time())))
        else:
            await self._write(lambda conn: conn.execute(SQL.resume, (rollout,)))
