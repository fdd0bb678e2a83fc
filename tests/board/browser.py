"""A real bootserver in a network namespace, a client namespace that boots through it (DHCP, TFTP,
HTTP as a PXE machine would), and headless Chromium (Debian `chromium` + `chromium-driver`) driven
by Selenium inside the server's namespace, so the board is reached on that namespace's loopback.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bootserver.dhcp import packet as P
from tests.dhcp.dhcp_support import SERVER_IP, Link, capture_discover, inside, veth_link
from tests.support.processes import stop

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
HTTP_PORT = 8080
ADMIN_TOKEN = "board-test-admin-token"
CHROME_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
               "--window-size=1280,900")

PROFILES = """\
apiVersion: bootserver/v1
kind: Profile
metadata: {name: flatcar-install}
spec:
  boot:
    kernel: os/vmlinuz
    args: ["console=ttyS0", "ignition.config.url={{ urls.ignition }}", "bootserver.events={{ urls.events }}"]
  ignition: {config: install.ign}
  after_install: local-disk
"""
#: other machines of the rack, booted over HTTP only so the fleet shows every state
NEIGHBOURS = (("rack1-node2", "52:54:00:10:00:02"), ("rack1-node3", "52:54:00:10:00:03"),
              ("rack1-node4", "52:54:00:10:00:04"))
IGNITION = ('{"ignition": {"version": "3.3.0"}, "passwd": {"users": [{"name": "core", '
            '"passwordHash": "$6$rounds=4096$secret-salt$hash"}]}}')


def machine_doc(name: str, mac: str) -> str:
    return (f"apiVersion: bootserver/v1\nkind: Machine\nmetadata: {{name: {name}}}\n"
            f"spec: {{mac: \"{mac}\", profile: flatcar-install}}\n")


@dataclass
class Lab:
    link: Link
    catalog: Path
    proc: subprocess.Popen
    log: Path
    mac: str
    client_ip: str

    @property
    def server(self) -> str:
        return f"http://{SERVER_IP}:{HTTP_PORT}"

    def board(self, path: str = "/ui/") -> str:
        return f"http://127.0.0.1:{HTTP_PORT}{path}"  # the browser sits in the server's namespace

    def curl(self, *args: str) -> str:
        """curl from the client namespace (HTTP and TFTP, as the machine itself)."""
        done = subprocess.run(["ip", "netns", "exec", self.link.client_ns, "curl", "-sS", "--fail",
                               "--max-time", "10", *args], capture_output=True, text=True, timeout=20)
        assert done.returncode == 0, done.stderr + self.log.read_text()
        return done.stdout

    def dhcp(self, discover: P.Packet) -> P.Packet:
        """Broadcast the firmware's DISCOVER from the client's address; the proxy's OFFER."""
        with inside(self.link.client_ns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setsockopt(socket.SOL_SOCKET, 25, self.link.client_if.encode())  # SO_BINDTODEVICE
            sock.bind(("0.0.0.0", 68))  # the source is still the interface address; replies are broadcast
            sock.settimeout(1.0)
            for _attempt in range(5):
                sock.sendto(P.encode(discover), ("255.255.255.255", 67))
                try:
                    while True:
                        data, _src = sock.recvfrom(65535)
                        reply = P.decode(data)
                        if reply.xid == discover.xid and reply.message_type == P.OFFER:
                            return reply
                except socket.timeout:
                    continue
        finally:
            sock.close()
        raise AssertionError("no proxyDHCP OFFER:\n" + self.log.read_text())


@contextmanager
def board_lab(tmp_path: Path):
    discover = capture_discover("uefi-virtio", ipxe=False)  # OVMF asks for the loader
    catalog = tmp_path / "catalog"
    (catalog).mkdir()
    (catalog / "profiles.yaml").write_text(PROFILES)
    (catalog / "install.ign").write_text(IGNITION)
    (catalog / "machines.yaml").write_text("---\n".join(
        [machine_doc("rack1-node1", discover.mac), *(machine_doc(name, mac) for name, mac in NEIGHBOURS)]))
    assets = tmp_path / "assets" / "os"
    assets.mkdir(parents=True)
    (assets / "vmlinuz").write_bytes(os.urandom(64 * 1024))
    log = tmp_path / "serve.log"
    env = {**os.environ, "BOOTSERVER_ADMIN_TOKEN": ADMIN_TOKEN, "BOOTSERVER_UNKNOWN_MACHINES": "discover"}
    with veth_link() as link, open(log, "wb") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", link.server_ns, sys.executable, "-m", "bootserver", "serve",
                                 "--catalog", str(catalog), "--assets", str(tmp_path / "assets"),
                                 "--state", f"sqlite:///{tmp_path / 'state.db'}", "--dhcp", link.server_if,
                                 "--http", f"0.0.0.0:{HTTP_PORT}"], stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp_path, env=env)
        try:
            deadline = time.monotonic() + 30
            while "bootserver ready" not in log.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            yield Lab(link, catalog, proc, log, discover.mac, link.client_ips[0]), discover
        finally:
            stop(proc)


@contextmanager
def chromium(namespace: str):
    """Headless Chromium + chromedriver started from this thread while it is inside `namespace`."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("chromium and chromium-driver (Debian) are needed: scripts/bootstrap.sh install")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="board-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (*CHROME_ARGS, f"--user-data-dir={profile}"):
        options.add_argument(arg)
    with inside(namespace):
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            driver.set_page_load_timeout(30)
            yield driver
        finally:
            driver.quit()
            shutil.rmtree(profile, ignore_errors=True)
