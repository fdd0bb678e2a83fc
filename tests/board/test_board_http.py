"""The board over real HTTP (a `bootserver serve` process on loopback): pages, read-only views,
the guarded actions, filters and pages of the fleet, and the bounded live stream."""

from __future__ import annotations

import asyncio
import html
import re

import aiohttp
import pytest

from tests.conftest import MACHINES, PROFILE, write_catalog

MAC = "52:54:00:00:00:01"
SECRET_HASH = "$6$rounds=4096$board-salt$secret-hash-value"


@pytest.fixture
def catalog(tmp_path):
    return write_catalog(tmp_path / "catalog", {
        "profiles.yaml": PROFILE, "machines.yaml": MACHINES,
        "ignition.json": '{"ignition": {"version": "3.3.0"}, "passwd": {"users": [{"name": "core", '
                         f'"passwordHash": "{SECRET_HASH}"}}]}}}}'})


async def text(s, url, status=200, **kw):
    async with s.get(url, **kw) as r:
        body = await r.text()
        assert r.status == status, body
        return body


async def form_token(s, url, mac=MAC):
    page = await text(s, f"{url}/ui/machines/{mac}")
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


async def test_looking_at_a_machine_changes_nothing_and_masks_secrets(serve, catalog, tmp_path):
    server = serve("--catalog", str(catalog), "--state", f"sqlite:///{tmp_path / 's.db'}")
    async with aiohttp.ClientSession() as s:
        script = await text(s, f"{server.url}/ipxe?mac={MAC}&arch=x86_64-efi")
        token = re.search(r"token=([\w-]+)", script).group(1)
        for _ in range(100):  # the /ipxe step is written after the answer: wait until it is there
            before = await text(s, f"{server.url}/api/v1/machines/{MAC}/events")
            if "http.ipxe" in before:
                break
            await asyncio.sleep(0.05)
        page = await text(s, f"{server.url}/ui/machines/{MAC}")
        for _ in range(3):
            await text(s, f"{server.url}/ui/machines/{MAC}/timeline")
        after = await text(s, f"{server.url}/api/v1/machines/{MAC}/events")
        async with s.get(f"{server.url}/api/v1/machines/{MAC}") as r:
            assert (await r.json())["state"] == "ready"  # GET /ignition would have made it `installing`
        assert before == after
        assert token not in page and SECRET_HASH.split("$")[3] not in page
        assert "token=MASKED" in page and "passwordHash" in page and "(masked)" in page
        assert "machines.yaml:1" in page and "profiles.yaml:1" in page
        assert "Content-Security-Policy" in (await s.get(f"{server.url}/ui/")).headers
        assert (await s.get(f"{server.url}/ui/machines/nonsense")).status == 400
        assert (await s.get(f"{server.url}/ui/machines/52:54:00:00:00:99")).status == 404
        assert (await s.get(f"{server.url}/ui/?state=bogus")).status == 400


async def test_actions_need_the_form_token_same_origin_and_the_admin_token(serve, catalog, tmp_path):
    server = serve("--catalog", str(catalog), "--state", f"sqlite:///{tmp_path / 's.db'}",
                   env={"BOOTSERVER_ADMIN_TOKEN": "sekrit-admin"})
    reinstall = f"{server.url}/ui/machines/{MAC}/reinstall"
    auth = {"Authorization": "Bearer sekrit-admin"}
    async with aiohttp.ClientSession() as s:
        await text(s, f"{server.url}/ipxe?mac={MAC}&arch=x86_64-efi")
        await text(s, f"{server.url}/ignition?mac={MAC}")  # installing
        csrf = await form_token(s, server.url)
        tries = [({"admin_token": "sekrit-admin"}, {}, 403),  # no form token: a forged cross-site form
                 ({"csrf": csrf, "admin_token": "sekrit-admin"}, {"Origin": "http://evil.example"}, 403),
                 ({"csrf": csrf}, {}, 401), ({"csrf": csrf, "admin_token": "wrong"}, {}, 401)]
        for form, headers, status in tries:
            async with s.post(reinstall, data=form, headers=headers, allow_redirects=False) as r:
                assert r.status == status, (form, headers, await r.text())
        state = (await (await s.get(f"{server.url}/api/v1/machines/{MAC}", headers=auth)).json())["state"]
        assert state == "installing"
        async with s.post(reinstall, data={"csrf": csrf, "admin_token": "sekrit-admin"},
                          headers={"Origin": server.url}, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == f"/ui/machines/{MAC}?done=reinstall"
        state = (await (await s.get(f"{server.url}/api/v1/machines/{MAC}", headers=auth)).json())["state"]
        assert state == "ready"
        async with s.post(f"{server.url}/ui/machines/{MAC}/forget", data={"csrf": csrf}, headers=auth,
                          allow_redirects=False) as r:
            assert r.status == 303
        assert (await s.get(f"{server.url}/api/v1/machines/{MAC}", headers=auth)).status == 404
    assert "board: refused POST" in server.log()


async def test_without_an_admin_token_actions_answer_loopback(serve, catalog, tmp_path):
    server = serve("--catalog", str(catalog), "--state", f"sqlite:///{tmp_path / 's.db'}")
    async with aiohttp.ClientSession() as s:
        await text(s, f"{server.url}/ipxe?mac={MAC}&arch=x86_64-efi")
        csrf = await form_token(s, server.url)
        async with s.post(f"{server.url}/ui/machines/{MAC}/reinstall", data={"csrf": csrf},
                          allow_redirects=False) as r:
            assert r.status == 303


async def test_fleet_filters_searches_and_pages(serve, catalog, tmp_path):
    server = serve("--catalog", str(catalog), "--state", f"sqlite:///{tmp_path / 's.db'}",
                   env={"BOOTSERVER_UNKNOWN_MACHINES": "discover", "BOOTSERVER_HTTP_REQUESTS_PER_CLIENT": "0",
                        "BOOTSERVER_NEW_MACHINES_PER_SECOND": "1000"})
    async with aiohttp.ClientSession() as s:
        for n in range(230):
            await text(s, f"{server.url}/ipxe?mac=02:00:00:00:{n // 256:02x}:{n % 256:02x}")
        await text(s, f"{server.url}/ipxe?mac={MAC}&arch=x86_64-efi")
        page = await text(s, f"{server.url}/ui/?state=discovered")
        assert '<span id="total">230</span> machines match; page 1 of 3' in page and page.count('<tr id="m-') == 100
        assert '<b id="count-discovered">230</b>' in page and '<b id="count-ready">1</b>' in page
        last = await text(s, f"{server.url}/ui/?state=discovered&page=3")
        assert last.count('<tr id="m-') == 30
        found = await text(s, f"{server.url}/ui/?q=node1")
        assert found.count('<tr id="m-') == 1 and f'id="m-{MAC}"' in found
        discovered = html.unescape(await text(s, f"{server.url}/ui/discovered"))
        assert "230" in discovered and 'mac: "02:00:00:00:00:05"' in discovered


async def test_the_live_stream_sends_rows_and_is_bounded(serve, catalog, tmp_path):
    server = serve("--catalog", str(catalog), "--state", f"sqlite:///{tmp_path / 's.db'}")
    async with aiohttp.ClientSession() as s:
        streams = [await s.get(f"{server.url}/ui/events") for _ in range(32)]
        try:
            assert all(r.status == 200 for r in streams)
            assert streams[0].headers["Content-Type"] == "text/event-stream"
            async with s.get(f"{server.url}/ui/events") as extra:
                assert extra.status == 503
            await text(s, f"{server.url}/ipxe?mac={MAC}&arch=x86_64-efi")
            seen = b""
            async with asyncio.timeout(10):
                while b"event: counts" not in seen:
                    seen += await streams[0].content.readany()
            assert b"event: row" in seen and MAC.encode() in seen and b'"ready":1' in seen
        finally:
            for r in streams:
                r.close()
        for _ in range(50):  # closed streams give their slots back
            async with s.get(f"{server.url}/ui/events") as again:
                if again.status == 200:
                    break
            await asyncio.sleep(0.1)
        assert again.status == 200
