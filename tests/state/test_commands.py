"""`bootserver machines` on the configured store directly (the --server path runs in test_install_once)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bootserver.boot.updates import UpdateRecord
from bootserver.state import Event, connect_store

NODE1 = "52:54:00:00:00:01"
STRANGER = "00:1b:21:aa:bb:cc"


def machines(cwd: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "bootserver", "machines", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode == 0) == ok, done.stderr
    return done


@pytest.fixture
def state(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/state/bootserver.db"

    async def fill() -> None:
        store = await connect_store(url)
        await store.ensure(STRANGER, state="discovered", arch="x86_64-bios", vendor="Intel Corporate", uuid="u-9",
                           interface="eth1")
        await store.ensure(NODE1, state="ready", name="node1", profile="install", arch="x86_64-efi")
        await store.set_state(NODE1, "installed")
        for i, kind in enumerate(("dhcp.offer", "tftp.transfer", "http.ipxe", "installer.installed")):
            await store.record(Event(NODE1, kind, "10.0.0.5", {"i": i}))
        await store.update_put(UpdateRecord("f" * 32, mac=NODE1, version="4081.2.0", status="downloading",
                                            target="4116.0.0", last_check=1.0, updated=1.0))
        await store.close()

    asyncio.run(fill())
    return url


def test_list_table_and_json(tmp_path, state):
    table = machines(tmp_path, "list", "--state", state).stdout.splitlines()
    assert table[0].split() == ["MAC", "NAME", "PROFILE", "STATE", "ARCH", "OS", "UPDATE", "LAST", "SEEN", "(UTC)"]
    assert table[1].split()[:7] == [STRANGER, "-", "-", "discovered", "x86_64-bios", "-", "-"]
    assert table[2].split()[:9] == [NODE1, "node1", "install", "installed", "x86_64-efi", "4081.2.0", "downloading",
                                    "->", "4116.0.0"]
    data = json.loads(machines(tmp_path, "--state", state, "list", "--json", "--in", "installed").stdout)
    assert [m["mac"] for m in data["machines"]] == [NODE1] and "token" not in data["machines"][0]
    assert (data["machines"][0]["os_version"], data["machines"][0]["update"]) == ("4081.2.0", "downloading")


def test_discovered_show_timeline(tmp_path, state, catalog_dir):
    assert STRANGER in machines(tmp_path, "discovered", "--state", state).stdout
    assert "Intel Corporate" in machines(tmp_path, "discovered", "--state", state).stdout
    shown = json.loads(machines(tmp_path, "show", "52-54-00-00-00-01", "--json", "--state", state).stdout)
    assert (shown["mac"], shown["state"]) == (NODE1, "installed") and "next_boot" not in shown  # no catalog here
    text = machines(tmp_path, "show", NODE1, "--state", state, "--catalog", str(catalog_dir)).stdout
    assert "next boot      local-disk: installed; profile install boots installed machines from local disk" in text
    page = json.loads(machines(tmp_path, "timeline", NODE1, "--limit", "2", "--json", "--state", state).stdout)
    assert [e["kind"] for e in page["events"]] == ["http.ipxe", "installer.installed"]
    older = machines(tmp_path, "timeline", NODE1, "--before", str(page["before"]), "--state", state).stdout
    assert "dhcp.offer" in older and "tftp.transfer" in older and "http.ipxe" not in older


def test_reinstall_and_forget(tmp_path, state):
    out = machines(tmp_path, "reinstall", NODE1, "--state", state).stdout
    assert out.strip() == f"node1 ({NODE1}): installed -> ready; its next boot installs it again"
    refused = machines(tmp_path, "reinstall", STRANGER, "--state", state, ok=False)
    assert "only discovered" in refused.stderr
    assert "forgot" in machines(tmp_path, "forget", NODE1, "--state", state).stdout
    assert "no machine" in machines(tmp_path, "show", NODE1, "--state", state, ok=False).stderr
    assert "no machine" in machines(tmp_path, "forget", NODE1, "--state", state, ok=False).stderr


def test_adopt_prints_a_machine_document(tmp_path, state, catalog_dir):
    out = machines(tmp_path, "adopt", STRANGER, "--profile", "install", "--state", state,
                   "--catalog", str(catalog_dir)).stdout
    assert "# vendor: Intel Corporate" in out
    assert yaml.safe_load(out) == {"apiVersion": "bootserver/v1", "kind": "Machine",
                                   "metadata": {"name": "machine-001b21aabbcc"},
                                   "spec": {"mac": STRANGER, "profile": "install"}}
    wrong = machines(tmp_path, "adopt", STRANGER, "--profile", "nope", "--state", state,
                     "--catalog", str(catalog_dir), ok=False)
    assert "profile 'nope' is not in the catalog; it has: install, live" in wrong.stderr


def test_bad_input_is_a_clear_error(tmp_path, state):
    assert "'zz' is neither a MAC address nor the name" in machines(tmp_path, "show", "zz", "--state", state,
                                                                    ok=False).stderr
    assert "'mysql://x' is not a state URL" in machines(tmp_path, "list", "--state", "mysql://x", ok=False).stderr
    refused = machines(tmp_path, "list", "--server", "http://127.0.0.1:9", ok=False)
    assert "cannot reach http://127.0.0.1:9" in refused.stderr


def test_newer_schema_is_refused_by_the_command(tmp_path, state):
    import sqlite3

    db = sqlite3.connect(state[len("sqlite:///"):])
    db.execute("INSERT INTO schema_version VALUES (9, 0)")
    db.commit()
    db.close()
    refused = machines(tmp_path, "list", "--state", state, ok=False)
    assert "schema version 9" in refused.stderr and "newer bootserver" in refused.stderr
