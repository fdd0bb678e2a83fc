"""A verified mirror with two Flatcar releases and their update payloads (from the fake release
server, signed with a test key), a catalog with update policies, and a real bootserver serving them."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import aiohttp
import pytest

from bootserver.assets import commands
from bootserver.config import Settings

from tests.assets.fakeflatcar import UPDATE, SigningKey, publish, running_server
from tests.conftest import write_catalog

OLD, NEW = "4081.2.0", "4116.0.0"

PROFILES = """\
apiVersion: bootserver/v1
kind: Profile
metadata: {name: flatcar-install}
spec:
  boot: {kernel: flatcar/amd64/current/flatcar_production_pxe.vmlinuz}
  updates: {channel: stable}
---
apiVersion: bootserver/v1
kind: Group
metadata: {name: rack1}
spec:
  selector: {mac_prefix: "02:00:00"}
  profile: flatcar-install
  updates:
    channel: stable
    max_updating: %(max_updating)d
"""


@pytest.fixture(scope="session")
def mirror():
    """assets/ holding OLD and NEW (stable/current -> NEW), each with its update payload and oem-azure.gz."""
    home = Path(tempfile.mkdtemp(prefix="bsup-gpg-", dir="/tmp"))
    home.chmod(0o700)
    assets = Path(tempfile.mkdtemp(prefix="bsup-assets-", dir="/tmp"))
    key = SigningKey(home)
    try:
        with running_server() as fake:
            genuine = {}
            for version in (OLD, NEW):
                genuine[version] = publish(fake, key, version, size=64 * 1024,
                                           update_files=(UPDATE, "oem-azure.gz"))
                parser = argparse.ArgumentParser()
                commands.add_arguments(parser)
                args = parser.parse_args(["fetch", "flatcar", "--base-url", f"{fake.url}/amd64-usr",
                                          "--keyring", str(key.armored), "--oem", "azure"])
                assert commands.run(args, Settings(assets=assets)) == 0
        yield assets, genuine
    finally:
        key.close()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(assets, ignore_errors=True)


@pytest.fixture
def catalog(tmp_path):
    def make(max_updating: int = 5, text: str | None = None) -> Path:
        return write_catalog(tmp_path / "catalog", {"profiles.yaml": text or PROFILES % {"max_updating": max_updating}})
    return make


def session_from(addr: str) -> aiohttp.ClientSession:
    """A client session whose connections come from `addr` (a 127.0.0.0/8 address): one per node."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(addr, 0), limit=2))


async def boot(server_url: str, mac: str, addr: str) -> None:
    """The PXE boot bootserver sees first: it learns the machine's MAC at `addr`."""
    async with session_from(addr) as session:
        async with session.get(f"{server_url}/ipxe?mac={mac}&arch=x86_64-efi") as response:
            assert response.status == 200, await response.text()
