"""Fixtures for the state tests: one store per backend, PostgreSQL from BOOTSERVER_TEST_PG_URL.

Each PostgreSQL test gets a fresh database (created and dropped here), so tests and parallel runs
never see each other's rows. Without BOOTSERVER_TEST_PG_URL the PostgreSQL tests skip on a
developer's machine but FAIL in CI (CI=true): a silent skip would hide a missing install step.
Start a server with `export BOOTSERVER_TEST_PG_URL="$(sudo scripts/start-postgres.sh)"`.
"""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit, urlunsplit

import pytest

from bootserver.state import open_store

SQL_BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
BACKENDS = ["memory", *SQL_BACKENDS]


def pg_base_url() -> str:
    url = os.environ.get("BOOTSERVER_TEST_PG_URL")
    if not url:
        message = "BOOTSERVER_TEST_PG_URL is not set (run scripts/start-postgres.sh and export its output)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + "; PostgreSQL tests must run in CI")
        pytest.skip(message)
    return url


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


@pytest.fixture
async def pg_url():
    """A URL to a fresh, empty PostgreSQL database that is dropped after the test."""
    import asyncpg

    base = pg_base_url()
    name = "bs_test_" + secrets.token_hex(6)
    admin = await asyncpg.connect(base)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(base, name)
    finally:
        admin = await asyncpg.connect(base)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def _url_for(request, tmp_path) -> str:
    backend = request.param
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/state/bootserver.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    """A `state` URL for each backend: every test using it runs on memory, SQLite and PostgreSQL."""
    return _url_for(request, tmp_path)


@pytest.fixture(params=SQL_BACKENDS)
def sql_url(request, tmp_path):
    """A `state` URL for each backend that keeps data: SQLite and PostgreSQL."""
    return _url_for(request, tmp_path)


@pytest.fixture
async def make_store(store_url):
    """Open stores on the test's backend (several may share one database); all closed afterwards."""
    opened = []

    async def make(retention: int = 1000, **options):
        store = open_store(store_url, retention, **options)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in reversed(opened):
        await store.close()


@pytest.fixture
async def store(make_store):
    return await make_store()
