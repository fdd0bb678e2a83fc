"""The admin API over a real aiohttp server: tokens, loopback-only without one, and the answers.

The non-loopback client is real too: the server's socket is made inside a network namespace of
this test's own (with a veth pair inside it), and curl runs in that namespace, so the server sees a
10.x peer address.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import socket
import subprocess
import threading

import aiohttp
import pytest
from aiohttp import web

from bootserver.catalog.loader import load_catalog
from bootserver.config import Settings
from bootserver.http.server import make_app
from bootserver.runtime import Runtime
from bootserver.state.memory import MemoryStore

TOKEN = "s3cret-admin-token"
NODE1 = "52:54:00:00:00:01"
STRANGER = "00:1b:21:aa:bb:cc"


class Admin:
    def __init__(self, runtime: Runtime, runner: web.AppRunner, url: str) -> None:
        self.runtime, self.runner, self.url = runtime, runner, url
        self.session = aiohttp.ClientSession()

    async def call(self, method: str, path: str, token: str | None = TOKEN, **kw):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(method, self.url + path, headers=headers, **kw) as resp:
            body = await resp.text()
            return resp.status, (json.loads(body) if resp.content_type == "application/json" else body)


async def start(catalog_dir, admin_token: str | None, sock: socket.socket | None = None) -> Admin:
    settings = Settings(catalog=catalog_dir, admin_token=admin_token, unknown_machines="discover")
    runtime = Runtime(settings, load_catalog(catalog_dir), MemoryStore())
    runner = web.AppRunner(make_app(runtime, runtime.settings), access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock) if sock else web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return Admin(runtime, runner, f"http://{host}:{port}")


@pytest.fixture
async def admin_factory():
    started: list[Admin] = []

    async def make(catalog_dir, admin_token=TOKEN, sock=None) -> Admin:
        admin = await start(catalog_dir, admin_token, sock)
        started.append(admin)
        return admin

    yield make
    for admin in started:
        await admin.session.close()
        await admin.runner.cleanup()


@pytest.fixture
async def admin(admin_factory, catalog_dir):
    return await admin_factory(catalog_dir)


async def test_token_right_wrong_missing(admin, caplog):
    assert (await admin.call("GET", "/api/v1/machines"))[0] == 200
    with caplog.at_level(logging.WARNING, "bootserver.admin"):
        status, body = await admin.call("GET", "/api/v1/machines", token="nope")
        assert status == 401 and "wrong admin token" in body
        status, body = await admin.call("POST", f"/api/v1/machines/{NODE1}/reinstall", token=None)
        assert status == 401 and "missing admin token" in body
    refusals = [r.getMessage() for r in caplog.records if r.name == "bootserver.admin"]
    assert any("wrong bearer token" in m and "127.0.0.1" in m for m in refusals)
    assert any("missing bearer token" in m and "/reinstall" in m for m in refusals)


async def test_no_token_configured_answers_loopback(admin_factory, catalog_dir):
    admin = await admin_factory(catalog_dir, admin_token=None)
    status, body = await admin.call("GET", "/api/v1/machines", token=None)
    assert status == 200 and body == {"machines": []}


async def test_machines_show_events_reinstall_forget(admin):
    runtime = admin.runtime
    from bootserver.boot.request import BootRequest

    assert (await runtime.decide(BootRequest(NODE1, "x86_64-efi", client_ip="10.0.0.5"))).action == "boot"
    for kind in ("http.ipxe", "http.ignition", "installer.installed"):
        await runtime.observe(NODE1, kind, {"k": kind}, source="10.0.0.5")
    status, listing = await admin.call("GET", "/api/v1/machines")
    assert status == 200 and [(m["mac"], m["name"], m["state"]) for m in listing["machines"]] == [
        (NODE1, "node1", "installed")]
    assert "token" not in listing["machines"][0]
    status, shown = await admin.call("GET", "/api/v1/machines/52-54-00-00-00-01")  # any spelling
    assert status == 200 and (shown["profile"], shown["arch"], shown["client_ip"]) == ("install", "x86_64-efi",
                                                                                          "10.0.0.5")
    assert shown["next_boot"] == {"action": "local-disk", "profile": "install", "reason": (
        "installed; profile install boots installed machines from local disk")}
    status, page = await admin.call("GET", f"/api/v1/machines/{NODE1}/events", params={"limit": "2"})
    assert [e["kind"] for e in page["events"]] == ["http.ignition", "installer.installed"]
    assert page["before"] == page["events"][0]["seq"] and page["events"][0]["source"] == "10.0.0.5"
    status, older = await admin.call("GET", f"/api/v1/machines/{NODE1}/events", params={"before": page["before"]})
    assert [e["kind"] for e in older["events"]] == ["http.ipxe"] and older["before"] is None
    status, done = await admin.call("POST", f"/api/v1/machines/{NODE1}/reinstall")
    assert status == 200 and (done["previous"], done["state"]) == ("installed", "ready")
    assert (await runtime.store.events(NODE1))[-1].kind == "reinstall"
    assert (await admin.call("DELETE", f"/api/v1/machines/{NODE1}"))[0] == 200
    assert (await admin.call("GET", f"/api/v1/machines/{NODE1}"))[0] == 404


async def test_bad_and_unknown_input(admin):
    from bootserver.boot.request import BootRequest

    assert (await admin.call("GET", "/api/v1/machines/not-a-mac"))[0] == 400
    assert (await admin.call("GET", f"/api/v1/machines/{NODE1}"))[0] == 404
    assert (await admin.call("GET", f"/api/v1/machines/{NODE1}/events"))[0] == 404
    assert (await admin.call("POST", f"/api/v1/machines/{NODE1}/reinstall"))[0] == 404
    assert (await admin.call("GET", f"/api/v1/machines/{NODE1}/events", params={"limit": "0"}))[0] == 400
    assert (await admin.call("GET", f"/api/v1/machines/{NODE1}/events", params={"before": "x"}))[0] == 400
    await admin.runtime.decide(BootRequest(STRANGER, "x86_64-bios"))  # unknown: discovered
    status, listing = await admin.call("GET", "/api/v1/machines", params={"state": "discovered"})
    assert [(m["mac"], m["vendor"]) for m in listing["machines"]] == [(STRANGER, "Intel Corporate")]
    status, body = await admin.call("POST", f"/api/v1/machines/{STRANGER}/reinstall")
    assert status == 409 and "adopt" in body


async def test_installer_events_route_still_uses_the_machine_token(admin):
    from bootserver.boot.request import BootRequest

    record = (await admin.runtime.decide(BootRequest(NODE1, "x86_64-efi"))).record
    status, _ = await admin.call("POST", f"/api/v1/machines/{NODE1}/events", token=record.token,
                                 json={"event": "installed"})
    assert status == 200 and (await admin.runtime.store.get(NODE1)).state == "installed"
    status, page = await admin.call("GET", f"/api/v1/machines/{NODE1}/events")
    assert status == 200 and page["events"][-1]["kind"] == "installer.installed"


# -- a client that is not on loopback ------------------------------------------------------------

CLONE_NEWNET = 0x40000000


def socket_in_netns(netns: str, address: str) -> socket.socket:
    """A listening TCP socket created inside `netns` (setns applies to one thread: use a fresh one)."""
    made: list = []

    def work() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                made.append(OSError(ctypes.get_errno(), "setns failed"))
                return
        finally:
            os.close(fd)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((address, 0))
        sock.listen(64)
        sock.setblocking(False)
        made.append(sock)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if isinstance(made[0], Exception):
        raise made[0]
    return made[0]


@pytest.fixture
def netns():
    if os.geteuid() != 0:
        pytest.skip("needs root for a network namespace")
    name = f"bsst-adm-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "link", "add", "bsst0", "type", "veth", "peer", "name", "bsst1"],
                    ["ip", "addr", "add", "10.231.0.1/24", "dev", "bsst0"], ["ip", "link", "set", "bsst0", "up"],
                    ["ip", "link", "set", "bsst1", "up"]):
            subprocess.run(["ip", "netns", "exec", name, *cmd], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


async def curl_in(netns: str, url: str, token: str | None = None) -> int:
    headers = ["-H", f"Authorization: Bearer {token}"] if token else []
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
        *headers, url, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return int(out)


@pytest.mark.netns
async def test_non_loopback_client_needs_a_configured_token(admin_factory, catalog_dir, netns, caplog):
    open_admin = await admin_factory(catalog_dir, admin_token=None, sock=socket_in_netns(netns, "10.231.0.1"))
    with caplog.at_level(logging.WARNING, "bootserver.admin"):
        assert await curl_in(netns, open_admin.url + "/api/v1/machines") == 403
    assert any("not loopback and no admin_token is set" in r.getMessage() and "10.231.0.1" in r.getMessage()
               for r in caplog.records)
    guarded = await admin_factory(catalog_dir, admin_token=TOKEN, sock=socket_in_netns(netns, "10.231.0.1"))
    assert await curl_in(netns, guarded.url + "/api/v1/machines", TOKEN) == 200
    assert await curl_in(netns, guarded.url + "/api/v1/machines", "wrong") == 401
