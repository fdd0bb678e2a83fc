"""A burst of DISCOVERs from new machines: every one answered, recorded and on its timeline once.

The answer path keeps no per-machine objects for the collector and encodes replies from templates;
this holds it to the protocol end to end, over a veth pair, with edk2's captured DISCOVER as the load.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
from pathlib import Path

import pytest

from bootserver.catalog.loader import load_catalog
from bootserver.config import Settings
from bootserver.dhcp import packet as P
from bootserver.dhcp.proxy import ProxyDHCP
from bootserver.runtime import Runtime
from bootserver.state.memory import MemoryStore
from tests.dhcp.dhcp_support import SERVER_IP, fixture_datagrams, inside, veth_link

pytestmark = [pytest.mark.netns, pytest.mark.asyncio(loop_scope="session")]

BURST, CHUNK = 2000, 250
CATALOG = """\
apiVersion: bootserver/v1
kind: Profile
metadata: {name: install}
spec: {boot: {kernel: "http://10.77.0.3:8080/vmlinuz"}}
---
apiVersion: bootserver/v1
kind: Group
metadata: {name: rack}
spec: {selector: {mac_prefix: "02:00"}, profile: install}
"""


def edk2_discover() -> bytes:
    for name, d in fixture_datagrams():
        p = P.decode(d.payload)
        if name == "uefi-virtio" and p.message_type == P.DISCOVER and P.OPT_CLIENT_UUID in p.options:
            return d.payload
    raise AssertionError("no edk2 DISCOVER in the captures")


def client_socket(link) -> socket.socket:
    with inside(link.client_ns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE: room for a whole chunk of replies
        sock.setsockopt(socket.SOL_SOCKET, 25, link.client_if.encode())
        sock.bind(("0.0.0.0", 68))
    sock.setblocking(False)
    return sock


async def replies(sock: socket.socket, wanted: int, timeout: float) -> list[bytes]:
    loop = asyncio.get_running_loop()
    got, deadline = [], loop.time() + timeout
    while len(got) < wanted and loop.time() < deadline:
        try:
            got.append(sock.recv(2048))
        except BlockingIOError:
            await asyncio.sleep(0.005)
    return got


async def test_a_burst_of_new_machines_is_answered_recorded_and_on_each_timeline_once(reactor):
    with tempfile.TemporaryDirectory(prefix="bsdh-catalog-") as root:
        Path(root, "catalog.yaml").write_text(CATALOG)
        catalog = load_catalog(root)
    with veth_link() as link:
        settings = Settings(dhcp=(link.server_if,), new_machines_per_second=100_000)
        runtime = Runtime(settings, catalog, MemoryStore(retention=10))
        proxy = ProxyDHCP(runtime, settings, interfaces=(link.server_if,), ports=(67,))
        with inside(link.server_ns):
            await proxy.start()
        sock = client_socket(link)
        template = bytearray(edk2_discover())
        uuid = P.decode(bytes(template)).options[P.OPT_CLIENT_UUID]
        answered: dict[int, P.Packet] = {}
        try:
            for first in range(0, BURST, CHUNK):
                for i in range(first, first + CHUNK):
                    template[4:8] = (0x5A000000 + i).to_bytes(4, "big")
                    template[28:34] = b"\x02\x00" + i.to_bytes(4, "big")
                    sock.sendto(template, ("255.255.255.255", 67))
                for data in await replies(sock, CHUNK, timeout=10.0):
                    reply = P.decode(data)
                    answered[reply.xid - 0x5A000000] = reply
        finally:
            sock.close()
            await proxy.stop()

    assert sorted(answered) == list(range(BURST))  # every DISCOVER answered, each once
    for i, reply in answered.items():
        mac = b"\x02\x00" + i.to_bytes(4, "big")
        assert (reply.op, reply.message_type, reply.chaddr[:6]) == (P.BOOTREPLY, P.OFFER, mac)
        assert (reply.yiaddr, reply.siaddr, reply.file) == ("0.0.0.0", SERVER_IP, b"ipxe.efi")
        assert reply.options[P.OPT_CLIENT_UUID] == uuid
    machines = await runtime.store.machines()
    assert len(machines) == BURST and {m.state for m in machines} == {"ready"}
    for machine in machines[:: BURST // 50]:
        offers = [e for e in await runtime.store.events(machine.mac) if e.kind == "dhcp.offer"]
        assert len(offers) == 1
        assert offers[0].detail == {"arch": "x86_64-efi", "firmware": "uefi", "stage": "pxe",
                                    "interface": link.server_if, "port": 67, "file": "ipxe.efi",
                                    "method": "pxe-uefi-x64"}
