"""The example flatcar-install profile end to end, minus the disk write: a real bootserver serves the
install config, the installer script it contains runs under bash with the real curl against that
server (only flatcar-install, udevadm and systemctl are stand-ins that record their arguments), fetches
the final config with ?stage=final, reports to the events URL, and reboots - or reports the failure."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import aiohttp
import pytest

from bootserver.render.butane import dataurl

from tests.conftest import REPO, write_catalog
from . import ignition_validate

MAC = "52:54:00:a1:9c:ae"
DISK = "/dev/disk/by-id/virtio-root; touch /tmp/pwned-$(id -u)"  # hostile: must reach flatcar-install as one word

PROFILES = """\
apiVersion: bootserver/v1
kind: Profile
metadata: {name: flatcar-install}
spec:
  boot: {kernel: flatcar/vmlinuz, initrd: [flatcar/initrd.cpio.gz], args: ["ignition.config.url={{ urls.ignition }}"]}
  ignition: {butane: templates/flatcar-install.bu}
  final_profile: flatcar-live
  after_install: local-disk
---
apiVersion: bootserver/v1
kind: Profile
metadata: {name: flatcar-live}
spec:
  boot: {kernel: flatcar/vmlinuz}
  ignition: {butane: templates/flatcar-live.bu}
"""

MACHINES = f"""\
apiVersion: bootserver/v1
kind: Machine
metadata: {{name: node1}}
spec:
  mac: {MAC}
  profile: flatcar-install
  metadata:
    hostname: node1
    install_disk: {json.dumps(DISK)}
    flatcar_channel: stable
    ssh_authorized_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOperatorKey operator@example"]
---
apiVersion: bootserver/v1
kind: Machine
metadata: {{name: live1}}
spec:
  mac: 52:54:00:00:00:02
  profile: flatcar-live
  metadata: {{hostname: live1}}
"""

STUB = """\
#!/bin/bash
printf '%s\\n' "$@" > "$STUB_DIR/$(basename "$0").args"
{body}
"""


@pytest.fixture
def server(serve, tmp_path):
    catalog = write_catalog(tmp_path / "catalog", {"profiles.yaml": PROFILES, "machines.yaml": MACHINES})
    shutil.copytree(REPO / "profiles" / "templates", catalog / "templates")
    return serve("--catalog", str(catalog), "--state", "memory://")


async def fetch(session, url, status=200):
    async with session.get(url) as response:
        assert response.status == status, await response.text()
        return json.loads(await response.text())


def installer_script(config: dict) -> str:
    entry = next(f for f in config["storage"]["files"] if f["path"] == "/opt/bootserver/install")
    assert entry["mode"] == 0o755
    data = dataurl.decode(entry["contents"]["source"])
    return (gzip.decompress(data) if entry["contents"].get("compression") == "gzip" else data).decode()


def run_installer(tmp_path: Path, script: str, flatcar_install_body: str) -> tuple[subprocess.CompletedProcess, Path]:
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, body in (("flatcar-install", flatcar_install_body), ("udevadm", ""), ("systemctl", "")):
        (stubs / name).write_text(STUB.format(body=body))
        (stubs / name).chmod(0o755)
    (tmp_path / "install").write_text(script)
    work = tmp_path / "work"
    env = {"PATH": f"{stubs}:{os.environ['PATH']}", "STUB_DIR": str(stubs), "BOOTSERVER_INSTALL_DIR": str(work)}
    proc = subprocess.run(["bash", str(tmp_path / "install")], env=env, capture_output=True, text=True, timeout=60)
    return proc, stubs


async def test_install_config_installs_final_profile_and_reports(server, tmp_path):
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.url}/ipxe?mac={MAC}&arch=x86_64-efi") as r:
            assert r.status == 200
        install = await fetch(s, f"{server.url}/ignition?mac={MAC}")
        final = await fetch(s, f"{server.url}/ignition?mac={MAC}&stage=final")
        live = await fetch(s, f"{server.url}/ignition?mac=52:54:00:00:00:02")
    for config in (install, final, live):
        ignition_validate.assert_valid(config)
    units = {u["name"]: u for u in install["systemd"]["units"]}
    assert units["bootserver-install.service"]["enabled"] is True
    assert "ExecStart=/opt/bootserver/install" in units["bootserver-install.service"]["contents"]
    # the final config is the live profile's template rendered for node1, not the installer
    assert "systemd" not in final
    assert dataurl.decode(final["storage"]["files"][0]["contents"]["source"]) == b"node1"
    assert final["passwd"]["users"][0]["sshAuthorizedKeys"] == [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOperatorKey operator@example"]

    proc, stubs = run_installer(tmp_path, installer_script(install), "echo writing image")
    assert proc.returncode == 0, proc.stderr
    args = (stubs / "flatcar-install.args").read_text().splitlines()
    assert args == ["-d", DISK, "-i", str(tmp_path / "work" / "final.ign"), "-V", "current", "-C", "stable",
                    "-b", f"{server.url}/assets/flatcar/amd64/stable"]  # the channel's folder of the local mirror
    assert json.loads((tmp_path / "work" / "final.ign").read_text()) == final
    assert (stubs / "systemctl.args").read_text().split() == ["reboot"]
    assert not list(Path("/tmp").glob("pwned-*"))
    server.wait_log(rf"node1 \({MAC}\) reports progress: installing Flatcar to ")
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.url}/metrics") as r:
            metrics = await r.text()
    # install, final (twice: the test and the installer fetched it) and live: three renders, one cache hit
    assert 'bootserver_ignition_renders_total{result="ok"} 3.0' in metrics
    assert 'bootserver_ignition_cache_total{result="hit"} 1.0' in metrics
    assert "bootserver_ignition_render_seconds_count 3.0" in metrics
    server.wait_log(rf"node1 \({MAC}\) reports installed: Flatcar installed to .*; state is now installed")


async def test_failed_install_reports_log_tail_and_does_not_reboot(server, tmp_path):
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.url}/ipxe?mac={MAC}&arch=x86_64-efi") as r:
            assert r.status == 200
        install = await fetch(s, f"{server.url}/ignition?mac={MAC}")
    body = 'echo "no space left on \\"device\\" \\\\ $1"; exit 3'
    proc, stubs = run_installer(tmp_path, installer_script(install), body)
    assert proc.returncode == 1
    assert "install failed: flatcar-install exited with status 3" in proc.stderr
    assert not (stubs / "systemctl.args").exists()
    server.wait_log(r'reports failed: flatcar-install exited with status 3; log tail: no space left on "device" '
                    r'\\ -d\\ninstall failed: flatcar-install exited with status 3; state is now failed')  # one line: the newline escaped


async def test_stage_final_needs_a_final_profile(server):
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.url}/ignition?mac=52:54:00:00:00:02&stage=final") as r:
            assert r.status == 404
            assert "has no final_profile" in (await r.json())["error"]
        async with s.get(f"{server.url}/ignition?mac={MAC}&stage=bogus") as r:
            assert r.status == 400


def test_final_profile_must_exist_and_have_ignition(tmp_path):
    from bootserver.catalog.loader import CatalogError, load_catalog

    bad = PROFILES.replace("final_profile: flatcar-live", "final_profile: flatcar-nothing")
    catalog = write_catalog(tmp_path / "c1", {"profiles.yaml": bad, "machines.yaml": MACHINES})
    shutil.copytree(REPO / "profiles" / "templates", catalog / "templates")
    with pytest.raises(CatalogError, match="profile 'flatcar-nothing' does not exist"):
        load_catalog(catalog)
    no_ignition = PROFILES + textwrap.dedent("""\
        ---
        apiVersion: bootserver/v1
        kind: Profile
        metadata: {name: bare}
        spec: {boot: {kernel: k}}
        """)
    no_ignition = no_ignition.replace("final_profile: flatcar-live", "final_profile: bare")
    catalog = write_catalog(tmp_path / "c2", {"profiles.yaml": no_ignition, "machines.yaml": MACHINES})
    shutil.copytree(REPO / "profiles" / "templates", catalog / "templates")
    with pytest.raises(CatalogError, match="final profile 'bare' has no ignition config"):
        load_catalog(catalog)
