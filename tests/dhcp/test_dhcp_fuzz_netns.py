"""Thousands of mutated firmware packets at a running proxy: it drops and counts them, and keeps answering."""

from __future__ import annotations

import asyncio
import dataclasses
import random

import pytest

from bootserver.config import Settings
from bootserver.dhcp import packet as P
from bootserver.dhcp.proxy import ProxyDHCP
from bootserver.metrics import REGISTRY
from tests.dhcp.dhcp_support import SERVER_IP, Client, fixture_datagrams, inside, make_runtime, veth_link

pytestmark = [pytest.mark.netns, pytest.mark.asyncio(loop_scope="session")]

COUNT = 4000


def mutations(seed: int, count: int):
    """Deterministic mutants of the captured client packets: flips, cuts, growth, bad lengths, garbage."""
    rng = random.Random(seed)
    originals = [d.payload for _, d in fixture_datagrams() if d.payload[0] == P.BOOTREQUEST]
    for _ in range(count):
        data = bytearray(rng.choice(originals))
        how = rng.randrange(6)
        if how == 0:
            for _ in range(rng.randint(1, 10)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif how == 1:
            del data[rng.randrange(len(data)):]
        elif how == 2:
            data += rng.randbytes(rng.choice((10, 300, 5000)))
        elif how == 3:  # corrupt one option's length byte
            i = P.MIN_PACKET
            while i < len(data) - 1 and rng.random() < 0.8 and data[i] not in (0, 255):
                i += 2 + data[i + 1]
            if i < len(data) - 1:
                data[i + 1] = rng.randrange(256)
        elif how == 4:
            data = bytearray(rng.randbytes(rng.randrange(0, 600)))
        else:  # valid framing, hostile content: long repeated options, odd overloads
            data[P.MIN_PACKET:] = bytes((52, 1, rng.randrange(256), 60, 255)) + rng.randbytes(255) + b"\xff"
        yield bytes(data)


def sample(name: str, reason: str) -> float:
    return REGISTRY.get_sample_value(name, {"reason": reason}) or 0.0


async def test_fuzzed_proxy_keeps_answering(reactor):
    originals = [P.decode(d.payload) for _, d in fixture_datagrams()]
    probe = next(p for p in originals if p.message_type == P.DISCOVER and p.client_arches == (7,)
                 and P.OPT_IPXE not in p.options)
    probe = dataclasses.replace(probe, chaddr=bytes.fromhex("525400779999") + bytes(10))
    known = {p.mac for p in originals} | {probe.mac}
    malformed_before = sum(sample("bootserver_dhcp_malformed_total", r)
                           for r in ("truncated", "oversized", "bad_cookie", "overrun", "bad_length", "bad_value"))
    errors_before = sample("bootserver_dhcp_unanswered_total", "error")
    with veth_link() as link:
        runtime = make_runtime(Settings(dhcp=(link.server_if,)), known)
        proxy = ProxyDHCP(runtime, runtime.settings, interfaces=(link.server_if,))
        with inside(link.server_ns):
            await proxy.start()
        client = Client(link, ("0.0.0.0", 68))
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            for i, data in enumerate(mutations(1234, COUNT)):
                port = 4011 if i % 5 == 0 else 67
                client.send(data, (SERVER_IP, port) if port == 4011 else ("255.255.255.255", 67))
                if i % 50 == 49:  # let the proxy keep up, so the kernel does not drop our datagrams
                    await asyncio.sleep(0.005)
                    await client.drain(0)
                assert loop.time() < deadline
            await client.drain(0.3)
            client.send(P.encode(probe), ("255.255.255.255", 67))
            got = await client.recv(2.0)
        finally:
            client.close()
            await proxy.stop()
    assert got is not None, "the proxy stopped answering after the fuzzing"
    reply = P.decode(got[0])
    assert reply.xid == probe.xid and reply.file == b"ipxe.efi" and reply.yiaddr == "0.0.0.0"
    malformed = sum(sample("bootserver_dhcp_malformed_total", r)
                    for r in ("truncated", "oversized", "bad_cookie", "overrun", "bad_length", "bad_value"))
    assert malformed - malformed_before > COUNT / 3
    assert sample("bootserver_dhcp_malformed_total", "oversized") > 0
    assert sample("bootserver_dhcp_unanswered_total", "error") == errors_before
