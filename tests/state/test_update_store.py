"""The store's Flatcar update state on every backend: records, atomic rollout slots, pauses, and the
schema migration that adds them to a database written by an older bootserver."""

from __future__ import annotations

import asyncio
import time

import pytest

from bootserver.boot.updates import OFFERED, STALE_AFTER, WAITING, UpdateRecord
from bootserver.state import connect_store

from .test_migrations import backend_module, sql

MAC = "52:54:00:00:00:01"


def offer(machine_id: str, rollout: str = "group/rack1", **fields) -> UpdateRecord:
    now = time.time()
    return UpdateRecord(machine_id, rollout=rollout, status=OFFERED, target="4116.0.0", offered_at=now,
                        version="4081.2.0", last_check=now, updated=now, **fields)


async def test_records_round_trip_and_list(store):
    assert await store.update_get("m1") is None
    record = UpdateRecord("m1", mac=MAC, client_ip="10.0.0.5", rollout="profile/p", version="4081.2.0",
                          track="stable", status=WAITING, last_check=1.5, updated=2.5)
    await store.update_put(record)
    assert await store.update_get("m1") == record
    record.status, record.error_code = "error", 7
    await store.update_put(record)
    assert (await store.update_get("m1")).error_code == 7
    await store.update_put(UpdateRecord("m0", status=WAITING, last_check=1, updated=1))  # unknown machine-id
    assert [r.machine_id for r in await store.update_list()] == ["m0", "m1"]


async def test_mac_for_address_is_the_newest_machine_seen_there(store):
    await store.ensure("52:54:00:00:00:0a", state="ready", client_ip="10.0.0.9")
    await asyncio.sleep(0.01)
    await store.ensure("52:54:00:00:00:0b", state="ready", client_ip="10.0.0.9")
    assert await store.mac_for_address("10.0.0.9") == "52:54:00:00:00:0b"
    assert await store.mac_for_address("10.0.0.10") is None


async def test_claims_respect_both_limits(store):
    assert await store.update_claim(offer("a"), max_updating=2, max_per_hour=None) is None
    assert await store.update_claim(offer("b"), max_updating=2, max_per_hour=None) is None
    refused = await store.update_claim(offer("c"), max_updating=2, max_per_hour=None)
    assert refused == "2 machine(s) updating, the rollout allows 2 at once"
    assert await store.update_get("c") is None  # a refused claim writes nothing
    assert await store.update_claim(offer("c", rollout="group/rack2"), 2, None) is None  # another rollout
    done = await store.update_get("a")
    done.status = "current"
    await store.update_put(done)
    assert await store.update_claim(offer("d"), max_updating=2, max_per_hour=3) is None  # a's slot is free
    assert "3 offer(s) in the last hour" in await store.update_claim(offer("e"), max_updating=9, max_per_hour=3)


async def test_a_silent_machine_gives_its_slot_back(store):
    stale = offer("a")
    stale.updated = time.time() - STALE_AFTER - 1
    await store.update_put(stale)
    assert await store.update_claim(offer("b"), max_updating=1, max_per_hour=None) is None


async def test_concurrent_claims_never_exceed_the_limit(make_store, store_url):
    """Three store connections (replicas sharing a database) race 150 claims for 5 slots."""
    count = 1 if store_url.startswith("memory") else 3  # memory stores share nothing
    stores = [await make_store() for _ in range(count)]
    results = await asyncio.gather(*(stores[i % count].update_claim(offer(f"m{i:03d}"), 5, None)
                                     for i in range(150)))
    assert sum(r is None for r in results) == 5
    holding = [r for r in await stores[0].update_list() if r.status == OFFERED]
    assert len(holding) == 5


async def test_pauses(store):
    assert await store.update_pauses() == set()
    await store.update_pause("*", True)
    await store.update_pause("group/rack1", True)
    await store.update_pause("group/rack1", True)  # twice is once
    assert await store.update_pauses() == {"*", "group/rack1"}
    await store.update_pause("*", False)
    assert await store.update_pauses() == {"group/rack1"}


async def test_version_1_database_is_upgraded_in_place(sql_url, monkeypatch):
    module = backend_module(sql_url)
    full = module.MIGRATIONS
    monkeypatch.setattr(module, "MIGRATIONS", full[:1])
    old = await connect_store(sql_url)
    await old.ensure(MAC, state="installed")
    await old.close()
    monkeypatch.setattr(module, "MIGRATIONS", full)
    store = await connect_store(sql_url)
    try:
        assert (await store.get(MAC)).state == "installed"
        await store.update_put(UpdateRecord("m1", mac=MAC, status=WAITING, last_check=1, updated=1))
        assert (await store.update_get("m1")).mac == MAC
    finally:
        await store.close()
    assert [v for (v,) in await sql(sql_url, "SELECT version FROM schema_version ORDER BY version")] == \
        [v for v, _ in full]


@pytest.mark.parametrize("limit", [1, 7])
async def test_claim_with_no_limits_always_succeeds(store, limit):
    for i in range(limit):
        assert await store.update_claim(offer(f"x{i}"), None, None) is None


async def test_unknown_count_counts_records_without_a_machine(store):
    await store.update_put(UpdateRecord("u1", status=WAITING, last_check=1, updated=1))
    await store.update_put(UpdateRecord("u2", status=WAITING, last_check=1, updated=1))
    await store.update_put(UpdateRecord("k1", mac=MAC, status=WAITING, last_check=1, updated=1))
    assert await store.update_unknown_count() == 2
