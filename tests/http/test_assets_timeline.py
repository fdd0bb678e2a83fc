"""/assets fetches on the machine's timeline (through Runtime.asset_fetched), metrics, store outages."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bootserver.state.base import StoreUnavailable
from bootserver.state.memory import MemoryStore

from tests.http.assets_support import raw_get, BIG, KNOWN_MAC


async def events_of(runtime, mac, expected: int):
    """The machine's events once `expected` are there: the server records a fetch after sending it."""
    for _ in range(100):
        events = await runtime.store.events(mac)
        if len(events) >= expected:
            break
        await asyncio.sleep(0.01)
    return [(e.kind, e.detail) for e in events]


async def test_kernel_fetch_by_known_machine_is_observed_and_starts_install(server, client, caplog):
    base, _, runtime = server
    caplog.set_level(logging.INFO, logger="bootserver.access")
    await runtime.store.ensure(KNOWN_MAC, state="ready", name="node1", profile="flatcar-install")
    async with client.get(f"{base}/assets/flatcar/current/vmlinuz?mac=52-54-00-12-34-56") as resp:
        assert resp.status == 200
        await resp.read()
    async with client.get(f"{base}/assets/big.img?mac={KNOWN_MAC}", headers={"Range": "bytes=0-99"}) as resp:
        assert resp.status == 206
    assert await events_of(runtime, KNOWN_MAC, 2) == [
        ("http.kernel", {"path": "flatcar/current/vmlinuz", "file": "flatcar/4081.2.0/vmlinuz", "status": 200,
                         "bytes": 11000, "method": "GET", "transition": "ready->installing"}),
        ("http.asset", {"path": "big.img", "file": "big.img", "status": 206, "bytes": 100, "method": "GET"}),
    ]
    assert (await runtime.store.get(KNOWN_MAC)).state == "installing"
    lines = [r.getMessage() for r in caplog.records if r.name == "bootserver.access"]
    assert any(f"node1 {KNOWN_MAC} GET /assets/big.img 206 100B" in line for line in lines), lines


async def test_fetch_without_mac_is_attributed_by_client_address(server, client):
    base, _, runtime = server
    await runtime.store.ensure(KNOWN_MAC, state="ready", name="node1", profile="flatcar-install")
    runtime.remember_ip("127.0.0.1", KNOWN_MAC)
    async with client.head(f"{base}/assets/flatcar/current/vmlinuz") as resp:
        assert resp.status == 200
    assert await events_of(runtime, KNOWN_MAC, 1) == [
        ("http.asset", {"path": "flatcar/current/vmlinuz", "file": "flatcar/4081.2.0/vmlinuz", "status": 200,
                        "bytes": 0, "method": "HEAD"})]
    assert (await runtime.store.get(KNOWN_MAC)).state == "ready"  # a HEAD does not start an install


@pytest.mark.parametrize("query", ["", "?mac=52:54:00:99:99:99", "?mac=not-a-mac"])
async def test_fetch_by_unknown_or_no_machine_is_not_observed(server, client, query):
    base, _, runtime = server
    runtime.remember_ip("127.0.0.1", "52:54:00:99:99:98")  # an address seen, but no such machine stored
    await runtime.store.ensure(KNOWN_MAC, state="ready", name="node1", profile="flatcar-install")
    async with client.get(f"{base}/assets/boot.ipxe{query}") as resp:
        assert resp.status == 200
    async with client.get(f"{base}/assets/boot.ipxe?mac={KNOWN_MAC}") as resp:  # same connection, after it
        assert resp.status == 200
    assert [kind for kind, _ in await events_of(runtime, KNOWN_MAC, 1)] == ["http.asset"]
    for mac in ("52:54:00:99:99:99", "52:54:00:99:99:98"):  # the earlier fetch was handled first: nothing
        assert await runtime.store.events(mac) == []


async def scrape(client, base) -> dict:
    """Every sample of GET /metrics, parsed as Prometheus parses it: {(name, labels): value}."""
    async with client.get(f"{base}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


async def test_metrics_endpoint_counts_what_was_served(server, client, folder):
    base, port, _ = server
    before = await scrape(client, base)
    async with client.get(f"{base}/assets/boot.ipxe") as resp:
        body = await resp.read()
    assert (await raw_get(port, "/assets/../outside/secret"))[0] == 403
    after = await scrape(client, base)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert body == (folder / "boot.ipxe").read_bytes()
    assert grew("bootserver_http_asset_bytes_sent_total") == len(body) == 19
    assert grew("bootserver_http_asset_refused_total") == 1
    assert after[("bootserver_http_asset_open_transfers", ())] == 0
    assert grew("bootserver_http_requests_total", endpoint="/assets/{path}", status="200") == 1
    assert grew("bootserver_http_requests_total", endpoint="/metrics", status="200") == 1  # the first scrape


class BrokenStore(MemoryStore):
    async def get(self, mac):
        raise StoreUnavailable("database is locked for good")


async def test_store_outage_does_not_fail_the_download(server, client, folder, caplog):
    base, _, runtime = server
    runtime.store = BrokenStore()
    async with client.get(f"{base}/assets/flatcar/current/vmlinuz?mac={KNOWN_MAC}") as resp:
        assert resp.status == 200
        assert await resp.read() == b"kernel-4081" * 1000
    assert any("not recorded" in r.getMessage() for r in caplog.records)


async def test_access_log_counts_sendfile_bytes(server, client, caplog):
    base, _, _ = server
    caplog.set_level(logging.INFO, logger="bootserver.access")
    async with client.get(f"{base}/assets/big.img") as resp:
        assert len(await resp.read()) == BIG
    lines = [r.getMessage() for r in caplog.records if r.name == "bootserver.access"]
    assert any(f"unknown - GET /assets/big.img 200 {BIG}B" in line for line in lines), lines
