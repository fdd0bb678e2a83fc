"""Byte-exact transfers through a network namespace that drops 5% of UDP packets.

This kernel has no netem (CONFIG_NET_SCH_NETEM is not set), so the loss comes from an nftables
rule `numgen random mod 100 < 5 drop` on the namespace's input hook: every DATA, OACK and ACK
has the same 5% chance of being lost, which is what `tc netem loss 5%` on both ends would do.
(On the output hook a drop would be reported to the sender as EPERM, unlike a real loss.)
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid

import pytest
from tftp_helpers import run, sha256

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]

LOSS_RULES = """
table inet bstf_loss {
  chain out {
    type filter hook input priority 0; policy accept;
    meta l4proto udp numgen random mod 100 < 5 counter drop
  }
}
"""


@pytest.fixture
def lossy_netns():
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    name = f"bstf-loss-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", name, "nft", "-f", "-"], input=LOSS_RULES.encode(), check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def dropped(netns: str) -> int:
    rules = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "table", "inet", "bstf_loss"],
                           capture_output=True, text=True, check=True).stdout
    return int(re.search(r"counter packets (\d+)", rules).group(1))


@pytest.fixture
async def lossy_server(lossy_netns, files):
    """The TFTP component alone (python -m bootserver.tftp) on port 69 inside the namespace."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", lossy_netns, sys.executable, "-m", "bootserver.tftp", "--listen",
        "127.0.0.1:69", "--root", str(files), "--timeout", "0.2", "--retries", "8",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert line.startswith(b"listening"), line
        yield lossy_netns
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


async def test_byte_exact_through_5_percent_loss(lossy_server, files, tmp_path):
    netns = lossy_server
    expected = sha256(files / "f1m")
    out = tmp_path / "curl"
    rc, log = await run("ip", "netns", "exec", netns, "curl", "-sS", "--max-time", "50", "--tftp-blksize", "1468",
                        "-o", str(out), "tftp://127.0.0.1/f1m", timeout=60)
    assert rc == 0, log
    assert sha256(out) == expected
    out = tmp_path / "atftp"
    # timeout 1: atftp re-sends its ACK after 1 s of silence (default 5 s) -- see session.MAX_BACKOFF.
    rc, log = await run("ip", "netns", "exec", netns, "atftp", "--option", "windowsize 16", "--option",
                        "blksize 1468", "--option", "timeout 1", "-g", "-r", "f1m", "-l", str(out), "127.0.0.1", "69", timeout=60)
    assert rc == 0, log
    assert sha256(out) == expected
    assert dropped(netns) > 20  # the loss was real: 1 MB is ~800 packets each way
