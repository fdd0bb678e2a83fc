"""Issue 19: a LAN attacker's DHCP packets. Spoofing a victim's MAC must not silence the victim;
option 97 (RFC 4578: type 0 and a 16-byte UUID, 17 bytes) is never echoed at another length."""

from __future__ import annotations

import dataclasses

import pytest

from bootserver.dhcp import packet as P
from bootserver.dhcp.ratelimit import MacRateLimiter
from tests.dhcp.dhcp_support import Client, make_runtime, veth_link
from tests.dhcp.test_dhcp_proxy_netns import first_discover, running, settings

pytestmark = [pytest.mark.netns, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture(scope="module")
def link():
    with veth_link() as created:
        yield created


async def test_spoofed_discovers_with_a_victims_mac_do_not_drain_its_answers(reactor, link):
    victim = first_discover("uefi-virtio", ipxe=False)
    runtime = make_runtime(settings(link), known={victim.mac})
    async with running(link, runtime, limiter=MacRateLimiter(rate=0.01, burst=5)):
        attacker = Client(link, ("0.0.0.0", 68))
        try:
            for n in range(60):  # the victim's MAC, the attacker's own transactions
                spoofed = dataclasses.replace(victim, xid=(victim.xid + 1 + n) & 0xFFFFFFFF)
                attacker.send(P.encode(spoofed), ("255.255.255.255", 67))
            await attacker.drain(0.3)
            attacker.send(P.encode(victim), ("255.255.255.255", 67))  # the victim's own DISCOVER
            replies = [P.decode(data) for data, _src, _dst in await attacker.drain(0.5)]
        finally:
            attacker.close()
    assert [r.xid for r in replies] == [victim.xid]


@pytest.mark.parametrize("value", [b"\x01" + bytes(200), b"\x00" + bytes(16) + b"\xff" * 230, b"\x00",
                                   b"\x07" + bytes(16)])
async def test_option_97_is_never_echoed_at_another_length(reactor, link, value):
    request = first_discover("uefi-virtio", ipxe=False)
    hostile = dataclasses.replace(request, options={**request.options, P.OPT_CLIENT_UUID: value})
    runtime = make_runtime(settings(link), known={request.mac})
    async with running(link, runtime):
        client = Client(link, ("0.0.0.0", 68))
        try:
            client.send(P.encode(hostile), ("255.255.255.255", 67))
            got = await client.recv(0.5)
            client.send(P.encode(request), ("255.255.255.255", 67))  # still answers a well-formed one
            good = await client.recv(1.0)
        finally:
            client.close()
    if got is not None:
        echoed = P.decode(got[0]).options.get(P.OPT_CLIENT_UUID)
        assert echoed is None or (len(echoed) == 17 and echoed[0] == 0)
        assert len(got[0]) < 600
    assert good is not None and P.decode(good[0]).options.get(P.OPT_CLIENT_UUID) == \
        request.options[P.OPT_CLIENT_UUID]
