"""An installer's final report is all or nothing, on every backend, against a real `bootserver serve`.

Spending the machine's one-time token, recording the event with its Idempotency-Key and the
lifecycle transition commit in one transaction. When that transaction fails (PostgreSQL drops the
connection mid-way; an SQLite write raises) the installer is told to retry (503), the token is not
spent and nothing is recorded, so its retry succeeds. A retry of a committed report (same key, same
address) is answered the same again and recorded once; a replay with no key, another key or from
another address is refused (403), as issue 19 requires.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3

import aiohttp
import pytest

from tests.security.test_machine_secrets import ATTACKER, MAC, VICTIM, call, token_from_ipxe


async def report(server, source: str, token: str, key: str | None) -> int:
    headers = {"Idempotency-Key": key} if key else {}
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as s:
        async with s.post(f"{server.url}/api/v1/machines/{MAC}/events?token={token}", headers=headers,
                          json={"event": "installed", "detail": "done"}) as r:
            return r.status


async def machine(server) -> tuple[str, list[dict]]:
    """The machine's state and its installer.installed timeline entries."""
    status, body = await call(server, VICTIM, "GET", f"/api/v1/machines/{MAC}")
    assert status == 200, body
    status, events = await call(server, VICTIM, "GET", f"/api/v1/machines/{MAC}/events")
    assert status == 200, events
    return json.loads(body)["state"], [e for e in json.loads(events)["events"] if e["kind"] == "installer.installed"]


async def test_a_retried_final_report_is_answered_again_and_a_replay_is_refused(serve, catalog_dir, store_url):
    server = serve("--catalog", str(catalog_dir), "--state", store_url)
    token = await token_from_ipxe(server)
    assert await report(server, VICTIM, token, "install-1") == 200
    assert await report(server, VICTIM, token, "install-1") == 200  # its answer was lost: the retry
    state, installed = await machine(server)
    assert state == "installed" and len(installed) == 1 and installed[0]["key"] == "install-1"
    assert await report(server, VICTIM, token, None) == 403  # the spent token, replayed
    assert await report(server, VICTIM, token, "install-2") == 403
    assert await report(server, ATTACKER, token, "install-1") == 403  # key and token, from elsewhere
    assert len((await machine(server))[1]) == 1


@pytest.mark.postgres
async def test_a_report_cut_by_a_dropped_postgresql_connection_spends_nothing(serve, catalog_dir, pg_url):
    import asyncpg

    server = serve("--catalog", str(catalog_dir), "--state", pg_url)
    token = await token_from_ipxe(server)
    await settled(pg_url)
    admin, watch = await asyncpg.connect(pg_url), await asyncpg.connect(pg_url)
    try:
        cut = admin.transaction()
        await cut.start()
        await admin.execute("LOCK TABLE events IN SHARE MODE")  # the report's event insert waits here
        sent = asyncio.create_task(report(server, VICTIM, token, "install-1"))
        # drop every connection that waits for the lock (a timeline write may wait before the report)
        # until one inside a transaction that has written (an xid): the report's, cut mid-way
        for _ in range(200):
            killed = await watch.fetch(  # not `admin`: its transaction would see one snapshot of the activity
                "SELECT backend_xid IS NOT NULL AS wrote, pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
            if any(row["wrote"] for row in killed) or sent.done():
                break
            await asyncio.sleep(0.05)
        assert any(row["wrote"] for row in killed), "the report never waited inside its transaction"
        await cut.rollback()
        assert await asyncio.wait_for(sent, 30) == 503  # told to retry
    finally:
        await admin.close()
        await watch.close()
    state, installed = await machine(server)
    assert state == "ready" and installed == []
    assert await report(server, VICTIM, token, "install-1") == 200  # the token was not spent
    state, installed = await machine(server)
    assert state == "installed" and len(installed) == 1


async def test_a_report_whose_sqlite_write_fails_spends_nothing(serve, catalog_dir, tmp_path):
    db = tmp_path / "state" / "bootserver.db"
    server = serve("--catalog", str(catalog_dir), "--state", f"sqlite:///{db}")
    token = await token_from_ipxe(server)
    fault = sqlite3.connect(db, timeout=10, isolation_level=None)
    try:  # the event's insert fails inside the report's transaction, as a full or failing disk would
        fault.execute("CREATE TRIGGER cut_report BEFORE INSERT ON events WHEN NEW.kind = 'installer.installed' "
                      "BEGIN SELECT RAISE(ABORT, 'injected write failure'); END")
        assert await report(server, VICTIM, token, "install-1") == 503
        state, installed = await machine(server)
        assert state == "ready" and installed == []
        fault.execute("DROP TRIGGER cut_report")
    finally:
        fault.close()
    assert await report(server, VICTIM, token, "install-1") == 200  # the token was not spent
    state, installed = await machine(server)
    assert state == "installed" and len(installed) == 1


async def settled(pg_url: str, timeout: float = 10) -> None:
    """Wait until the server has no query running on the database (its timeline writes are in)."""
    import asyncpg

    conn = await asyncpg.connect(pg_url)
    try:
        for _ in range(int(timeout / 0.05)):
            busy = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                       "AND state <> 'idle' AND pid <> pg_backend_pid()")
            if busy == 0:
                return
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
