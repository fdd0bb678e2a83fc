"""One suite every backend must pass: memory, SQLite and PostgreSQL behave the same."""

from __future__ import annotations

import asyncio
import time

import pytest

from bootserver.state import AlreadyRecorded, Event, StateChanged, TokenSpent, UnknownMachine

MAC = "52:54:00:a1:9c:ae"
OTHER = "52:54:00:00:00:02"


async def test_unknown_machine_is_none(store):
    assert await store.get(MAC) is None
    assert await store.machines() == []
    assert await store.events(MAC) == []


async def test_ensure_creates_once_and_keeps_state_and_token(store):
    first = await store.ensure(MAC, state="discovered", arch="x86_64-efi", uuid="u-1", interface="eth1")
    assert (first.mac, first.state, first.arch, first.uuid, first.interface) == (MAC, "discovered", "x86_64-efi",
                                                                                   "u-1", "eth1")
    assert len(first.token) >= 24
    assert first.first_seen == first.last_seen > 0
    await asyncio.sleep(0.01)
    second = await store.ensure(MAC, state="ready", client_ip="10.0.0.5", arch=None)
    assert second.state == "discovered"  # ensure never moves a known machine
    assert second.token == first.token
    assert second.arch == "x86_64-efi"  # None keeps what was known
    assert second.client_ip == "10.0.0.5"
    assert second.first_seen == first.first_seen and second.last_seen > first.last_seen
    assert await store.get(MAC) == second


async def test_ensure_rejects_unknown_facts(store):
    with pytest.raises(TypeError, match="colour"):
        await store.ensure(MAC, state="ready", colour="blue")


async def test_set_state(store):
    created = await store.ensure(MAC, state="ready")
    await asyncio.sleep(0.01)
    moved = await store.set_state(MAC, "installed")
    assert moved.state == "installed" and moved.state_changed > created.state_changed
    assert (await store.get(MAC)).state == "installed"
    with pytest.raises(UnknownMachine):
        await store.set_state(OTHER, "ready")


async def test_set_state_compare_and_set_refuses_a_stale_expectation(make_store, store_url):
    one = await make_store()
    two = one if store_url.startswith("memory") else await make_store()  # another replica, same database
    await one.ensure(MAC, state="installing")
    seen = await one.get(MAC)
    assert (await two.set_state(MAC, "installed", expected="installing")).state == "installed"  # first
    with pytest.raises(StateChanged) as refused:
        await one.set_state(MAC, "failed", expected=seen.state)  # decided from a state that is gone
    assert (refused.value.expected, refused.value.current) == ("installing", "installed")
    assert (await one.get(MAC)).state == "installed" and (await two.get(MAC)).state == "installed"
    with pytest.raises(UnknownMachine):
        await one.set_state(OTHER, "ready", expected="ready")


async def test_events_keep_order_detail_and_source(store):
    t0 = time.time()
    assert await store.record(Event(MAC, "dhcp.offer", "10.0.0.5", {"arch": "x86_64-efi", "n": 1}, at=t0)) is True
    await store.record(Event(MAC, "http.ipxe", "10.0.0.5", {"script": "install"}, at=t0 + 1))
    await store.record(Event(OTHER, "http.ipxe", None, {}, at=t0 + 2))
    got = await store.events(MAC)
    assert [(e.kind, e.source, e.detail, e.at) for e in got] == [
        ("dhcp.offer", "10.0.0.5", {"arch": "x86_64-efi", "n": 1}, t0),
        ("http.ipxe", "10.0.0.5", {"script": "install"}, t0 + 1)]
    assert got[0].seq < got[1].seq


async def test_events_paging(store):
    for i in range(10):
        await store.record(Event(MAC, "tftp.transfer", detail={"i": i}))
    newest = await store.events(MAC, limit=4)
    assert [e.detail["i"] for e in newest] == [6, 7, 8, 9]
    page = await store.events(MAC, limit=4, before=newest[0].seq)
    assert [e.detail["i"] for e in page] == [2, 3, 4, 5]
    last = await store.events(MAC, limit=4, before=page[0].seq)
    assert [e.detail["i"] for e in last] == [0, 1]


async def test_retention_bounds_each_timeline(make_store):
    store = await make_store(retention=5)
    for i in range(12):
        await store.record(Event(MAC, "http.asset", detail={"i": i}))
    await store.record(Event(OTHER, "http.asset", detail={"i": 0}))
    assert [e.detail["i"] for e in await store.events(MAC, limit=100)] == [7, 8, 9, 10, 11]
    assert len(await store.events(OTHER)) == 1


async def test_machines_listing_and_discovered(store):
    await store.ensure(OTHER, state="discovered", vendor="QEMU")
    await store.ensure(MAC, state="ready")
    assert [m.mac for m in await store.machines()] == [OTHER, MAC]
    assert [m.mac for m in await store.machines("ready")] == [MAC]
    assert [(m.mac, m.vendor) for m in await store.discovered()] == [(OTHER, "QEMU")]


async def test_token_lookup(store):
    rec = await store.ensure(MAC, state="ready")
    await store.ensure(OTHER, state="ready")
    assert (await store.by_token(rec.token)).mac == MAC
    assert await store.by_token("not-a-token") is None


async def test_forget_removes_machine_and_timeline(store):
    await store.ensure(MAC, state="installed")
    await store.record(Event(MAC, "installer.installed"))
    assert await store.forget(MAC) is True
    assert await store.get(MAC) is None
    assert await store.events(MAC) == []
    assert await store.forget(MAC) is False


async def test_concurrent_writers_all_land(store):
    """200 machines booting at once: every acknowledged event is readable afterwards."""
    macs = [f"52:54:00:00:{i // 256:02x}:{i % 256:02x}" for i in range(200)]

    async def boot(mac):
        await store.ensure(mac, state="ready")
        for kind in ("dhcp.offer", "dhcp.ack", "tftp.transfer", "http.ipxe", "http.asset"):
            assert await store.record(Event(mac, kind)) is True

    await asyncio.gather(*(boot(m) for m in macs))
    assert len(await store.machines()) == 200
    for mac in macs[::37]:
        assert [e.kind for e in await store.events(mac)] == ["dhcp.offer", "dhcp.ack", "tftp.transfer",
                                                              "http.ipxe", "http.asset"]


async def test_a_final_report_spends_the_token_once_all_or_nothing(store):
    first = await store.ensure(MAC, state="installing")
    report = Event(MAC, "installer.installed", key="k-1")
    with pytest.raises(StateChanged):  # decided from a state the machine has left: nothing written
        await store.spend_token(MAC, first.token, report, expected="ready", state="installed")
    await store.record(Event(MAC, "installer.progress", key="k-0"))
    with pytest.raises(AlreadyRecorded):  # its key is on the timeline: nothing written
        await store.spend_token(MAC, first.token, Event(MAC, "installer.installed", key="k-0"),
                                expected="installing", state="installed")
    unchanged = await store.get(MAC)
    assert (unchanged.token, unchanged.state) == (first.token, "installing")
    spent = await store.spend_token(MAC, first.token, report, expected="installing", state="installed")
    assert spent.state == "installed" and spent.token != first.token and (await store.get(MAC)).token == spent.token
    with pytest.raises(TokenSpent):  # replayed
        await store.spend_token(MAC, first.token, Event(MAC, "installer.failed"), expected="installed")
    assert [(e.kind, e.key) for e in await store.events(MAC)] == [("installer.progress", "k-0"),
                                                                  ("installer.installed", "k-1")]
    again = await store.rotate_token(MAC)  # a reinstall
    assert again.token not in (first.token, spent.token)
    with pytest.raises(UnknownMachine):
        await store.rotate_token(OTHER)
    with pytest.raises(UnknownMachine):
        await store.spend_token(OTHER, "x", Event(OTHER, "installer.failed"), expected="installing")
