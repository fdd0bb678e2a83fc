"""Byte-exact transfers through a network namespace that drops 5% of UDP packets.

This kernel has no netem (CONFIG_NET_SCH_NETEM is not set), so the loss comes from an nftables
rule `numgen random mod 100 < 5 drop` on the namespace's input hook, the same random loss as
`tc netem loss 5%`. (On the output hook a drop would be reported to the sender as EPERM, unlike a
real loss.)
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid

import pytest

from tests.tftp.tftp_helpers import run, sha256

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]


def set_loss(netns: str, match: str) -> None:
    """Drop 5% of the packets `match` selects, as they arrive."""
    rules = f"""
        table inet bstf_loss {{
          chain lossy {{
            type filter hook input priority 0; policy accept;
            {match} numgen random mod 100 < 5 counter drop
          }}
        }}"""
    subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=rules.encode(), check=True)


def dropped(netns: str) -> int:
    rules = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "table", "inet", "bstf_loss"],
                           capture_output=True, text=True, check=True).stdout
    return int(re.search(r"counter packets (\d+)", rules).group(1))


@pytest.fixture
async def netns_server(files):
    """The TFTP component alone (python -m bootserver.tftp) on port 69 in a fresh namespace."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    netns = f"bstf-loss-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    proc = None
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", netns, sys.executable, "-m", "bootserver.tftp", "--listen", "127.0.0.1:69",
            "--root", str(files), "--timeout", "0.2", "--retries", "8",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert line.startswith(b"listening"), line
        yield netns
    finally:
        if proc is not None and proc.returncode is None:
            proc.terminate()
            await proc.wait()
        subprocess.run(["ip", "netns", "del", netns], check=False)


async def test_curl_through_5_percent_loss_both_ways(netns_server, files, tmp_path):
    set_loss(netns_server, "meta l4proto udp")
    out = tmp_path / "curl"
    rc, log = await run("ip", "netns", "exec", netns_server, "curl", "-sS", "--max-time", "50",
                        "--tftp-blksize", "1468", "-o", str(out), "tftp://127.0.0.1/f1m", timeout=60)
    assert rc == 0, log
    assert sha256(out) == sha256(files / "f1m")
    assert dropped(netns_server) > 20  # the loss was real: 1 MB is ~700 DATA and ~700 ACKs


async def test_atftp_windowsize_16_through_5_percent_data_loss(netns_server, files, tmp_path):
    """Loss of DATA only: atftp gives up when an OACK is resent after its ACK was lost ("unexpected
    OACK"), with any server; DATA losses still exercise window retransmission. If atftp's one ACK
    after a repeated window is lost, only its own fixed 5 s timer resends it: the server's backoff
    (0.2 s doubling to 6.4 s) leaves it that silence."""
    set_loss(netns_server, "udp length > 100")
    out = tmp_path / "atftp"
    rc, log = await run("ip", "netns", "exec", netns_server, "atftp", "--option", "windowsize 16", "--option",
                        "blksize 1468", "-g", "-r", "f1m", "-l", str(out), "127.0.0.1", "69", timeout=60)
    assert rc == 0, log
    assert sha256(out) == sha256(files / "f1m")
    assert dropped(netns_server) > 10
