"""observe(known=record): a transition is decided from the record the request just read, without
reading it again; a record another replica changed meanwhile costs a second try, never a wrong move."""

from __future__ import annotations

from bootserver.boot.request import BootRequest
from bootserver.catalog.loader import load_catalog
from bootserver.config import Settings
from bootserver.runtime import Runtime
from bootserver.state import connect_store

NODE1 = "52:54:00:00:00:01"  # the install profile (after_install: local-disk) in the shared catalog


def counting_reads(store) -> list:
    reads, read = [], store.get

    async def get(mac):
        reads.append(mac)
        return await read(mac)

    store.get = get
    return reads


async def test_the_known_record_starts_the_install_without_a_second_read(sql_url, catalog_dir):
    store = await connect_store(sql_url)
    try:
        runtime = Runtime(Settings(catalog=catalog_dir), load_catalog(catalog_dir), store)
        decision = await runtime.decide(BootRequest(NODE1, "x86_64-efi"))
        reads = counting_reads(store)
        await runtime.observe(NODE1, "http.ignition", {"profile": "install"}, known=decision.record)
        assert reads == [] and (await store.get(NODE1)).state == "installing"
    finally:
        await store.close()


async def test_a_stale_known_record_is_read_again_and_moves_nothing_wrong(sql_url, catalog_dir):
    stores = [await connect_store(sql_url), await connect_store(sql_url)]
    try:
        a, b = (Runtime(Settings(catalog=catalog_dir), load_catalog(catalog_dir), store) for store in stores)
        stale = (await a.decide(BootRequest(NODE1, "x86_64-efi"))).record  # ready
        await b.observe(NODE1, "http.ignition")  # replica B: installing,
        await b.observe(NODE1, "installer.installed")  # then installed
        reads = counting_reads(stores[0])
        await a.observe(NODE1, "http.ignition", {"profile": "install"}, known=stale)  # decided from `ready`
        assert reads == [NODE1]  # the compare-and-set failed: read afresh once
        assert (await stores[1].get(NODE1)).state == "installed"  # not moved back to installing
        await stores[0].close()
        kinds = [e.kind for e in await stores[1].events(NODE1)]
        assert kinds.count("http.ignition") == 2 and kinds[-1] == "http.ignition"  # kept on the timeline
    finally:
        for store in stores:
            await store.close()
