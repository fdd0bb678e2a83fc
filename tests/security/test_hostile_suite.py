"""Issue 19's hostile-input suite: `bootserver serve` as a real process in a namespace takes
100,000 mutated DHCP packets and 20,000 hostile TFTP datagrams from the LAN side, with no crash, no
traceback, bounded memory, and keeps answering DHCP and TFTP. Bounded: about half a minute."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import subprocess
import sys
import time

import pytest

from bootserver.dhcp import packet as P
from tests.dhcp.dhcp_support import PROFILE, SERVER_IP, Client, capture_discover, inside, veth_link
from tests.dhcp.test_dhcp_fuzz_netns import mutations

pytestmark = [pytest.mark.netns]

DHCP_PACKETS = 100_000
TFTP_DATAGRAMS = 20_000


def rss_kb(pid: int) -> int:
    return int(next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")).split()[1])


def tftp_mutations(seed: int, count: int):
    """RRQs with odd names, modes and options; writes; stray ACKs, DATA and ERRORs; garbage."""
    rng = random.Random(seed)
    names = [b"f64k", b"boot.ipxe", b"../etc/passwd", b"/etc/shadow", b"a" * 600, b"x\\y", b"nope", b"f64k\0extra"]
    for _ in range(count):
        how = rng.randrange(6)
        if how == 0:
            options = b"".join(rng.choice([b"blksize", b"tsize", b"timeout", b"windowsize", rng.randbytes(5)]) + b"\0"
                               + str(rng.choice([0, 1, 7, 512, 1468, 65464, 99999999, -1])).encode() + b"\0"
                               for _ in range(rng.randrange(0, 6)))
            yield struct.pack("!H", 1) + rng.choice(names) + b"\0" + rng.choice([b"octet", b"netascii", b"mail", b""]) \
                + b"\0" + options
        elif how == 1:
            yield struct.pack("!H", 2) + b"upload\0octet\0"
        elif how == 2:
            yield struct.pack("!HH", rng.choice([3, 4, 5, 6]), rng.randrange(65536)) + rng.randbytes(rng.randrange(0, 40))
        elif how == 3:
            yield struct.pack("!H", 1) + rng.randbytes(rng.randrange(0, 700))
        elif how == 4:
            yield rng.randbytes(rng.randrange(0, 1500))
        else:
            yield struct.pack("!H", 1) + b"f64k\0octet\0blksize\0" + rng.randbytes(8)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_hostile_lan_does_not_take_the_server_down(tmp_path):
    probe = capture_discover("uefi-virtio-ipxerom", ipxe=True)
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "c.yaml").write_text(PROFILE + "---\napiVersion: bootserver/v1\nkind: Group\nmetadata: {name: all}\n"
                                    "spec: {selector: {}, profile: install}\n")
    root = tmp_path / "tftproot"
    root.mkdir()
    (root / "f64k").write_bytes(bytes(range(256)) * 256)
    log = tmp_path / "serve.log"
    with veth_link() as link, open(log, "wb") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", link.server_ns, sys.executable, "-m", "bootserver", "serve",
                                 "--catalog", str(catalog), "--state", "memory://", "--dhcp", link.server_if,
                                 "--tftp", "0.0.0.0:69", "--tftp-root", str(root), "--http", "0.0.0.0:8080"],
                                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 20
            while "bootserver ready" not in log.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            rss_start = rss_kb(proc.pid)
            started = time.monotonic()
            client = Client(link, ("0.0.0.0", 68))
            try:
                for i, data in enumerate(mutations(19, DHCP_PACKETS)):
                    client.send(data, (SERVER_IP, 4011) if i % 5 == 0 else ("255.255.255.255", 67))
                    if i % 200 == 199:  # pace, so the kernel queues do not simply drop most of them
                        await asyncio.sleep(0.002)
                        await client.drain(0)
                    assert time.monotonic() - started < 120
                dhcp_seconds = time.monotonic() - started
                with inside(link.client_ns):
                    tftp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                tftp.bind((link.client_ips[1], 0))
                tftp.setblocking(False)
                for i, data in enumerate(tftp_mutations(19, TFTP_DATAGRAMS)):
                    try:
                        tftp.sendto(data, (SERVER_IP, 69))
                    except OSError:
                        pass
                    if i % 100 == 99:
                        await asyncio.sleep(0.002)
                        while True:  # read (and ignore) what the server answered
                            try:
                                tftp.recv(2048)
                            except BlockingIOError:
                                break
                tftp.close()
                await client.drain(0.5)
                client.send(P.encode(probe), ("255.255.255.255", 67))
                got = await client.recv(3.0)
            finally:
                client.close()
            fetched = subprocess.run(["ip", "netns", "exec", link.client_ns, "curl", "-s", "--max-time", "20", "-o",
                                      str(tmp_path / "out"), f"tftp://{SERVER_IP}/f64k"], capture_output=True,
                                     text=True, timeout=30)
            rss_end = rss_kb(proc.pid)
            took = time.monotonic() - started
            assert proc.poll() is None, log.read_text()[-3000:]
        finally:
            proc.terminate()
            code = proc.wait(10)
    text = log.read_text()
    print(f"\nhostile suite: {DHCP_PACKETS} DHCP packets in {dhcp_seconds:.1f} s, {TFTP_DATAGRAMS} TFTP datagrams, "
          f"{took:.1f} s in all; RSS {rss_start // 1024} -> {rss_end // 1024} MB")
    assert code == 0, text[-3000:]
    assert got is not None and P.decode(got[0]).xid == probe.xid, "no answer to a valid DISCOVER afterwards"
    assert fetched.returncode == 0 and (tmp_path / "out").read_bytes() == (root / "f64k").read_bytes(), fetched.stderr
    assert "Traceback" not in text, text[-3000:]
    assert rss_end < 300_000 and rss_end - rss_start < 80_000, (rss_start, rss_end)
    assert len(text) < 2_000_000  # the log stays bounded too
