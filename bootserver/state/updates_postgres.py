"""PostgreSQL part of the `Store` for Flatcar updates. A slot claim takes a transaction-scoped
advisory lock on its rollout, so replicas sharing the database never hand out more slots than the
rollout allows."""

from __future__ import annotations

import time

import asyncpg

from bootserver.boot.updates import STALE_AFTER, UpdateRecord
from bootserver.state.updates_sql import (HOLDING_LIST, UPDATE_COLUMNS, UPDATE_SELECT, update_from_row,
                                          update_values, upsert)

_LIST = f"SELECT {UPDATE_SELECT} FROM updates ORDER BY COALESCE(rollout, ''), machine_id"
_UPSERT = upsert([f"${i}" for i in range(1, len(UPDATE_COLUMNS) + 1)])
CLAIM_LOCK = 0x75706461  # first key of pg_advisory_xact_lock(int, int); the second is the rollout's hash


class PostgresUpdates:
    """Mixed into PostgresStore: uses its `_run`."""

    async def update_get(self, machine_id: str) -> UpdateRecord | None:
        row = await self._run(lambda c: c.fetchrow(f"SELECT {UPDATE_SELECT} FROM updates WHERE machine_id = $1",
                                                   machine_id))
        return update_from_row(row) if row else None

    async def update_put(self, record: UpdateRecord) -> None:
        await self._run(lambda c: c.execute(_UPSERT, *update_values(record)))

    async def update_claim(self, record: UpdateRecord, max_updating: int | None,
                           max_per_hour: int | None) -> str | None:
        async def work(conn: asyncpg.Connection) -> str | None:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", CLAIM_LOCK, record.rollout or "")
                now = time.time()
                if max_updating is not None:
                    busy = await conn.fetchval(
                        f"SELECT COUNT(*) FROM updates WHERE rollout = $1 AND machine_id <> $2 "
                        f"AND status IN ({HOLDING_LIST}) AND updated > $3",
                        record.rollout, record.machine_id, now - STALE_AFTER)
                    if busy >= max_updating:
                        return f"{busy} machine(s) updating, the rollout allows {max_updating} at once"
                if max_per_hour is not None:
                    recent = await conn.fetchval(
                        "SELECT COUNT(*) FROM updates WHERE rollout = $1 AND machine_id <> $2 AND offered_at > $3",
                        record.rollout, record.machine_id, now - 3600)
                    if recent >= max_per_hour:
                        return f"{recent} offer(s) in the last hour, the rollout allows {max_per_hour}"
                await conn.execute(_UPSERT, *update_values(record))
                return None
        return await self._run(work)

    async def update_list(self) -> list[UpdateRecord]:
        rows = await self._run(lambda c: c.fetch(_LIST))
        return [update_from_row(r) for r in rows]

    async def mac_for_address(self, ip: str) -> str | None:
        return await self._run(lambda c: c.fetchval(
            "SELECT mac FROM machines WHERE client_ip = $1 ORDER BY last_seen DESC LIMIT 1", ip))

    async def update_pauses(self) -> set[str]:
        return {row[0] for row in await self._run(lambda c: c.fetch("SELECT rollout FROM update_pauses"))}

    async def update_pause(self, rollout: str, paused: bool) -> None:
        if paused:
            await self._run(lambda c: c.execute(
                "INSERT INTO update_pauses (rollout, paused_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                rollout, time.time()))
        else:
            await self._run(lambda c: c.execute("DELETE FROM update_pauses WHERE rollout = $1", rollout))
