"""Print the rack's shared state as JSON (run inside the rack's `db` namespace): every machine's
state and its timeline, in seq order, read straight from PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sys

import asyncpg


async def dump(url: str) -> dict:
    conn = await asyncpg.connect(url)
    try:
        machines = {r["mac"]: r["state"] for r in await conn.fetch("SELECT mac, state FROM machines")}
        events: dict[str, list] = {}
        for r in await conn.fetch("SELECT seq, mac, kind, detail::text AS detail, event_key FROM events ORDER BY seq"):
            detail = json.loads(r["detail"])
            events.setdefault(r["mac"], []).append([r["seq"], r["kind"], detail.get("transition"), r["event_key"]])
        return {"machines": machines, "events": events}
    finally:
        await conn.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(dump(sys.argv[1]))))
