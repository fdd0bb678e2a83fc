"""The installed system is pointed at bootserver: with `updates` in its profile, the config the
installer writes to disk (stage=final) carries /etc/flatcar/update.conf with SERVER and GROUP; and
the installer hands exactly that config to flatcar-install. Without `updates`, nothing is written."""

from __future__ import annotations

import json
import shutil

import aiohttp
import pytest

from bootserver.render.butane import dataurl

from tests.conftest import REPO, write_catalog
from tests.render import ignition_validate
from tests.render.test_install_flow import MACHINES, PROFILES, fetch, installer_script, run_installer

MAC = "52:54:00:a1:9c:ae"
WITH_UPDATES = PROFILES.replace("  after_install: local-disk\n",
                                "  after_install: local-disk\n  updates: {channel: beta, group: rack-a}\n", 1)


@pytest.fixture
def server(serve, tmp_path):
    def start(profiles: str):
        catalog = write_catalog(tmp_path / "catalog", {"profiles.yaml": profiles, "machines.yaml": MACHINES})
        shutil.copytree(REPO / "profiles" / "templates", catalog / "templates", dirs_exist_ok=True)
        return serve("--catalog", str(catalog), "--state", "memory://")
    return start


def update_conf(config: dict) -> str | None:
    for entry in config.get("storage", {}).get("files", []):
        if entry["path"] == "/etc/flatcar/update.conf":
            assert entry["mode"] == 0o644 and entry["overwrite"] is True
            return dataurl.decode(entry["contents"]["source"]).decode()
    return None


async def test_installed_system_gets_update_conf_pointing_at_bootserver(server, tmp_path):
    running = server(WITH_UPDATES)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{running.url}/ipxe?mac={MAC}&arch=x86_64-efi") as r:
            assert r.status == 200
        install = await fetch(s, f"{running.url}/ignition?mac={MAC}")
        final = await fetch(s, f"{running.url}/ignition?mac={MAC}&stage=final")
        live = await fetch(s, f"{running.url}/ignition?mac=52:54:00:00:00:02")
    ignition_validate.assert_valid(final)
    assert update_conf(final) == f"GROUP=rack-a\nSERVER={running.url}/v1/update/\n"
    assert update_conf(live) is None  # flatcar-live has no updates block
    assert update_conf(install) is None  # the RAM-only installer itself never updates
    proc, _ = run_installer(tmp_path, installer_script(install), "echo writing image")
    assert proc.returncode == 0, proc.stderr
    written = (tmp_path / "work" / "final.ign").read_text()
    assert update_conf(json.loads(written)) == f"GROUP=rack-a\nSERVER={running.url}/v1/update/\n"


async def test_no_updates_block_no_update_conf(server):
    running = server(PROFILES)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{running.url}/ipxe?mac={MAC}&arch=x86_64-efi") as r:
            assert r.status == 200
        final = await fetch(s, f"{running.url}/ignition?mac={MAC}&stage=final")
    assert update_conf(final) is None


async def test_updates_off_writes_nothing(server):
    running = server(PROFILES.replace("  after_install: local-disk\n",
                                      "  after_install: local-disk\n  updates: {enabled: false}\n", 1))
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{running.url}/ipxe?mac={MAC}&arch=x86_64-efi") as r:
            assert r.status == 200
        final = await fetch(s, f"{running.url}/ignition?mac={MAC}&stage=final")
    assert update_conf(final) is None
