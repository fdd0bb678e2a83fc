"""The default block-size cap follows the MTU of the interface a request arrives on."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid

import pytest

from tests.tftp.tftp_helpers import run, sha256

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]


@pytest.fixture
async def two_namespaces(files):
    """Server and client namespaces joined by a veth pair (10.234.7.1 <-> .2); the TFTP component
    listens on 0.0.0.0:69 in the server namespace. Yields a function setting the link's MTU and the
    client namespace."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    tag = uuid.uuid4().hex[:6]
    server_ns, client_ns, veth_s, veth_c = f"bstf-s-{tag}", f"bstf-c-{tag}", f"bstfs{tag}", f"bstfc{tag}"
    proc = None
    try:
        for ns in (server_ns, client_ns):
            subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "link", "add", veth_s, "netns", server_ns, "type", "veth", "peer", "name", veth_c,
                        "netns", client_ns], check=True)
        for ns, dev, addr in ((server_ns, veth_s, "10.234.7.1/24"), (client_ns, veth_c, "10.234.7.2/24")):
            subprocess.run(["ip", "-n", ns, "addr", "add", addr, "dev", dev], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", server_ns, sys.executable, "-m", "bootserver.tftp", "--listen", "0.0.0.0:69",
            "--root", str(files), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        assert (await asyncio.wait_for(proc.stdout.readline(), 10)).startswith(b"listening")
        def set_mtu(mtu: int) -> None:
            for ns, dev in ((server_ns, veth_s), (client_ns, veth_c)):
                subprocess.run(["ip", "-n", ns, "link", "set", dev, "mtu", str(mtu)], check=True)

        yield set_mtu, client_ns
    finally:
        if proc is not None and proc.returncode is None:
            proc.terminate()
            await proc.wait()
        for ns in (server_ns, client_ns):
            subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.mark.parametrize("mtu, expected", [(1500, 1468), (9000, 8968), (1280, 1248)])
async def test_blksize_capped_by_interface_mtu(two_namespaces, files, tmp_path, mtu, expected):
    set_mtu, client_ns = two_namespaces
    set_mtu(mtu)
    out = tmp_path / "out"
    rc, log = await run("ip", "netns", "exec", client_ns, "curl", "-v", "--tftp-blksize", "65464", "-o", str(out),
                        "tftp://10.234.7.1/f1m")
    assert rc == 0, log
    assert re.search(r"got option=\(blksize\) value=\((\d+)\)", log).group(1) == str(expected), log
    assert sha256(out) == sha256(files / "f1m")
