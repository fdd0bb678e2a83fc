"""Issue 19 item 5: a flood of new MACs that a Group matches cannot grow the store and the log
without bound: new-machine records (and their log lines) are rate-limited; machines the catalog
names are never held back."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

FLOOD = 3000


async def test_a_flood_of_new_macs_is_recorded_at_a_bounded_rate(serve, catalog_dir):
    server = serve("--catalog", str(catalog_dir), "--state", "memory://",
                   env={"BOOTSERVER_HTTP_REQUESTS_PER_CLIENT": "0"})  # the per-client limit is tested elsewhere
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as s:
        async def ipxe(n: int) -> int:
            mac = f"52:54:00:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"
            async with s.get(f"{server.url}/ipxe?mac={mac}") as r:
                await r.read()
                return r.status

        statuses = await asyncio.gather(*(ipxe(n) for n in range(16, FLOOD + 16)))
        took = time.monotonic() - started
        async with s.get(f"{server.url}/ipxe?mac=52:54:00:00:00:01") as r:  # node1: named by the catalog
            named = (r.status, await r.text())
        async with s.get(f"{server.url}/api/v1/machines") as r:
            rows = len(json.loads(await r.text())["machines"])
    assert set(statuses) <= {200, 503}
    allowed = 200 + 20 * took  # burst + rate x time (the defaults)
    assert rows <= allowed + 1, f"{rows} machine records after {FLOOD} new MACs in {took:.1f} s"
    assert named[0] == 200 and "kernel" in named[1]
    log = server.log()
    first_seen = log.count("first seen")
    assert first_seen <= allowed, first_seen
    assert log.count("not recorded") <= took + 2
