"""The boot endpoints over a real server on loopback, with a real HTTP client."""

import json
import re

import aiohttp
import pytest

from tests.conftest import MACHINES, PROFILE, write_catalog


@pytest.fixture
def server(serve, catalog_dir, tmp_path):
    return serve("--catalog", str(catalog_dir), "--state", "memory://", "--assets", str(tmp_path / "assets"))


async def get(url, **kw):
    async with aiohttp.ClientSession() as s:
        async with s.get(url, **kw) as r:
            return r.status, await r.text(), r.headers


async def test_boot_ipxe_chains_with_identity_and_retries(server):
    status, text, _ = await get(server.url + "/boot.ipxe")
    assert status == 200 and text.startswith("#!ipxe\n")
    assert f"chain --autofree {server.url}/ipxe?mac=${{net0/mac}}&uuid=${{uuid}}&arch=${{buildarch}}" in text
    for field in ("platform=${platform}", "serial=${serial:uristring}", "manufacturer=", "product=", "hostname="):
        assert field in text
    assert text.count("dhcp ||") == 3 and text.rstrip().endswith("exit 1")


async def test_ipxe_for_a_known_machine(server):
    status, text, _ = await get(server.url + "/ipxe?mac=52-54-00-00-00-01&arch=x86_64&platform=efi")
    assert status == 200
    lines = text.splitlines()
    assert lines[0] == "#!ipxe"
    kernel = next(l for l in lines if l.startswith("kernel "))
    assert kernel.split()[1] == f"{server.url}/assets/os/vmlinuz"
    assert "initrd=initrd.img" in kernel and "hostname=node1" in kernel
    assert f"ignition.config.url={server.url}/ignition?mac=52:54:00:00:00:01" in kernel
    assert f"initrd {server.url}/assets/os/initrd.img" in lines and lines[-1] == "boot"
    assert re.search(r"node1 .*52:54:00:00:00:01 GET /ipxe 200", server.log())


async def test_ipxe_absolute_kernel_url_is_kept(server):
    status, text, _ = await get(server.url + "/ipxe?mac=52:54:00:00:00:77")
    assert status == 200 and "kernel https://mirror.example/live/vmlinuz console=ttyS0" in text


@pytest.mark.parametrize("query,reason", [("", "missing query parameter 'mac'"), ("?mac=nope", "not a MAC")])
async def test_bad_or_missing_mac_is_400(server, query, reason):
    status, text, _ = await get(server.url + "/ipxe" + query)
    assert status == 400 and reason in text


async def test_unknown_mac_is_not_booted_when_ignored(server):
    status, text, _ = await get(server.url + "/ipxe?mac=00:1b:21:00:00:01")
    assert status == 200 and "not booting" in text and text.rstrip().endswith("exit")
    assert "kernel" not in text


async def test_metadata_lines_and_json(server):
    status, text, _ = await get(server.url + "/metadata?mac=52:54:00:00:00:01")
    assert status == 200
    assert set(text.splitlines()) == {"HOSTNAME=node1", "DISK_DEVICE=/dev/vda", "DISK_WIPE=true"}
    status, text, headers = await get(server.url + "/metadata?mac=52:54:00:00:00:01",
                                      headers={"Accept": "application/json"})
    assert json.loads(text) == {"hostname": "node1", "disk": {"device": "/dev/vda", "wipe": True}}


async def test_ignition_config_with_etag_and_404(server):
    status, text, headers = await get(server.url + "/ignition?mac=52:54:00:00:00:01")
    assert status == 200 and json.loads(text) == {"ignition": {"version": "3.3.0"}}
    assert headers["Content-Type"].startswith("application/json") and headers["ETag"]
    status, _, _ = await get(server.url + "/ignition?mac=52:54:00:00:00:01",
                             headers={"If-None-Match": headers["ETag"]})
    assert status == 304
    status, text, _ = await get(server.url + "/ignition?mac=00:1b:21:00:00:01")
    assert status == 404 and "no profile matches" in json.loads(text)["error"]


async def test_healthz_and_metrics(server):
    status, text, _ = await get(server.url + "/healthz")
    body = json.loads(text)
    assert status == 200 and body["catalog"]["generation"] == 1 and body["last_reload_error"] is None
    assert body["components"] == {"http": True, "catalog-watcher": True}
    await get(server.url + "/ipxe?mac=nope")
    status, text, _ = await get(server.url + "/metrics")
    assert 'bootserver_http_requests_total{endpoint="/ipxe",status="400"}' in text


@pytest.mark.parametrize("hostname", ["evil\nchain http://x/", "a${net0/mac}", "a && shell", "with space",
                                      'quo"te', "semi;colon"])
async def test_hostile_metadata_never_reaches_the_script(serve, tmp_path, hostname):
    machines = MACHINES.replace("{hostname: node1, disk: {device: /dev/vda}}", "{hostname: " + json.dumps(hostname) + "}")
    root = write_catalog(tmp_path / "hostile", {"a.yaml": PROFILE, "m.yaml": machines, "ignition.json": "{}"})
    server = serve("--catalog", str(root), "--state", "memory://")
    status, text, _ = await get(server.url + "/ipxe?mac=52:54:00:00:00:01")
    assert status == 500 and "not allowed in a kernel argument" in text
    assert "#!ipxe" not in text
    status, text, _ = await get(server.url + "/metadata?mac=52:54:00:00:00:01")
    line = next(l for l in text.splitlines() if l.startswith("HOSTNAME="))
    assert all(re.match(r"^[A-Z_]+=", l) for l in text.splitlines()) and line.startswith("HOSTNAME='")


async def test_http_boot_loaders_are_served_from_the_ipxe_folder(server):
    import hashlib
    from pathlib import Path

    async with aiohttp.ClientSession() as s:
        async with s.get(server.url + "/loaders/ipxe.efi") as r:
            status, body = r.status, await r.read()
    assert status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(
        Path("/usr/lib/ipxe/ipxe.efi").read_bytes()).digest()
    for bad in ("..%2fshadow", ".hidden", "nope.efi"):
        status, _, _ = await get(server.url + "/loaders/" + bad)
        assert status == 404
