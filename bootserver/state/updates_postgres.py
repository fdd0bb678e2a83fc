"""PostgreSQL part of the `Store` for Flatcar updates. A slot claim takes a transaction-scoped
advisory lock on its rollout, so replicas sharing the database never hand out more slots than the
rollout allows."""

from __future__ import annotations

import time

import asyncpg

from bootserver.boot.updates import STALE_AFTER, UpdateRecord
from bootserver.state.sql import POSTGRES
from bootserver.state.updates_sql import UpdateStatements, limit_reached, update_from_row, update_values

SQL = UpdateStatements(POSTGRES)
CLAIM_LOCK = 0x75706461  # first key of pg_advisory_xact_lock(int, int); the second is the rollout's hash


class PostgresUpdates:
    """Mixed into PostgresStore: uses its `_run`."""

    async def update_get(self, machine_id: str) -> UpdateRecord | None:
        row = await self._run(lambda c: c.fetchrow(SQL.get, machine_id))
        return update_from_row(row) if row else None

    async def update_put(self, record: UpdateRecord) -> None:
        await self._run(lambda c: c.execute(SQL.upsert, *update_values(record)))

    async def update_claim(self, record: UpdateRecord, max_updating: int | None,
                           max_per_hour: int | None) -> str | None:
        async def work(conn: asyncpg.Connection) -> str | None:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", CLAIM_LOCK, record.rollout or "")
                now = time.time()
                busy = await conn.fetchval(SQL.busy, record.rollout, record.machine_id, now - STALE_AFTER)
                recent = await conn.fetchval(SQL.recent, record.rollout, record.machine_id, now - 3600)
                refused = limit_reached(busy, recent, max_updating, max_per_hour)
                if refused is None:
                    await conn.execute(SQL.upsert, *update_values(record))
                return refused
        return await self._run(work)

    async def update_list(self) -> list[UpdateRecord]:
        return [update_from_row(r) for r in await self._run(lambda c: c.fetch(SQL.all))]

    async def update_unknown_count(self) -> int:
        return await self._run(lambda c: c.fetchval(SQL.unknown))

    async def mac_for_address(self, ip: str) -> str | None:
        return await self._run(lambda c: c.fetchval(SQL.mac_for_address, ip))

    async def update_pauses(self) -> set[str]:
        return {row[0] for row in await self._run(lambda c: c.fetch(SQL.pauses))}

    async def update_pause(self, rollout: str, paused: bool) -> None:
        if paused:
            await self._run(lambda c: c.execute(SQL.pause, rollout, time.time()))
        else:
            await self._run(lambda c: c.execute(SQL.resume, rollout))
