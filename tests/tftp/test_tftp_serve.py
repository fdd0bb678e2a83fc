"""The TFTP component inside `bootserver serve`: started by the app, metrics on /metrics."""

from __future__ import annotations

import re
import subprocess
import urllib.request

from tests.tftp.tftp_helpers import sha256


def test_serve_starts_tftp_and_exports_metrics(serve, catalog_dir, files, tmp_path):
    server = serve("--catalog", str(catalog_dir), "--state", "memory://", "--tftp", "127.0.0.1:0",
                   "--tftp-root", str(files))
    port = int(server.wait_log(r"tftp: listening on 127\.0\.0\.1:(\d+)").group(1))
    out = tmp_path / "out"
    done = subprocess.run(["curl", "-sS", "--tftp-blksize", "1468", "-o", str(out), f"tftp://127.0.0.1:{port}/f1m"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sha256(out) == sha256(files / "f1m")
    server.wait_log(r"tftp: complete f1m to 127\.0\.0\.1:\d+: 1048576 of 1048576 bytes, blksize 1468")
    metrics = urllib.request.urlopen(f"{server.url}/metrics", timeout=10).read().decode()
    assert re.search(r'^bootserver_tftp_transfers_total\{outcome="complete"\} 1\.0$', metrics, re.M), metrics
    assert re.search(r"^bootserver_tftp_bytes_sent_total 1\.048576e\+06$", metrics, re.M)
    assert re.search(r"^bootserver_tftp_sessions_open 0\.0$", metrics, re.M)


def test_boot_ipxe_over_tftp_is_the_http_chain_script(serve, catalog_dir, files, tmp_path):
    server = serve("--catalog", str(catalog_dir), "--state", "memory://", "--tftp", "127.0.0.1:0")
    port = int(server.wait_log(r"tftp: listening on 127\.0\.0\.1:(\d+)").group(1))
    out = tmp_path / "boot.ipxe"
    done = subprocess.run(["curl", "-sS", "-o", str(out), f"tftp://127.0.0.1:{port}/boot.ipxe"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    over_http = urllib.request.urlopen(f"{server.url}/boot.ipxe", timeout=10).read().decode()
    assert out.read_text() == over_http and f"chain --autofree {server.url}/ipxe?mac=" in over_http
