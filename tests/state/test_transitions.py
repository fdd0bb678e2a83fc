"""Lifecycle transitions between replicas sharing one database: a transition decided from a state
another replica has since changed is decided again, never written over the newer state."""

from __future__ import annotations

from bootserver.boot.request import BootRequest
from bootserver.catalog.loader import load_catalog
from bootserver.config import Settings
from bootserver.runtime import Runtime
from bootserver.state import connect_store

NODE1 = "52:54:00:00:00:01"  # the install profile (after_install: local-disk) in the shared catalog


def interleave(store, between) -> None:
    """After the store's next read, run `between()` (the other replica's request) before answering."""
    read = store.get
    pending = [between]

    async def get(mac):
        record = await read(mac)
        if pending:
            await pending.pop()()
        return record

    store.get = get


async def test_installer_report_on_one_replica_is_not_lost_to_a_stale_one(sql_url, catalog_dir):
    stores = [await connect_store(sql_url), await connect_store(sql_url)]
    try:
        a, b = (Runtime(Settings(catalog=catalog_dir), load_catalog(catalog_dir), store) for store in stores)
        await a.decide(BootRequest(NODE1, "x86_64-efi"))
        await a.observe(NODE1, "http.ignition")  # the install started: installing
        assert (await stores[1].get(NODE1)).state == "installing"
        # replica A reads `installing` for a late "failed" report; replica B records "installed" meanwhile
        interleave(stores[0], lambda: b.observe(NODE1, "installer.installed"))
        await a.observe(NODE1, "installer.failed")
        assert (await stores[1].get(NODE1)).state == "installed"  # failed applies only to installing
        await stores[0].close()  # settles A's queued timeline writes
        kinds = [e.kind for e in await stores[1].events(NODE1)]
        assert "installer.installed" in kinds and "installer.failed" in kinds  # both are on the timeline
    finally:
        for store in stores:
            await store.close()


async def test_reinstall_decides_from_the_state_it_writes_over(sql_url, catalog_dir):
    stores = [await connect_store(sql_url), await connect_store(sql_url)]
    try:
        a, b = (Runtime(Settings(catalog=catalog_dir), load_catalog(catalog_dir), store) for store in stores)
        await a.decide(BootRequest(NODE1, "x86_64-efi"))
        await a.observe(NODE1, "http.ignition")
        # the operator's reinstall on A reads `installing`; B records "installed" before A writes
        interleave(stores[0], lambda: b.observe(NODE1, "installer.installed"))
        previous, record = await a.reinstall(NODE1, "test")
        assert (previous, record.state) == ("installed", "ready")  # what it moved is what was there
        reinstall = [e for e in await stores[1].events(NODE1) if e.kind == "reinstall"]
        assert [e.detail for e in reinstall] == [{"from": "installed", "transition": "installed->ready"}]
    finally:
        for store in stores:
            await store.close()
