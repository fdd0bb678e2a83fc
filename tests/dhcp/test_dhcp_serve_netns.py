"""`bootserver serve --dhcp IFACE` as a real process in a namespace: the proxy and the HTTP it points to."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bootserver.dhcp import packet as P
from tests.dhcp.dhcp_support import PROFILE, SERVER_IP, Client, capture_discover, veth_link

pytestmark = [pytest.mark.netns]


@pytest.mark.asyncio(loop_scope="session")
async def test_serve_answers_and_its_http_serves_the_chain(tmp_path):
    discover = capture_discover("uefi-virtio-ipxerom", ipxe=True)
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "machines.yaml").write_text(PROFILE + "---\napiVersion: bootserver/v1\nkind: Machine\n"
                                           f"metadata: {{name: vm}}\nspec: {{mac: \"{discover.mac}\", "
                                           "profile: install}\n")
    log = tmp_path / "serve.log"
    with veth_link() as link, open(log, "wb") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", link.server_ns, sys.executable, "-m", "bootserver", "serve",
                                 "--catalog", str(catalog), "--state", "memory://", "--dhcp", link.server_if,
                                 "--tftp", "off", "--http", "0.0.0.0:8080"], stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp_path)
        try:
            deadline = time.monotonic() + 20
            while "bootserver ready" not in log.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            client = Client(link, ("0.0.0.0", 68))
            try:
                client.send(P.encode(discover), ("255.255.255.255", 67))
                got = await client.recv(3.0)
            finally:
                client.close()
            assert got is not None, log.read_text()
            reply = P.decode(got[0])
            assert reply.yiaddr == "0.0.0.0" and reply.siaddr == SERVER_IP
            assert reply.file == f"http://{SERVER_IP}:8080/boot.ipxe".encode()
            fetched = subprocess.run(["ip", "netns", "exec", link.client_ns, "curl", "-sf", "--max-time", "5",
                                      reply.file.decode()], capture_output=True, text=True)
            assert fetched.returncode == 0 and fetched.stdout.startswith("#!ipxe"), fetched.stderr
        finally:
            proc.terminate()
            assert proc.wait(10) == 0, log.read_text()
    assert f"proxyDHCP on {link.server_if} ({SERVER_IP}), ports 67, 4011" in log.read_text()


def test_serve_refuses_an_interface_it_cannot_use(tmp_path):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "profiles.yaml").write_text(PROFILE)
    with veth_link() as link:
        done = subprocess.run(["ip", "netns", "exec", link.server_ns, sys.executable, "-m", "bootserver", "serve",
                               "--catalog", str(catalog), "--state", "memory://", "--dhcp", "bsdhmissing0",
                               "--tftp", "off", "--http", "127.0.0.1:0"], capture_output=True, text=True,
                              timeout=30, cwd=tmp_path)
    assert done.returncode == 1
    assert "not starting: --dhcp bsdhmissing0: no such network interface (there are: lo, " in done.stdout + done.stderr
