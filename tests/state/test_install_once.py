"""The install-once story against real `bootserver serve` processes, on SQLite and PostgreSQL.

An unknown MAC is discovered and adopted, gets its install script, the installer posts
`installed` with its token, the next /ipxe boots from disk (also after a restart), and
`machines reinstall` brings the install back. With PostgreSQL, two servers share the state.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

TOKEN = "story-admin-token"
STRANGER = "00:1b:21:aa:bb:cc"  # an Intel NIC no catalog entry matches
INSTALL_PROFILE = """\
apiVersion: bootserver/v1
kind: Profile
metadata: {name: install}
spec:
  boot:
    kernel: os/vmlinuz
    initrd: [os/initrd.img]
    args: ["console=ttyS0", "bootserver.events={{ urls.events }}", "ignition.config.url={{ urls.ignition }}"]
  ignition: {config: ignition.json}
  after_install: local-disk
"""


@pytest.fixture
def story_catalog(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    root.mkdir()
    (root / "profiles.yaml").write_text(INSTALL_PROFILE)
    (root / "ignition.json").write_text('{"ignition": {"version": "3.3.0"}}')
    return root


def http(method: str, url: str, body: dict | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def ipxe(server, mac: str = STRANGER) -> str:
    status, text = http("GET", f"{server.url}/ipxe?mac={mac}&arch=x86_64&platform=efi")
    assert status == 200, text
    return text


def machines(tmp_path: Path, *args: str) -> str:
    """`bootserver machines ...` as a user runs it; returns stdout, fails the test on a non-zero exit."""
    done = subprocess.run([sys.executable, "-m", "bootserver", "machines", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "BOOTSERVER_ADMIN_TOKEN": TOKEN})
    assert done.returncode == 0, done.stderr
    return done.stdout


def token_from(script: str) -> str:
    found = re.search(r"bootserver\.events=\S+?\?token=(\S+)", script)
    assert found, script
    return urllib.parse.unquote(found.group(1))


def state_of(tmp_path: Path, url: str, mac: str = STRANGER) -> str:
    return json.loads(machines(tmp_path, "show", mac, "--json", "--state", url))["state"]


def start(serve, catalog: Path, url: str):
    return serve("--catalog", str(catalog), "--state", url,
                 env={"BOOTSERVER_UNKNOWN_MACHINES": "discover", "BOOTSERVER_ADMIN_TOKEN": TOKEN})


async def test_install_once_story(serve, story_catalog, sql_url, tmp_path):
    server = start(serve, story_catalog, sql_url)

    # 1. an unknown MAC is discovered ...
    assert "not booting this machine" in ipxe(server)
    found = json.loads(machines(tmp_path, "discovered", "--json", "--server", server.url))["machines"]
    assert [(m["mac"], m["vendor"], m["arch"], m["state"]) for m in found] == [
        (STRANGER, "Intel Corporate", "x86_64-efi", "discovered")]
    # ... and adopted: the printed Machine document goes into the catalog, which reloads
    document = machines(tmp_path, "adopt", STRANGER, "--profile", "install", "--name", "node9",
                        "--catalog", str(story_catalog), "--state", sql_url)
    assert yaml.safe_load(document) == {"apiVersion": "bootserver/v1", "kind": "Machine",
                                        "metadata": {"name": "node9"},
                                        "spec": {"mac": STRANGER, "profile": "install"}}
    (story_catalog / "node9.yaml").write_text(document)
    server.wait_log(r"catalog reloaded .*1 machines")

    # 2. the machine gets its install script (and the install starts with its config)
    script = ipxe(server)
    assert "kernel " in script and "os/vmlinuz" in script
    assert state_of(tmp_path, sql_url) == "ready"
    assert http("GET", f"{server.url}/ignition?mac={STRANGER}")[0] == 200
    assert state_of(tmp_path, sql_url) == "installing"

    # 3. the installer posts `installed` with its token (a wrong one is refused)
    events_url = f"{server.url}/api/v1/machines/{STRANGER}/events"
    assert http("POST", f"{events_url}?token=wrong", {"event": "installed"})[0] == 403
    status, body = http("POST", f"{events_url}?token={urllib.parse.quote(token_from(script))}",
                        {"event": "installed"})
    assert status == 200 and json.loads(body)["state"] == "installed"

    # 4. the next /ipxe boots from disk
    assert "booting from local disk" in ipxe(server)

    # 5. ... also after a restart
    server.stop()
    server = start(serve, story_catalog, sql_url)
    assert "booting from local disk" in ipxe(server)

    # 6. reinstall brings the install back
    assert "installed -> ready" in machines(tmp_path, "reinstall", STRANGER, "--server", server.url)
    assert "os/vmlinuz" in ipxe(server)
    timeline = machines(tmp_path, "timeline", STRANGER, "--state", sql_url)
    kinds = [line.split()[3] for line in timeline.splitlines()[1:]]
    assert kinds == ["discovered", "http.ipxe", "http.ipxe", "http.ignition", "installer.installed", "http.ipxe",
                     "http.ipxe", "reinstall", "http.ipxe"], timeline


@pytest.mark.postgres
async def test_two_servers_share_one_postgresql(serve, story_catalog, pg_url, tmp_path):
    (story_catalog / "node9.yaml").write_text(
        f"apiVersion: bootserver/v1\nkind: Machine\nmetadata: {{name: node9}}\n"
        f"spec: {{mac: '{STRANGER}', profile: install}}\n")
    one = start(serve, story_catalog, pg_url)
    two = start(serve, story_catalog, pg_url)
    token = token_from(ipxe(one))
    assert token_from(ipxe(two)) == token  # one machine, one token, whichever replica answers
    status, _ = http("POST", f"{one.url}/api/v1/machines/{STRANGER}/events?token={urllib.parse.quote(token)}",
                     {"event": "installed"})
    assert status == 200
    assert "booting from local disk" in ipxe(two)
    machines(tmp_path, "reinstall", STRANGER, "--server", two.url)
    assert "os/vmlinuz" in ipxe(one)


async def test_server_refuses_a_newer_database(story_catalog, tmp_path):
    import sqlite3

    from bootserver.state import connect_store

    url = f"sqlite:///{tmp_path}/state/bootserver.db"
    store = await connect_store(url)
    await store.close()
    db = sqlite3.connect(tmp_path / "state" / "bootserver.db")
    db.execute("INSERT INTO schema_version VALUES (5, 0)")
    db.commit()
    db.close()
    done = subprocess.run([sys.executable, "-m", "bootserver", "serve", "--http", "127.0.0.1:0", "--catalog",
                           str(story_catalog), "--state", url], cwd=tmp_path, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 1
    assert "not starting: state database" in done.stderr and "schema version 5" in done.stderr
