"""One Flatcar node updated from bootserver's mirror: the whole Omaha conversation, as update_engine
holds it (see omaha_client), against a real bootserver; and what the operator sees of it."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from .conftest import NEW, OLD, boot, session_from
from .omaha_client import (DOWNLOAD_FINISHED, DOWNLOAD_STARTED, ERROR, SUCCESS, UPDATE_COMPLETE, Node,
                           check_for_update, download_and_verify, reboot_into, send_event)

MAC, ADDR = "02:00:00:00:00:01", "127.0.1.1"


async def api(url: str, method: str = "GET") -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url) as response:
            assert response.status == 200, await response.text()
            return await response.json()


async def omaha_timeline(server_url: str, mac: str, count: int) -> list[dict]:
    """The machine's omaha.* events once `count` are there: timeline writes are queued, not awaited."""
    deadline = time.monotonic() + 10
    while True:
        events = (await api(f"{server_url}/api/v1/machines/{mac}/events?limit=100"))["events"]
        found = [e for e in events if e["kind"].startswith("omaha.")]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_node_updates_from_the_mirror_and_reports_the_new_version(serve, mirror, catalog, tmp_path):
    assets, genuine = mirror
    server = serve("--catalog", str(catalog()), "--assets", str(assets), "--state", f"sqlite:///{tmp_path}/s.db")
    omaha = f"{server.url}/v1/update/"
    await boot(server.url, MAC, ADDR)
    node = Node("0123456789abcdef0123456789abcdef", version=OLD, local_addr=ADDR)
    async with session_from(ADDR) as session:
        offer = await check_for_update(session, omaha, node)
        assert offer is not None and offer.version == NEW
        assert offer.urls == [f"{server.url}/assets/flatcar/amd64/{NEW}/flatcar_production_update.gz"]
        payload = await download_and_verify(session, offer)
        assert payload == genuine[NEW]["flatcar_production_update.gz"]  # Flatcar's file, unchanged
        assert [e["name"] for e in offer.extras] == ["oem-azure.gz"]
        assert offer.extras[0]["required"] == "false" and len(offer.extras[0]["hash_sha256"]) == 64
        await send_event(session, omaha, node, DOWNLOAD_STARTED)
        await send_event(session, omaha, node, DOWNLOAD_FINISHED)
        await send_event(session, omaha, node, UPDATE_COMPLETE, SUCCESS)
        status = await api(f"{server.url}/api/v1/updates")
        assert [(m["machine_id"], m["mac"], m["status"], m["target"]) for m in status["machines"]] == [
            (node.machine_id, MAC, "applied", NEW)]
        reboot_into(node, NEW)
        assert await check_for_update(session, omaha, node) is None  # current now: noupdate
    status = await api(f"{server.url}/api/v1/updates")
    machine = status["machines"][0]
    assert (machine["version"], machine["status"]) == (NEW, "current")
    rollout = next(r for r in status["rollouts"] if r["rollout"] == "group/rack1")
    assert (rollout["target"], rollout["updating"], rollout["states"]) == (NEW, 0, {"current": 1})
    timeline = await omaha_timeline(server.url, MAC, 7)
    omaha_events = [(e["kind"], e["detail"].get("event") or e["detail"]["answer"]) for e in timeline]
    assert omaha_events == [
        ("omaha.event", "update-complete"), ("omaha.check", "offer"),  # fresh install: previous 0.0.0.0
        ("omaha.event", "download-started"), ("omaha.event", "download-finished"),
        ("omaha.event", "update-complete"),
        ("omaha.event", "update-complete"), ("omaha.check", "noupdate")]  # after the reboot
    last = [e for e in timeline if e["kind"] == "omaha.event"][-1]["detail"]
    assert last == {"event": "update-complete", "result": "success-reboot", "version": NEW,
                    "previous_version": OLD, "status": "current"}
    machines = await api(f"{server.url}/api/v1/machines")
    assert [(m["mac"], m["os_version"], m["update"]) for m in machines["machines"]] == [(MAC, NEW, "current")]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/metrics") as response:
            metrics = await response.text()
    for line in ('bootserver_update_checks_total{answer="offer"} 1.0',
                 'bootserver_update_checks_total{answer="noupdate"} 1.0', "bootserver_update_offers_total 1.0",
                 "bootserver_update_completions_total 1.0",
                 'bootserver_update_events_total{event="download-started",result="success"} 1.0'):
        assert line in metrics, line


async def test_error_event_frees_the_slot_and_is_counted(serve, mirror, catalog, tmp_path):
    assets, _ = mirror
    server = serve("--catalog", str(catalog(max_updating=1)), "--assets", str(assets), "--state", "memory://")
    omaha = f"{server.url}/v1/update/"
    first, second = Node("a" * 32, local_addr="127.0.1.2"), Node("b" * 32, local_addr="127.0.1.3")
    for node, mac in ((first, "02:00:00:00:00:02"), (second, "02:00:00:00:00:03")):
        await boot(server.url, mac, node.local_addr)
    async with session_from(first.local_addr) as one, session_from(second.local_addr) as two:
        assert await check_for_update(one, omaha, first) is not None
        assert await check_for_update(two, omaha, second) is None  # one at a time
        await send_event(one, omaha, first, DOWNLOAD_FINISHED, ERROR, 12)  # e.g. a hash mismatch
        assert await check_for_update(two, omaha, second) is not None
    status = await api(f"{server.url}/api/v1/updates")
    states = {m["machine_id"]: (m["status"], m["error_code"]) for m in status["machines"]}
    assert states == {first.machine_id: ("error", 12), second.machine_id: ("offered", None)}
    timeline = await omaha_timeline(server.url, "02:00:00:00:00:02", 3)
    error = next(e for e in timeline if e["kind"] == "omaha.event" and e["detail"]["result"] == "error")
    assert error["detail"]["errorcode"] == 12
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/metrics") as response:
            assert "bootserver_update_errors_total 1.0" in await response.text()
    waited = await omaha_timeline(server.url, "02:00:00:00:00:03", 3)
    reasons = [e["detail"]["reason"] for e in waited if e["kind"] == "omaha.check"]
    assert reasons == ["rollout limit: 1 machine(s) updating, the rollout allows 1 at once",
                       f"offer {NEW} (runs {OLD})"]


async def test_unknown_machine_id_is_recorded_not_refused(serve, mirror, catalog):
    assets, _ = mirror
    server = serve("--catalog", str(catalog()), "--assets", str(assets), "--state", "memory://")
    node = Node("c" * 32)  # never PXE-booted from this address
    async with session_from("127.0.1.9") as session:
        assert await check_for_update(session, f"{server.url}/v1/update/", node) is None
    status = await api(f"{server.url}/api/v1/updates")
    assert [(m["machine_id"], m["mac"], m["version"], m["status"]) for m in status["machines"]] == [
        (node.machine_id, None, OLD, "waiting")]
    server.wait_log(r"unknown machine-id c{32} from 127\.0\.1\.9 \(version 4081\.2\.0\): recorded")


async def test_node_is_tied_by_its_boot_address_after_a_restart(serve, mirror, catalog, tmp_path):
    """The address learnt at boot is in the store, so a restarted server still knows whose check it is."""
    assets, _ = mirror
    args = ("--catalog", str(catalog()), "--assets", str(assets), "--state", f"sqlite:///{tmp_path}/s.db")
    first = serve(*args)
    await boot(first.url, "02:00:00:00:00:40", "127.0.1.40")
    first.stop()
    second = serve(*args)
    node = Node("f" * 32, local_addr="127.0.1.40")
    async with session_from(node.local_addr) as session:
        assert await check_for_update(session, f"{second.url}/v1/update/", node) is not None
    status = await api(f"{second.url}/api/v1/updates")
    assert [(m["mac"], m["rollout"]) for m in status["machines"]] == [("02:00:00:00:00:40", "group/rack1")]
