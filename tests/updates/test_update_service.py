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
