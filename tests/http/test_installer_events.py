"""The installer's events endpoint: per-machine token, lifecycle transition, local-disk afterwards."""

import asyncio
import re

import aiohttp
import pytest


@pytest.fixture
def server(serve, catalog_dir):
    return serve("--catalog", str(catalog_dir), "--state", "memory://")


async def script(s, url):
    async with s.get(url) as r:
        assert r.status == 200
        return await r.text()


async def test_install_once_then_local_disk(server):
    mac = "52:54:00:00:00:01"
    async with aiohttp.ClientSession() as s:
        text = await script(s, f"{server.url}/ipxe?mac={mac}&arch=x86_64-efi")
        events_url = re.search(r"bootserver\.events=(\S+)", text).group(1)
        assert events_url.startswith(f"{server.url}/api/v1/machines/{mac}/events?token=")
        for bad in (events_url.split("?")[0] + "?token=wrong", events_url.split("?")[0]):
            async with s.post(bad, json={"event": "installed"}) as r:
                assert r.status == 403
        async with s.post(events_url, json={"event": "bogus"}) as r:
            assert r.status == 400
        async with s.post(events_url, data=b"not json") as r:
            assert r.status == 400
        async with s.post(events_url, json={"event": "installed", "detail": "flatcar-install ok"}) as r:
            assert r.status == 200 and (await r.json())["state"] == "installed"
        efi = await script(s, f"{server.url}/ipxe?mac={mac}&arch=x86_64&platform=efi")
        bios = await script(s, f"{server.url}/ipxe?mac={mac}&arch=i386&platform=pcbios")
        unknown = await script(s, f"{server.url}/ipxe?mac={mac}")
    grub = f"chain --autofree {server.url}/loaders/grubx64.efi || exit 1"
    assert efi.splitlines()[-1] == grub and "kernel" not in efi
    assert bios.splitlines()[-1] == "sanboot --no-describe --drive 0x80"
    assert unknown.splitlines()[-3:] == ["iseq ${platform} efi || sanboot --no-describe --drive 0x80",
                                         "set netX/next-server 127.0.0.1", grub]
    log = server.log()
    assert re.search(rf"refused installer event for {mac} .*: wrong token", log)
    assert re.search(rf"refused installer event for {mac} .*: missing token", log)
    assert re.search(rf"node1 \({mac}\) reports installed: flatcar-install ok; state is now installed", log)


async def test_a_report_sent_in_chunks_is_read_whole(server):
    """An installer (curl with a pipe, say) may send its JSON chunked, and the pieces arrive apart:
    the handler must read to the end of the body, not take the first piece for all of it."""
    mac = "52:54:00:00:00:01"
    body = b'{"event": "installed", "detail": "sent in three pieces"}'

    async def pieces():
        for part in (body[:10], body[10:30], body[30:]):
            yield part
            await asyncio.sleep(0.2)  # each piece reaches the server on its own

    async with aiohttp.ClientSession() as s:
        text = await script(s, f"{server.url}/ipxe?mac={mac}&arch=x86_64-efi")
        events_url = re.search(r"bootserver\.events=(\S+)", text).group(1)
        async with s.post(events_url, data=pieces(), headers={"Content-Type": "application/json"}) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["state"] == "installed"
