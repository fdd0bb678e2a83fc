"""State store write throughput: 200 machines booting at once, each recording its timeline.

ours: the SQLite store (the default); peer: the PostgreSQL store (local Debian cluster), measured
alternately in the same run. Every event counts only once `record()` has returned, i.e. once it
is committed. Two metrics: bare events (`record()` only), and boot requests as the runtime makes
them (read the record, refresh it with `ensure`, record the event). Bounded: 200 machines x 200
steps per rep, at most 30 s per rep.

PostgreSQL comes from BOOTSERVER_BENCH_PG_URL or BOOTSERVER_TEST_PG_URL, else (as root)
scripts/start-postgres.sh is run. Each rep uses a fresh SQLite file and a fresh PG database.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.common import print_rows
from bootserver.state import Event, connect_store

MACHINES = 200
EVENTS_PER_MACHINE = 200
TIME_LIMIT = 30.0
KINDS = ("dhcp.offer", "dhcp.ack", "tftp.transfer", "http.ipxe", "http.asset", "http.ignition")


async def _burst(url: str, full_request: bool) -> float:
    """Events (or boot requests) per second with MACHINES concurrent writers on the store at `url`."""
    store = await connect_store(url, retention=1000)
    try:
        deadline = time.monotonic() + TIME_LIMIT
        written = 0

        async def machine(n: int) -> None:
            nonlocal written
            mac = f"52:54:00:bb:{n // 256:02x}:{n % 256:02x}"
            await store.ensure(mac, state="ready", arch="x86_64-efi")
            for i in range(EVENTS_PER_MACHINE):
                if time.monotonic() > deadline:
                    return
                if full_request:
                    await store.get(mac)
                    await store.ensure(mac, state="ready", client_ip="10.0.0.1")
                if await store.record(Event(mac, KINDS[i % len(KINDS)], "10.0.0.1", {"i": i, "file": "vmlinuz"})):
                    written += 1

        started = time.perf_counter()
        await asyncio.gather(*(machine(n) for n in range(MACHINES)))
        return written / (time.perf_counter() - started)
    finally:
        await store.close()


def _pg_base_url() -> str:
    url = os.environ.get("BOOTSERVER_BENCH_PG_URL") or os.environ.get("BOOTSERVER_TEST_PG_URL")
    if url:
        return url
    script = Path(__file__).resolve().parents[2] / "scripts" / "start-postgres.sh"
    return subprocess.run([str(script)], check=True, capture_output=True, text=True).stdout.strip()


async def _fresh_pg(base: str) -> tuple[str, str]:
    import asyncpg

    name = "bs_bench_" + secrets.token_hex(5)
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, urlunsplit(urlsplit(base)._replace(path="/" + name))


async def _drop_pg(base: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _run(reps: int) -> list[dict]:
    base = _pg_base_url()
    rows = []
    for full_request, metric, unit in ((False, "events written/s", "events/s"),
                                       (True, "boot requests/s (get + ensure + record)", "requests/s")):
        ours: list[float] = []
        peer: list[float] = []
        with tempfile.TemporaryDirectory(prefix="bsst-bench-") as tmp:
            for rep in range(reps):
                ours.append(await _burst(f"sqlite:///{tmp}/rep{rep}.db", full_request))
                name, url = await _fresh_pg(base)
                try:
                    peer.append(await _burst(url, full_request))
                finally:
                    await _drop_pg(base, name)
        rows.append({"scenario": "store", "metric": f"{metric}, {MACHINES} concurrent machines", "unit": unit,
                     "ours": ours, "peer_name": "postgresql", "peer": peer, "higher_is_better": True})
    return rows


def run(reps: int = 3) -> list[dict]:
    return asyncio.run(_run(reps))


def main() -> None:
    print_rows(run(), decimals=0, ours_name="ours (sqlite)")


if __name__ == "__main__":
    main()
