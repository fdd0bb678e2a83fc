"""Load for the Omaha endpoint: N Flatcar nodes, each from its own loopback address, PXE-boot once
(so bootserver ties them to their machines), then ask for updates C at a time, as update_engine
does (ping + updatecheck), for D seconds. Prints one JSON line: checks, seconds, nodes offered, latencies.

    python -m bench.omaha_client URL NODES CONCURRENCY SECONDS
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp

REQUEST = ('<?xml version="1.0" encoding="UTF-8"?>\n<request protocol="3.0" version="update_engine-0.4.10" '
           'updaterversion="update_engine-0.4.10" installsource="scheduler" ismachine="1">\n'
           '    <os version="Chateau" platform="CoreOS" sp="4081.2.0_x86_64"></os>\n'
           '    <app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" version="4081.2.0" track="stable" '
           'bootid="{b}" oem="" machineid="%(id)s" board="amd64-usr" delta_okay="false" >\n'
           '        <ping active="1"></ping>\n        <updatecheck></updatecheck>\n    </app>\n</request>\n')


def address(i: int) -> str:
    return f"127.1.{i // 250}.{1 + i % 250}"


def mac(i: int) -> str:
    return f"52:54:01:{(i >> 16) & 0xff:02x}:{(i >> 8) & 0xff:02x}:{i & 0xff:02x}"


async def main(url: str, nodes: int, concurrency: int, seconds: float) -> dict:
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address(i), 0), limit=1))
                for i in range(nodes)]
    try:
        for start in range(0, nodes, 50):
            async def boot(i: int) -> None:
                async with sessions[i].get(f"{url}/ipxe?mac={mac(i)}&arch=x86_64-efi") as r:
                    await r.read()
            await asyncio.gather(*(boot(i) for i in range(start, min(start + 50, nodes))))
        latencies: list[float] = []
        errors = 0
        offered: set[int] = set()  # nodes offered the update (a node asking again is offered again)
        deadline = time.monotonic() + seconds
        next_node = 0

        async def worker() -> None:
            nonlocal next_node, errors
            while time.monotonic() < deadline:
                i, next_node = next_node % nodes, next_node + 1
                body = (REQUEST % {"id": f"{i:032x}"}).encode()
                started = time.perf_counter()
                async with sessions[i].post(f"{url}/v1/update/", data=body) as r:
                    text = await r.read()
                latencies.append(time.perf_counter() - started)
                errors += r.status != 200
                if b'<updatecheck status="ok">' in text:
                    offered.add(i)
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return {"checks": len(latencies), "seconds": time.monotonic() - started, "offered_nodes": len(offered),
                "errors": errors, "latencies": latencies}
    finally:
        for session in sessions:
            await session.close()


if __name__ == "__main__":
    url, nodes, concurrency, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    print(json.dumps(asyncio.run(main(url, nodes, concurrency, seconds))))
