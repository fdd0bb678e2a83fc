"""Answers kept per catalog follow the catalog and the machine's state: a reload or a finished
install changes what /ipxe says at once, and two machines never share an answer."""

from __future__ import annotations

import asyncio

from bootserver.boot.request import BootRequest, Stage
from bootserver.catalog.loader import load_catalog
from bootserver.config import Settings
from bootserver.runtime import Runtime
from bootserver.state.memory import MemoryStore

CATALOG = """\
apiVersion: bootserver/v1
kind: Profile
metadata: {{name: install}}
spec:
  boot: {{kernel: 'http://example.test/{kernel}', args: [console=ttyS0, 'bootserver.events={{{{ urls.events }}}}']}}
  after_install: local-disk
---
apiVersion: bootserver/v1
kind: Group
metadata: {{name: all}}
spec: {{selector: {{mac_prefix: '52:54:00'}}, profile: install}}
"""


def catalog(tmp_path, kernel: str):
    root = tmp_path / kernel
    root.mkdir()
    (root / "catalog.yaml").write_text(CATALOG.format(kernel=kernel))
    return load_catalog(root)


def script(runtime: Runtime, mac: str) -> str:
    async def ask() -> str:
        request = BootRequest(mac=mac, arch="x86_64-efi", stage=Stage.IPXE, client_ip="10.0.0.5")
        decision = await runtime.decide(request)
        return runtime.ipxe_script(decision, request, "http://10.0.0.1:8080", "10.0.0.1")
    return asyncio.run(ask())


def test_a_reload_and_a_finished_install_change_the_kept_answer(tmp_path):
    runtime = Runtime(Settings(), catalog(tmp_path, "vmlinuz-1"), MemoryStore(10))
    first = script(runtime, "52:54:00:00:00:01")
    assert "vmlinuz-1" in first and script(runtime, "52:54:00:00:00:01") == first
    other = script(runtime, "52:54:00:00:00:02")
    assert other != first and "52:54:00:00:00:02" in other  # its own token and URLs

    runtime.catalog_loaded(catalog(tmp_path, "vmlinuz-2"))
    assert "vmlinuz-2" in script(runtime, "52:54:00:00:00:01")

    asyncio.run(runtime.observe("52:54:00:00:00:01", "installer.installed", {"detail": "done"}))
    after = script(runtime, "52:54:00:00:00:01")
    assert "local disk" in after and "vmlinuz" not in after
