"""GRUB over a real server on loopback: Debian's signed loaders under /loaders/, the per-machine
grub.cfg from the same decision as /ipxe, and every config accepted by GRUB's own parser
(grub-script-check from grub-common)."""

import re
import subprocess
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import MACHINES, PROFILE, write_catalog

MAC = "52:54:00:00:00:01"
SIGNED_GRUB = Path("/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed")
SIGNED_SHIM = Path("/usr/lib/shim/shimx64.efi.signed")


@pytest.fixture
def server(serve, catalog_dir):
    return serve("--catalog", str(catalog_dir), "--state", "memory://")


async def get(s, url):
    async with s.get(url) as r:
        return r.status, await r.read()


def grub_accepts(text: str) -> None:
    proc = subprocess.run(["grub-script-check"], input=text, capture_output=True, text=True)
    assert proc.returncode == 0, f"GRUB rejects the config: {proc.stdout}{proc.stderr}\n{text}"


async def test_signed_loaders_are_served_under_the_names_shim_looks_for(server):
    async with aiohttp.ClientSession() as s:
        assert await get(s, f"{server.url}/loaders/grubx64.efi") == (200, SIGNED_GRUB.read_bytes())
        assert await get(s, f"{server.url}/loaders/shimx64.efi") == (200, SIGNED_SHIM.read_bytes())
        # shim over UEFI HTTP Boot: its folder + "\grubx64.efi" (what the lab's Secure Boot machine asked)
        assert await get(s, f"{server.url}/loaders//grubx64.efi") == (200, SIGNED_GRUB.read_bytes())
        status, _ = await get(s, f"{server.url}/loaders/grubnetx64.efi.signed")
        assert status == 404


async def test_grub_cfg_installs_then_boots_the_local_disk(server):
    async with aiohttp.ClientSession() as s:
        status, body = await get(s, f"{server.url}/grub.cfg?mac={MAC}")
        install = body.decode()
        assert status == 200
        grub_accepts(install)
        linux = next(line for line in install.splitlines() if line.startswith("linux "))
        # Debian's signed GRUB has TFTP only: the assets come from bootserver's TFTP server
        assert linux.startswith("linux '(tftp,127.0.0.1)/assets/os/vmlinuz' 'console=ttyS0' 'hostname=node1' ")
        assert "initrd=" not in linux  # GRUB hands the initrd over itself
        assert "initrd '(tftp,127.0.0.1)/assets/os/initrd.img'" in install.splitlines()
        events = re.search(r"'bootserver\.events=(\S+?)'", install).group(1)
        async with s.post(events, json={"event": "installed"}) as r:
            assert r.status == 200
        status, body = await get(s, f"{server.url}/grub.cfg?mac={MAC}")
        disk = body.decode()
        grub_accepts(disk)
        assert "linux" not in disk and "search --no-floppy --file --set=root $loader" in disk
        assert "/EFI/BOOT/BOOTX64.EFI" in disk and disk.rstrip().endswith("exit 1")
        arm64 = disk[disk.index('if [ "$grub_cpu" = "arm64" ]'):disk.index("else")]  # GRUB knows its CPU
        assert "/EFI/BOOT/BOOTAA64.EFI" in arm64 and "X64" not in arm64
        status, body = await get(s, f"{server.url}/ipxe?mac={MAC}&arch=x86_64&platform=efi")
        ipxe = body.decode().splitlines()
        assert ipxe[-2:] == ["set netX/next-server 127.0.0.1",
                             f"chain --autofree {server.url}/loaders/grubx64.efi || exit 1"]
        status, body = await get(s, f"{server.url}/grub.cfg?mac=52:54:00:99:99:99")
        assert status == 200 and body.decode().startswith("echo 'bootserver: not booting this machine")
        grub_accepts(body.decode())


@pytest.mark.parametrize("hostname", ["a'b", "x;reboot", "$(id)", "a b", "n\\1", "{x}"])
async def test_values_that_could_inject_into_grub_are_refused(serve, tmp_path, hostname):
    machines = MACHINES.replace("{hostname: node1,", "{hostname: " + repr(hostname).replace("\\\\", "\\\\\\\\") + ",")
    catalog = write_catalog(tmp_path / "c", {"profiles.yaml": PROFILE, "machines.yaml": machines,
                                             "ignition.json": '{"ignition": {"version": "3.3.0"}}'})
    server = serve("--catalog", str(catalog), "--state", "memory://")
    async with aiohttp.ClientSession() as s:
        status, body = await get(s, f"{server.url}/grub.cfg?mac={MAC}")
    text = body.decode()
    assert status == 200 and "linux" not in text and "cannot render the boot config" in text
    grub_accepts(text)
    assert "cannot render GRUB config for profile install" in server.log()


async def test_grub_with_http_gets_assets_over_http_and_the_connection_closed(serve, catalog_dir, tmp_path):
    """The arm64 HTTP Boot GRUB asks with assets=http: kernel and initrd from this HTTP server as the
    machine reached it. Every answer closes its connection (GRUB reuses its first source port each run)."""
    (tmp_path / "assets" / "os").mkdir(parents=True)
    (tmp_path / "assets" / "os" / "vmlinuz").write_bytes(b"arm64-kernel")
    server = serve("--catalog", str(catalog_dir), "--state", "memory://")
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.url}/grub.cfg?mac={MAC}&arch=arm64-efi&assets=http") as r:
            assert r.status == 200 and r.headers["Connection"].lower() == "close"
            text = await r.text()
        grub_accepts(text)
        port = server.url.rsplit(":", 1)[1]
        assert f"linux '(http,127.0.0.1:{port})/assets/os/vmlinuz' 'console=ttyS0'" in text
        assert f"initrd '(http,127.0.0.1:{port})/assets/os/initrd.img'" in text.splitlines()
        assert await get(s, f"{server.url}/assets/os/vmlinuz") == (200, b"arm64-kernel")  # what GRUB asks for
        # a Host that is not an address or DNS name is not written into GRUB: no boot, and says why
        async with s.get(f"{server.url}/grub.cfg?mac={MAC}&assets=http", headers={"Host": "bad_host:80"}) as r:
            refused = await r.text()
        assert "linux" not in refused and "neither an IPv4 address nor a DNS name" in refused
        grub_accepts(refused)
