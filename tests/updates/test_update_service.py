"""Runtime.update_check in process (no sockets): slot bookkeeping that needs a clock in the past."""

from __future__ import annotations

import time

from bootserver.boot import updates as up
from bootserver.boot.request import BootRequest
from bootserver.catalog.loader import load_catalog
from bootserver.config import Settings
from bootserver.omaha.codec import parse_request
from bootserver.runtime import Runtime
from bootserver.state import connect_store

from .conftest import NEW, OLD, PROFILES
from .omaha_client import Node, request_xml
from tests.conftest import write_catalog


async def runtime_with(tmp_path, assets, max_updating: int) -> Runtime:
    root = write_catalog(tmp_path / "catalog", {"p.yaml": PROFILES % {"max_updating": max_updating}})
    settings = Settings(catalog=root, assets=assets, state="memory://")
    return Runtime(settings, load_catalog(root, assets), await connect_store("memory://"))


async def check(runtime: Runtime, node: Node, address: str):
    app = parse_request(request_xml(node)).apps[0]
    node.just_booted = False
    return await runtime.update_check(app, address, "http://boot.example:8080")


async def test_a_machine_back_after_its_slot_went_stale_must_claim_again(tmp_path, mirror):
    assets, _ = mirror
    runtime = await runtime_with(tmp_path, assets, max_updating=1)
    for mac, address in (("02:00:00:00:00:51", "10.0.0.51"), ("02:00:00:00:00:52", "10.0.0.52")):
        await runtime.decide(BootRequest(mac=mac, arch="x86_64-efi", client_ip=address))
    silent, other = Node("5" * 32), Node("6" * 32)
    assert (await check(runtime, silent, "10.0.0.51")).release.version == NEW
    record = await runtime.store.update_get(silent.machine_id)
    record.updated = time.time() - up.STALE_AFTER - 1  # it went quiet for more than two hours
    await runtime.store.update_put(record)
    assert (await check(runtime, other, "10.0.0.52")).release.version == NEW  # its slot was free
    answer = await check(runtime, silent, "10.0.0.51")  # back: the slot is the other's now
    assert answer.release is None
    assert (await runtime.store.update_get(silent.machine_id)).status == up.OFFERED  # still mid-update
    timeline = await runtime.timeline("02:00:00:00:00:51")
    await runtime.close()
    assert timeline[-1].detail["reason"] == "rollout limit: 1 machine(s) updating, the rollout allows 1 at once"


async def test_asking_again_mid_update_keeps_the_same_offer_and_slot(tmp_path, mirror):
    assets, _ = mirror
    runtime = await runtime_with(tmp_path, assets, max_updating=1)
    await runtime.decide(BootRequest(mac="02:00:00:00:00:53", arch="x86_64-efi", client_ip="10.0.0.53"))
    node = Node("7" * 32, version=OLD)
    first = await check(runtime, node, "10.0.0.53")
    again = await check(runtime, node, "10.0.0.53")
    assert first.release == again.release and first.codebase == again.codebase == \
        f"http://boot.example:8080/assets/flatcar/amd64/{NEW}/"
    status = await runtime.updates_status()
    await runtime.close()
    assert status["rollouts"][0]["updating"] == 1


async def test_unknown_machine_ids_are_recorded_up_to_a_bound(tmp_path, mirror, monkeypatch):
    assets, _ = mirror
    monkeypatch.setattr(up, "MAX_UNKNOWN", 3)
    runtime = await runtime_with(tmp_path, assets, max_updating=1)
    for i in range(5):  # nobody booted from 10.9.9.9: five machine-ids nobody knows
        assert (await check(runtime, Node(f"{i:032x}"), "10.9.9.9")).release is None
    records = await runtime.store.update_list()
    await runtime.close()
    assert [r.machine_id for r in records] == [f"{i:032x}" for i in range(3)]
    assert all(r.mac is None and r.status == up.WAITING for r in records)


async def test_unknown_event_types_keep_metric_labels_bounded(tmp_path, mirror):
    from bootserver.metrics import REGISTRY

    assets, _ = mirror
    runtime = await runtime_with(tmp_path, assets, max_updating=1)
    await runtime.decide(BootRequest(mac="02:00:00:00:00:54", arch="x86_64-efi", client_ip="10.0.0.54"))
    node = Node("8" * 32)
    for kind in (777, 778, 779):
        app = parse_request(request_xml(node, (kind, 5, 1))).apps[0]
        await runtime.update_check(app, "10.0.0.54", "http://boot.example:8080")
    timeline = await runtime.timeline("02:00:00:00:00:54")
    await runtime.close()
    assert [e.detail["event"] for e in timeline if e.kind == "omaha.event"] == ["type-777", "type-778", "type-779"]
    labels = {(s.labels["event"], s.labels["result"]) for metric in REGISTRY.collect()
              if metric.name == "bootserver_update_events" for s in metric.samples if s.name.endswith("_total")}
    assert not any(event.startswith("type-") for event, _ in labels) and ("other", "other") in labels
