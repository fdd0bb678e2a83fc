"""Schema versions: applied at start, recorded, upgraded in place, a newer database refused; data kept."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest

from bootserver.state import Event, SchemaTooNew, connect_store
from bootserver.state import postgres as pg_backend
from bootserver.state import sqlite as sqlite_backend

MAC = "52:54:00:a1:9c:ae"


async def sql(url: str, statement: str) -> list[tuple]:
    """Run one statement on the database behind a state URL, outside the store."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
        try:
            return [tuple(r) for r in conn.execute(statement).fetchall()]
        finally:
            conn.close()
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(statement)]
    finally:
        await conn.close()


def backend_module(url: str):
    return sqlite_backend if url.startswith("sqlite") else pg_backend


async def test_fresh_database_gets_current_schema_once(sql_url):
    for _ in range(2):
        store = await connect_store(sql_url)
        await store.close()
    known = [v for v, _ in backend_module(sql_url).MIGRATIONS]
    assert known == list(range(1, len(known) + 1))
    assert [v for (v,) in await sql(sql_url, "SELECT version FROM schema_version ORDER BY version")] == known


async def test_newer_schema_is_refused_and_left_alone(sql_url):
    store = await connect_store(sql_url)
    await store.ensure(MAC, state="installed")
    await store.close()
    await sql(sql_url, "INSERT INTO schema_version (version, applied_at) VALUES (70, 0)")
    latest = backend_module(sql_url).MIGRATIONS[-1][0]
    with pytest.raises(SchemaTooNew) as refused:
        await connect_store(sql_url)
    message = str(refused.value)
    assert "schema version 70" in message and f"knows versions up to {latest}" in message
    assert "newer bootserver" in message
    assert "bs_test_" in message or "bootserver.db" in message  # says which database
    assert await sql(sql_url, "SELECT mac, state FROM machines") == [(MAC, "installed")]
    assert len(await sql(sql_url, "SELECT version FROM schema_version")) == latest + 1


async def test_upgrade_keeps_data(sql_url, monkeypatch):
    store = await connect_store(sql_url)
    await store.ensure(MAC, state="installed", arch="x86_64-efi")
    await store.close()
    module = backend_module(sql_url)
    known = [v for v, _ in module.MIGRATIONS]
    monkeypatch.setattr(module, "MIGRATIONS", [*module.MIGRATIONS,
                                               (known[-1] + 1, ["ALTER TABLE machines ADD COLUMN rack TEXT"])])
    store = await connect_store(sql_url)
    try:
        assert (await store.get(MAC)).state == "installed"
    finally:
        await store.close()
    assert [v for (v,) in await sql(sql_url, "SELECT version FROM schema_version ORDER BY version")] == \
        [*known, known[-1] + 1]
    assert await sql(sql_url, "SELECT mac, rack FROM machines") == [(MAC, None)]


async def test_failed_migration_changes_nothing(sql_url, monkeypatch):
    store = await connect_store(sql_url)
    await store.close()
    module = backend_module(sql_url)
    known = [v for v, _ in module.MIGRATIONS]
    monkeypatch.setattr(module, "MIGRATIONS", [*module.MIGRATIONS, (known[-1] + 1, [
        "ALTER TABLE machines ADD COLUMN rack TEXT", "NOT SQL AT ALL"])])
    with pytest.raises(Exception):
        await connect_store(sql_url)
    assert [v for (v,) in await sql(sql_url, "SELECT version FROM schema_version ORDER BY version")] == known
    assert "rack" not in [c[1] if sql_url.startswith("sqlite") else c[0] for c in await sql(
        sql_url, "PRAGMA table_info(machines)" if sql_url.startswith("sqlite") else
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'machines'")]


async def test_state_survives_reopen(sql_url):
    first = await connect_store(sql_url)
    rec = await first.ensure(MAC, state="ready")
    await first.set_state(MAC, "installed")
    await first.record(Event(MAC, "installer.installed", "10.0.0.5"))
    await first.close()
    second = await connect_store(sql_url)
    try:
        again = await second.get(MAC)
        assert (again.state, again.token) == ("installed", rec.token)
        assert [e.kind for e in await second.events(MAC)] == ["installer.installed"]
    finally:
        await second.close()
