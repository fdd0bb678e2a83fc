"""Replicas behind keepalived (floating_address): the proxy names the floating address as the
server (siaddr, option 54, sname), and its PXE 4011 ACK leaves from the floating address the
client sent to, not from the replica's own address (the firmware talks to one server)."""

from __future__ import annotations

import contextlib
import os

import pytest

from bench.storm_protocols import dhcp_packet
from bootserver.config import Settings
from bootserver.dhcp import ProxyDHCP
from bootserver.dhcp import packet as P
from tests.dhcp.dhcp_support import SERVER_IP, Client, inside, make_runtime, veth_link

pytestmark = [pytest.mark.netns, pytest.mark.asyncio(loop_scope="session")]

FLOATING = "10.77.0.10"
MAC = bytes.fromhex("5254000a0b0c")
UUID = bytes(range(16))


@pytest.fixture(scope="module")
def link():
    with veth_link(server_ips=(SERVER_IP, FLOATING)) as created:  # the replica holds the address now
        yield created


@contextlib.asynccontextmanager
async def running(link, settings):
    proxy = ProxyDHCP(make_runtime(settings, {MAC.hex(":")}), settings, interfaces=(link.server_if,))
    with inside(link.server_ns):
        await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


async def test_offer_and_4011_ack_name_and_come_from_the_floating_address(reactor, link):
    settings = Settings(dhcp=(link.server_if,), floating_address=FLOATING)
    client_ip = link.client_ips[0]
    async with running(link, settings):
        discover = Client(link, ("0.0.0.0", 68))
        try:
            discover.send(dhcp_packet(1, 0x1234, MAC, uuid=UUID), ("255.255.255.255", 67))
            data, source, _ = await discover.recv(2.0)
        finally:
            discover.close()
        offer = P.decode(data)
        assert source == (SERVER_IP, 67)  # a broadcast answer: the interface's own address sends it
        assert (offer.siaddr, offer.server_id, offer.sname) == (FLOATING, FLOATING, FLOATING.encode())
        request = Client(link, (client_ip, 4011), device=False)
        try:
            request.send(dhcp_packet(3, 0x5678, MAC, ciaddr=client_ip, uuid=UUID), (offer.server_id, 4011))
            data, source, _ = await request.recv(2.0)
        finally:
            request.close()
        ack = P.decode(data)
        assert ack.message_type == P.ACK and ack.file == b"ipxe.efi" and ack.server_id == FLOATING
        assert source == (FLOATING, 4011)
