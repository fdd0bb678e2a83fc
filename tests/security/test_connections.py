"""Issue 19 item 4: ordinary idle connections must not cause an outage. At the common 1,024
open-file limit, 2,000 idle TCP connections leave /healthz and TFTP answering, the log quiet, and
bootserver raises its own soft limit to the hard one at start."""

from __future__ import annotations

import resource
import socket
import subprocess
import time
import urllib.request

import pytest

CONNECTIONS = 2000


@pytest.fixture
def tftp_files(tmp_path):
    root = tmp_path / "tftproot"
    root.mkdir()
    (root / "f64k").write_bytes(bytes(range(256)) * 256)
    return root


def _raise_own_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))  # root (CI) may raise the hard limit
        else:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _healthz(url: str, deadline: float) -> int | None:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=3) as r:
                return r.status
        except OSError:
            time.sleep(0.2)
    return None


def _tftp_get(port: int, out) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "10", "-o", str(out), f"tftp://127.0.0.1:{port}/f64k"],
                          capture_output=True, text=True, timeout=20)


def test_2000_idle_connections_at_1024_files_leave_healthz_and_tftp_answering(serve, catalog_dir, tftp_files,
                                                                               tmp_path):
    _raise_own_limit(CONNECTIONS + 512)
    server = serve("--catalog", str(catalog_dir), "--state", "memory://", "--tftp", "127.0.0.1:0",
                   "--tftp-root", str(tftp_files), nofile=(1024, 1024))
    tftp_port = int(server.wait_log(r"tftp: listening on 127\.0\.0\.1:(\d+)").group(1))
    idle: list[socket.socket] = []
    try:
        started = time.monotonic()
        for _ in range(CONNECTIONS):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", server.port))
            idle.append(sock)
            if len(idle) % 200 == 0:
                time.sleep(0.05)  # let the server accept; bounded: 2,000 sockets in ~1 s
        time.sleep(2)
        status = _healthz(server.url, time.monotonic() + 15)
        done = _tftp_get(tftp_port, tmp_path / "out")
        took = time.monotonic() - started
    finally:
        for sock in idle:
            sock.close()
    log = server.log()
    assert status == 200, log[-3000:]
    assert done.returncode == 0 and (tmp_path / "out").read_bytes() == (tftp_files / "f64k").read_bytes(), \
        done.stderr + log[-3000:]
    assert log.count("Traceback") == 0, log[-3000:]
    # running out of descriptors is said at most once a second, not once per attempt
    assert log.count("open files") <= took + 2, log[-3000:]


def test_soft_open_file_limit_is_raised_to_the_hard_limit(serve, catalog_dir):
    server = serve("--catalog", str(catalog_dir), "--state", "memory://", nofile=(256, 4096))
    limits = open(f"/proc/{server.proc.pid}/limits").read()
    row = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert row.split()[3:5] == ["4096", "4096"], row
