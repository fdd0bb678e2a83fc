"""Issue 19 item 1: a machine's install result belongs to that machine. The events token is bound to
the address the machine booted from (its /ipxe request), usable once for the final report, new on
every install; /ignition fetched from another address does not start an install (strict mode:
refused)."""

from __future__ import annotations

import json
import re

import aiohttp
import pytest

MAC = "52:54:00:00:00:01"
VICTIM, ATTACKER = "127.0.0.1", "127.0.0.2"


async def call(server, source: str, method: str, path: str, body: dict | None = None) -> tuple[int, str]:
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as s:
        async with s.request(method, server.url + path, json=body) as r:
            return r.status, await r.text()


async def token_from_ipxe(server, source: str = VICTIM) -> str:
    status, script = await call(server, source, "GET", f"/ipxe?mac={MAC}")
    assert status == 200, script
    return re.search(r"token=([A-Za-z0-9_%-]+)", script).group(1)


async def state(server) -> str:
    status, body = await call(server, VICTIM, "GET", f"/api/v1/machines/{MAC}")
    return json.loads(body)["state"]


async def report(server, source: str, token: str, event: str) -> int:
    return (await call(server, source, "POST", f"/api/v1/machines/{MAC}/events?token={token}",
                       {"event": event, "detail": "x"}))[0]


@pytest.fixture
def server(serve, catalog_dir):
    return serve("--catalog", str(catalog_dir), "--state", "memory://")


async def test_a_config_fetched_from_another_address_does_not_start_an_install(server):
    await token_from_ipxe(server)  # the machine boots from 127.0.0.1
    assert await state(server) == "ready"
    status, _ = await call(server, ATTACKER, "GET", f"/ignition?mac={MAC}")
    assert status == 200  # default policy: served (relays, NAT), but it starts nothing
    assert await state(server) == "ready"
    server.wait_log(rf"{MAC}.*from {re.escape(ATTACKER)}, not the address it booted from")
    status, _ = await call(server, VICTIM, "GET", f"/ignition?mac={MAC}")
    assert status == 200 and await state(server) == "installing"


async def test_a_report_from_another_address_is_refused_and_logged(server):
    token = await token_from_ipxe(server)
    assert await report(server, ATTACKER, token, "installed") == 403
    assert await state(server) == "ready"
    server.wait_log(rf"refused installer event for {MAC} from {re.escape(ATTACKER)}")


async def test_the_token_is_usable_once_for_the_final_report_and_new_on_reinstall(server):
    token = await token_from_ipxe(server)
    assert await report(server, VICTIM, token, "progress") == 200
    assert await report(server, VICTIM, token, "progress") == 200  # progress may repeat
    assert await report(server, VICTIM, token, "installed") == 200
    assert await state(server) == "installed"
    assert await report(server, VICTIM, token, "installed") == 403  # replayed
    assert await report(server, VICTIM, token, "failed") == 403
    status, _ = await call(server, VICTIM, "POST", f"/api/v1/machines/{MAC}/reinstall")
    assert status == 200
    fresh = await token_from_ipxe(server)
    assert fresh != token
    assert await report(server, VICTIM, token, "installed") == 403
    assert await report(server, VICTIM, fresh, "failed") == 200


async def test_strict_mode_refuses_configs_to_other_addresses_and_to_machines_not_booted(serve, catalog_dir):
    server = serve("--catalog", str(catalog_dir), "--state", "memory://",
                   env={"BOOTSERVER_STRICT_MACHINE_ADDRESS": "true"})
    status, _ = await call(server, VICTIM, "GET", f"/ignition?mac={MAC}")
    assert status == 403  # the machine has not booted through bootserver yet
    await token_from_ipxe(server)
    assert (await call(server, ATTACKER, "GET", f"/ignition?mac={MAC}"))[0] == 403
    assert (await call(server, VICTIM, "GET", f"/ignition?mac={MAC}"))[0] == 200
