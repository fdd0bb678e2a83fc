"""Issue 19 item 1: one client cannot probe MACs for configs at thousands a second (429 past the
per-client limit, with Retry-After); another client is not held back."""

from __future__ import annotations

import asyncio
import time

import aiohttp


async def test_per_client_rate_limit_on_machine_endpoints(serve, catalog_dir):
    server = serve("--catalog", str(catalog_dir), "--state", "memory://")
    async with aiohttp.ClientSession() as probe:
        async def get(path: str) -> tuple[int, str | None]:
            async with probe.get(server.url + path) as r:
                await r.read()
                return r.status, r.headers.get("Retry-After")

        started = time.monotonic()
        answers = await asyncio.gather(*(get(f"/metadata?mac=52:54:00:00:{n >> 8:02x}:{n & 255:02x}")
                                         for n in range(300)))
        answers += await asyncio.gather(*(get("/ignition?mac=52:54:00:00:00:01") for _ in range(60)))
        took = time.monotonic() - started
        health = await get("/healthz")  # not a machine endpoint: never limited
    statuses = [status for status, _ in answers]
    answered = len(statuses) - statuses.count(429)
    assert answered <= 40 + 20 * took + 2, f"{answered} answered in {took:.1f} s"  # burst + rate x time
    assert statuses.count(429) >= 100 and all(s in (200, 404, 429) for s in statuses)
    assert all(retry and int(retry) >= 1 for status, retry in answers if status == 429)
    assert health[0] == 200
    other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=other) as s:
        async with s.get(server.url + "/ipxe?mac=52:54:00:00:00:01") as r:
            assert r.status == 200
    assert server.log().count("answering 429") <= 5
