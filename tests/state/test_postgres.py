"""PostgreSQL only: shared state between replicas, start-up retries, and outages while serving.

Outages are real: the store talks to PostgreSQL through a TCP relay on loopback that the test
cuts (closing every connection) and restores on the same port.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit, urlunsplit

import pytest

from bootserver.state import Event, StoreUnavailable, connect_store
from bootserver.state.postgres import PostgresStore
from tests.state.pg_relay import Relay, free_port, via_port

pytestmark = pytest.mark.postgres

MAC = "52:54:00:a1:9c:ae"
OTHER = "52:54:00:00:00:02"


async def test_two_replicas_agree(pg_url):
    one, two = await asyncio.gather(connect_store(pg_url), connect_store(pg_url))  # migrate concurrently
    try:
        rec = await one.ensure(MAC, state="ready", arch="x86_64-efi")
        await one.set_state(MAC, "installed")
        seen = await two.get(MAC)
        assert (seen.state, seen.token, seen.arch) == ("installed", rec.token, "x86_64-efi")
        await two.record(Event(MAC, "http.ipxe", "10.0.0.5", {"action": "local-disk"}))
        await one.record(Event(MAC, "http.ipxe", "10.0.0.5", {"action": "local-disk"}))
        assert [e.detail["action"] for e in await one.events(MAC)] == ["local-disk", "local-disk"]
        assert (await two.by_token(rec.token)).mac == MAC
    finally:
        await one.close()
        await two.close()


async def test_unreachable_at_start_retries_then_says_so(pg_url, caplog):
    url = via_port(pg_url, free_port())
    store = PostgresStore(url, start_timeout=1.5)
    with caplog.at_level(logging.WARNING, "bootserver.state.postgres"):
        with pytest.raises(StoreUnavailable) as failed:
            await store.open()
    message = str(failed.value)
    assert "unreachable" in message and "gave up after 1.5s" in message and "`state` setting" in message
    password = urlsplit(url).password
    assert ":***@" in message and f":{password}@" not in message  # the password never shows
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) >= 2


async def test_comes_up_when_postgres_appears_during_start(pg_url):
    relay = Relay(urlsplit(pg_url).hostname, urlsplit(pg_url).port)
    relay.port = free_port()
    store = PostgresStore(via_port(pg_url, relay.port), start_timeout=20)
    opening = asyncio.create_task(store.open())
    await asyncio.sleep(1.2)
    assert not opening.done()
    await relay.start()
    await asyncio.wait_for(opening, 15)
    try:
        assert (await store.ensure(MAC, state="ready")).state == "ready"
    finally:
        await store.close()
        await relay.cut()


async def test_outage_while_serving_buffers_events_and_recovers(pg_url, caplog):
    relay = Relay(urlsplit(pg_url).hostname, urlsplit(pg_url).port)
    await relay.start()
    store = PostgresStore(via_port(pg_url, relay.port), buffer_limit=50)
    await store.open()
    try:
        rec = await store.ensure(MAC, state="installed")
        assert await store.record(Event(MAC, "seq", detail={"i": 0})) is True
        with caplog.at_level(logging.WARNING, "bootserver.state.postgres"):
            await relay.cut()
            results = [await asyncio.wait_for(store.record(Event(MAC, "seq", detail={"i": i})), 10)
                       for i in range(1, 61)]
            assert results == [False] * 60 and store.outage
            assert any("became unreachable" in r.getMessage() for r in caplog.records)
            assert (await store.get(MAC)).state == "installed"  # last known record keeps boots right
            with pytest.raises(StoreUnavailable):
                await store.get(OTHER)
            with pytest.raises(StoreUnavailable):
                await store.ensure(OTHER, state="discovered")
            await relay.start()  # same port
            for _ in range(100):
                if not store.outage:
                    break
                await asyncio.sleep(0.1)
            assert not store.outage
            assert any("reachable again" in r.getMessage() and "10 dropped" in r.getMessage()
                       for r in caplog.records)
        kept = [e.detail["i"] for e in await store.events(MAC, limit=1000)]
        assert kept == [0, *range(11, 61)]  # bounded buffer: the oldest 10 of 60 were dropped
        assert (await store.get(MAC)).token == rec.token
        assert await store.record(Event(MAC, "seq", detail={"i": 61})) is True
    finally:
        await store.close()
        await relay.cut()


async def test_boots_keep_working_from_the_catalog_during_an_outage(pg_url, catalog_dir, caplog):
    from bootserver.boot.request import BootRequest
    from bootserver.catalog.loader import load_catalog
    from bootserver.config import Settings
    from bootserver.runtime import Runtime

    relay = Relay(urlsplit(pg_url).hostname, urlsplit(pg_url).port)
    await relay.start()
    store = PostgresStore(via_port(pg_url, relay.port))
    await store.open()
    runtime = Runtime(Settings(catalog=catalog_dir), load_catalog(catalog_dir), store)
    fresh = PostgresStore(via_port(pg_url, relay.port))  # a replica that has never read node1
    await fresh.open()
    replica = Runtime(Settings(catalog=catalog_dir), load_catalog(catalog_dir), fresh)
    node1, lab = "52:54:00:00:00:01", "52:54:00:00:00:77"  # install profile; group with the live profile
    try:
        assert (await runtime.decide(BootRequest(node1, "x86_64-efi"))).action == "boot"
        await runtime.observe(node1, "http.ignition")  # the install has started
        await relay.cut()
        with caplog.at_level(logging.WARNING):
            known = await runtime.decide(BootRequest(node1, "x86_64-efi"))
            assert known.action == "boot" and known.record.state == "installing"  # last known record
            unseen = await replica.decide(BootRequest(node1, "x86_64-efi"))
            assert unseen.action == "local-disk" and "rather than risk reinstalling" in unseen.reason
            live = await runtime.decide(BootRequest(lab, "x86_64-efi"))
            assert live.action == "boot" and live.match.profile.name == "live"  # from the catalog alone
            await runtime.observe(lab, "http.ipxe", {"action": "boot"})  # buffered, no error
            with pytest.raises(StoreUnavailable):  # the installer must be told to try again
                await runtime.observe(node1, "installer.installed")
        messages = [r.getMessage() for r in caplog.records]
        # node1's decision came from its last known record (asserted above); whether a write was
        # attempted for it (and logged per machine) depends on whether its record needed refreshing
        assert any("became unreachable" in m and "boots go on from the catalog" in m for m in messages)
        assert any("deciding from the catalog alone" in m for m in messages)
        await relay.start()
        for _ in range(100):
            if not store.outage:
                break
            await asyncio.sleep(0.1)
        assert [e.kind for e in await store.events(lab)] == ["http.ipxe"]
    finally:
        await fresh.close()
        await store.close()
        await relay.cut()


async def test_wrong_password_is_a_clear_error_without_retries(pg_url):
    from bootserver.state import StoreError

    parts = urlsplit(pg_url)
    url = urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":not-the-password@")))
    with pytest.raises(StoreError) as refused:
        await PostgresStore(url, start_timeout=30).open()
    assert not isinstance(refused.value, StoreUnavailable)
    assert "refused bootserver" in str(refused.value) and "password authentication failed" in str(refused.value)
    assert "not-the-password" not in str(refused.value)
