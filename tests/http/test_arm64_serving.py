"""arm64 over a real server on loopback: what `serve` says at start about its arm64 loader, Debian's
arm64 GRUB under /loaders/, and an arm64 Group's profile kept for requests that carry no arch."""

import aiohttp

from bootserver.config import Settings
from tests.conftest import MACHINES, PROFILE, write_catalog

ARM64_GROUP = """\
---
apiVersion: bootserver/v1
kind: Group
metadata: {name: arm}
spec:
  selector: {mac_prefix: "52:54:00", arch: arm64-efi}
  profile: install
  metadata: {hostname: arm-host}
"""
ARM_MAC = "52:54:00:00:07:01"


async def get(s, url):
    async with s.get(url) as r:
        return r.status, await r.read()


async def test_serve_names_debians_arm64_grub_and_serves_it(serve, catalog_dir):
    grub = Settings().grub_arm64_efi
    server = serve("--state", "memory://", "--catalog", str(catalog_dir),
                   env={"BOOTSERVER_ARM64_LOADER": "grubaa64.efi"})
    assert f"arm64: serving grubaa64.efi = {grub} (GRUB, per-machine grub.cfg)" in server.log()
    async with aiohttp.ClientSession() as s:
        assert await get(s, f"{server.url}/loaders/grubaa64.efi") == (200, grub.read_bytes())


async def test_serve_says_why_arm64_is_not_answered(serve, catalog_dir, tmp_path):
    server = serve("--state", "memory://", "--catalog", str(catalog_dir),
                   env={"BOOTSERVER_ARM64_LOADER": "grubaa64.efi",
                        "BOOTSERVER_GRUB_ARM64_EFI": str(tmp_path / "missing.efi")})
    assert f"arm64: not answered: arm64_loader=grubaa64.efi but {tmp_path / 'missing.efi'} is missing" in server.log()
    plain = serve("--state", "memory://", "--catalog", str(catalog_dir))
    assert "arm64: not answered (arm64_loader is not set" in plain.log()


async def test_arm64_group_profile_holds_for_requests_without_an_arch(serve, tmp_path):
    catalog = write_catalog(tmp_path / "c", {"p.yaml": PROFILE, "m.yaml": MACHINES + ARM64_GROUP,
                                             "ignition.json": '{"ignition": {"version": "3.3.0"}}'})
    server = serve("--catalog", str(catalog), "--state", f"sqlite:///{tmp_path / 'state.db'}")
    async with aiohttp.ClientSession() as s:
        # an x86 machine with the same MAC prefix gets the one-key group's profile (live: no Ignition)
        status, _ = await get(s, f"{server.url}/ignition?mac=52:54:00:00:08:01")
        assert status == 404
        status, body = await get(s, f"{server.url}/ipxe?mac={ARM_MAC}&arch=arm64&platform=efi")
        assert status == 200 and b"hostname=arm-host" in body
        # Ignition's own request says no arch: the arch from the boot request still selects the group
        status, body = await get(s, f"{server.url}/ignition?mac={ARM_MAC}")
        assert status == 200 and b'"version":"3.3.0"' in body.replace(b" ", b"")


async def test_serve_builds_the_arm64_http_boot_grub_for_the_address_machines_reach(serve, catalog_dir):
    server = serve("--state", "memory://", "--catalog", str(catalog_dir),
                   env={"BOOTSERVER_ARM64_LOADER": "grubaa64.efi"})
    assert "arm64 HTTP Boot: serving grubhttpaa64.efi, GRUB built by grub-mkimage" in server.log()
    port = server.url.rsplit(":", 1)[1]
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.url}/loaders/grubhttpaa64.efi") as r:
            assert r.status == 200 and r.headers["Content-Type"] == "application/efi"
            image = await r.read()
        assert image[:2] == b"MZ"
        assert f'configfile "(http,127.0.0.1:{port})/grub.cfg?arch=arm64-efi&assets=http&mac='.encode() in image
        # the address is the one the connection came in on: a Host header builds nothing of its choosing
        for host in ("bad_host:8080", "evil.example:80", "a'b"):
            async with s.get(f"{server.url}/loaders/grubhttpaa64.efi", headers={"Host": host}) as r:
                assert r.status == 200 and await r.read() == image


async def test_arm64_http_boot_grub_is_not_built_for_an_https_server(serve, catalog_dir):
    """GRUB's http module speaks plain HTTP only: an https advertise_url cannot go into the image;
    a host in advertise_url that GRUB cannot be pointed at is refused with the reason."""
    server = serve("--state", "memory://", "--catalog", str(catalog_dir),
                   env={"BOOTSERVER_ARM64_LOADER": "grubaa64.efi", "BOOTSERVER_ADVERTISE_URL": "https://boot.example"})
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.url}/loaders/grubhttpaa64.efi") as r:
            assert r.status == 404 and "plain http://" in await r.text()
    odd = serve("--state", "memory://", "--catalog", str(catalog_dir),
                env={"BOOTSERVER_ARM64_LOADER": "grubaa64.efi", "BOOTSERVER_ADVERTISE_URL": "http://boot_server:8080"})
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{odd.url}/loaders/grubhttpaa64.efi") as r:
            assert r.status == 404 and "neither an IPv4 address nor a DNS name" in await r.text()


async def test_serve_says_why_arm64_http_boot_is_not_answered(serve, catalog_dir, tmp_path):
    server = serve("--state", "memory://", "--catalog", str(catalog_dir),
                   env={"BOOTSERVER_ARM64_LOADER": "grubaa64.efi",
                        "BOOTSERVER_GRUB_ARM64_MODULES": str(tmp_path / "no-modules")})
    assert f"arm64 HTTP Boot: not answered: {tmp_path / 'no-modules'} lacks kernel.img" in server.log()
    async with aiohttp.ClientSession() as s:
        status, _ = await get(s, f"{server.url}/loaders/grubhttpaa64.efi")
        assert status == 404
        status, body = await get(s, f"{server.url}/loaders/grubaa64.efi")  # PXE's loader still served
        assert status == 200 and body == Settings().grub_arm64_efi.read_bytes()
