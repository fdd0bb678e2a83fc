"""Issue 19: an optional HTTPS listener for people (admin API, board). With it configured, the admin
token is never accepted over plain HTTP from a non-loopback address; firmware endpoints keep HTTP.

The server runs in a network namespace the test creates, on a veth address inside it, so that its
clients come from a non-loopback address without any traffic leaving the namespace."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trustme

from tests.conftest import REPO
from tests.support.processes import stop

TOKEN = "admin-" + "s3cret"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=30)


@pytest.fixture
def netns():
    name = "bs19" + secrets.token_hex(3)
    address = f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(250)}.1"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        sh("ip", "-n", name, "addr", "add", f"{address}/24", "dev", "v0")
        sh("ip", "-n", name, "link", "set", "v0", "up")
        sh("ip", "-n", name, "link", "set", "v1", "up")
        yield name, address
    finally:
        sh("ip", "netns", "del", name, check=False)


def curl(ns: str, *args: str) -> int:
    done = sh("ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
              *args, check=False)
    return int(done.stdout or 0)


def start(ns: str, tmp_path: Path, catalog_dir: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    log_path = tmp_path / "server.log"
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "bootserver", "serve",
                             "--catalog", str(catalog_dir), "--state", "memory://", "--http", "0.0.0.0:8080",
                             *extra], cwd=tmp_path, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, "BOOTSERVER_ADMIN_TOKEN": TOKEN, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 20
    while "bootserver ready" not in log_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(log_path.read_text(errors="replace"))
        time.sleep(0.1)
    return proc, log_path


def test_admin_token_only_over_https_from_afar(netns, tmp_path, catalog_dir):
    ns, address = netns
    ca = trustme.CA()
    cert = ca.issue_cert(address, "127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    proc, log_path = start(ns, tmp_path, catalog_dir, "--https", "0.0.0.0:8443", "--tls-cert",
                           str(tmp_path / "server.pem"), "--tls-key", str(tmp_path / "server.pem"))
    try:
        auth = ["-H", f"Authorization: Bearer {TOKEN}"]
        assert curl(ns, *auth, f"http://{address}:8080/api/v1/machines") == 403  # plain HTTP from afar
        assert curl(ns, *auth, "--cacert", str(tmp_path / "ca.pem"),
                    f"https://{address}:8443/api/v1/machines") == 200
        assert curl(ns, *auth, "http://127.0.0.1:8080/api/v1/machines") == 200  # loopback may use HTTP
        assert curl(ns, f"http://{address}:8080/boot.ipxe") == 200  # firmware keeps plain HTTP
        assert curl(ns, "--cacert", str(tmp_path / "ca.pem"), f"https://{address}:8443/api/v1/machines") == 401
        # the board's actions follow the same rule; a machine to act on must exist first
        assert curl(ns, f"http://{address}:8080/ipxe?mac=52:54:00:00:00:01&arch=x86_64-efi") == 200
        page = sh("ip", "netns", "exec", ns, "curl", "-s", "--max-time", "10", "--cacert", str(tmp_path / "ca.pem"),
                  f"https://{address}:8443/ui/machines/52:54:00:00:00:01").stdout
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        form = ["-X", "POST", "--data", f"csrf={csrf}&admin_token={TOKEN}"]
        reinstall = "/ui/machines/52:54:00:00:00:01/reinstall"
        assert curl(ns, *form, f"http://{address}:8080{reinstall}") == 403  # plain HTTP from afar
        assert curl(ns, *form, "--cacert", str(tmp_path / "ca.pem"), f"https://{address}:8443{reinstall}") == 303
    finally:
        stop(proc)
    log = log_path.read_text(errors="replace")
    assert re.search(r"HTTPS listening on 0\.0\.0\.0:8443", log)
    assert re.search(rf"refused GET /api/v1/machines from {re.escape(address)}: plain HTTP while HTTPS", log)
    assert TOKEN not in log


def test_https_needs_a_certificate_and_key(tmp_path, catalog_dir):
    done = subprocess.run([sys.executable, "-m", "bootserver", "serve", "--catalog", str(catalog_dir), "--state",
                           "memory://", "--http", "127.0.0.1:0", "--https", "127.0.0.1:0"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "tls_cert and tls_key" in done.stderr + done.stdout
