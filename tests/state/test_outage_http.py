"""The HTTP endpoints while PostgreSQL is unreachable: every answer is defined, never a 500.

A profile that does not install keeps booting from the catalog (its script without the events
URL); an answer that needs the machine's token is a 503 with Retry-After; installer events are a
503 with Retry-After so the installer tries again. The outage is real: `bootserver serve` talks to
PostgreSQL through a relay the test cuts.
"""

from __future__ import annotations

import asyncio
import textwrap
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.state.pg_relay import Relay, via_port

pytestmark = pytest.mark.postgres

REPORTING = """\
apiVersion: bootserver/v1
kind: Profile
metadata: {name: reporting}
spec:
  boot:
    kernel: https://mirror.example/live/vmlinuz
    args: ["bootserver.events={{ urls.events }}"]
  ignition: {butane: reporting.bu}
---
apiVersion: bootserver/v1
kind: Machine
metadata: {name: reporter}
spec: {mac: "02:00:00:00:00:09", profile: reporting}
"""

BUTANE = """\
variant: flatcar
version: 1.0.0
storage:
  files:
    - path: /etc/bootserver-events
      contents: {inline: "{{ urls.events }}"}
"""


async def fetch(session: aiohttp.ClientSession, method: str, url: str, **kwargs) -> tuple[int, dict, str]:
    async with session.request(method, url, **kwargs) as response:
        return response.status, dict(response.headers), await response.text()


async def test_endpoints_answer_defined_statuses_while_the_store_is_unreachable(pg_url, catalog_dir, serve):
    (catalog_dir / "reporting.yaml").write_text(REPORTING)
    (catalog_dir / "reporting.bu").write_text(textwrap.dedent(BUTANE))
    relay = Relay(urlsplit(pg_url).hostname, urlsplit(pg_url).port)
    await relay.start()
    try:
        # started from a thread: its start-up wait must not hold this loop, which runs the relay
        server = await asyncio.to_thread(serve, "--catalog", str(catalog_dir), "--state", via_port(pg_url, relay.port))
        node1, lab, reporter = "52:54:00:00:00:01", "52:54:00:00:00:77", "02:00:00:00:00:09"
        base = server.url
        async with aiohttp.ClientSession() as s:
            status, _, script = await fetch(s, "GET", f"{base}/ipxe?mac={reporter}&arch=x86_64-efi")
            assert status == 200 and "bootserver.events=" in script  # the store is up: the events URL is in
            await relay.cut()

            status, _, script = await fetch(s, "GET", f"{base}/ipxe?mac={lab}&arch=x86_64-efi")
            assert status == 200 and "kernel https://mirror.example/live/vmlinuz" in script  # from the catalog
            status, _, script = await fetch(s, "GET", f"{base}/ipxe?mac={node1}&arch=x86_64-efi")
            # installs: never risk a reinstall; the UEFI local-disk answer (GRUB finds the disk's loader)
            assert status == 200 and "\nkernel " not in script and script.rstrip().endswith("grubx64.efi || exit 1")
            status, _, config = await fetch(s, "GET", f"{base}/ignition?mac={node1}")
            assert status == 200 and '"version":"3.3.0"' in config  # a ready config needs no token

            unseen = "02:00:00:00:00:19"  # a reporter this server has never read: its token is unknown
            (catalog_dir / "reporting.yaml").write_text(REPORTING.replace('"02:00:00:00:00:09"', f'"{unseen}"'))
            await asyncio.to_thread(server.wait_log, "catalog reloaded")
            for path in (f"/ipxe?mac={unseen}&arch=x86_64-efi", f"/ignition?mac={unseen}"):
                status, headers, _ = await fetch(s, "GET", base + path)
                assert (path, status, headers.get("Retry-After")) == (path, 503, "5")

            status, headers, _ = await fetch(s, "POST", f"{base}/api/v1/machines/{lab}/events?token=anything",
                                             json={"event": "installed"})
            assert (status, headers.get("Retry-After")) == (503, "5")
    finally:
        await relay.cut()
    log = server.log()
    assert "Error handling request" not in log  # aiohttp's line for an exception a handler let through
    assert [line for line in log.splitlines() if "bootserver.access" in line and " 500 " in line] == []
