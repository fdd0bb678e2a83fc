"""A DHCP answer reaches the store in its first step, which the proxy runs outside any Task
(dhcp/proxy.py `_start`, to spare a Task per answer). When PostgreSQL has dropped the store's
connections (a restart, an outage), that step must open a new one, and asyncpg times its connect
with `asyncio.timeout`, which needs a Task. Found by the rack storm (tests/scaleout): after
PostgreSQL came back, hundreds of answers failed with "Timeout should be used inside a task" and the
machines got no offer. Here the connections are really dropped (pg_terminate_backend, which sends
each the FATAL a PostgreSQL shutdown sends) and the answer is started as the proxy starts it: the
first read falls back to the last known record (the dropped connection is an outage, not a crash),
the next one reconnects."""

from __future__ import annotations

import asyncio
import urllib.parse

import asyncpg
import pytest

from bootserver.dhcp.proxy import ProxyDHCP
from bootserver.state import open_store

pytestmark = pytest.mark.postgres

MAC = "52:54:00:12:34:56"


class Settings:
    dhcp = ()
    floating_address = None


async def drop_connections(pg_url: str) -> int:
    """Terminate every server connection to the test's database but this one (as a restart does)."""
    admin = await asyncpg.connect(pg_url)
    try:
        return await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()", urllib.parse.urlsplit(pg_url).path[1:])
    finally:
        await admin.close()


async def test_an_answer_started_outside_a_task_reconnects_the_store(pg_url):
    store = open_store(pg_url)
    await store.open()
    try:
        await store.ensure(MAC, state="installing")
        assert await drop_connections(pg_url) >= 1
        proxy = ProxyDHCP(None, Settings())
        proxy._loop = asyncio.get_running_loop()  # what start() records, without opening sockets
        outcome = []

        async def answer():  # the store read every DHCP answer starts with (runtime.decide)
            try:
                outcome.append(await store.get(MAC))
            except Exception as exc:
                outcome.append(exc)

        loop = asyncio.get_running_loop()
        for _ in range(2):  # a connection the server dropped, then the fresh one
            # from a plain loop callback, as Twisted delivers a datagram: no Task is current
            started = loop.create_future()
            loop.call_soon(lambda: (proxy._start(answer()), started.set_result(None)))
            await started
            await asyncio.wait_for(asyncio.gather(*proxy._tasks), 30)
        assert [getattr(r, "state", r) for r in outcome] == ["installing", "installing"]
    finally:
        await store.close()
