"""Reply templates: the bytes the proxy sends are those a full encode of the reply gives, for every
request of every firmware capture and every kind of answer."""

from __future__ import annotations

import random
import socket

import pytest

from bootserver.boot.methods import BOOT_METHODS, Answer
from bootserver.dhcp import packet as P
from bootserver.dhcp.reply import ReplyTemplates, build_reply
from tests.dhcp.dhcp_support import fixture_datagrams

LONG_URL = "http://10.77.0.3:8080/" + "x" * 140  # past the 128-byte file field: option 67
ANSWERS = [Answer(m.name, m.loader or "ipxe.efi", "PXEClient", m.arch.endswith("-bios")) for m in BOOT_METHODS] + [
    Answer("http-uefi-x64", "http://10.77.0.3:8080/loaders/ipxe.efi", "HTTPClient", False),
    Answer("ipxe-script", "http://10.77.0.3:8080/boot.ipxe", "PXEClient", True),
    Answer("ipxe-script", LONG_URL, "HTTPClient", False),
    Answer("pxe-uefi-x64-shim", "shimx64.efi", "PXEClient", False),
]


def requests():
    """Every BOOTREQUEST in the captures, as (bytes, packet)."""
    found = [(d.payload, P.decode(d.payload)) for _name, d in fixture_datagrams()]
    found = [(data, p) for data, p in found if p.op == P.BOOTREQUEST]
    assert len(found) == 28 and any(P.OPT_CLIENT_UUID in p.options for _, p in found) \
        and any(P.OPT_CLIENT_UUID not in p.options for _, p in found)
    return found


@pytest.mark.parametrize("server_ip", ["10.77.0.3", "192.168.254.1"])
def test_template_reply_is_byte_identical_to_a_full_encode(server_ip):
    templates = ReplyTemplates()
    compared = 0
    for data, request in requests():
        for answer in ANSWERS:
            for kind in (P.OFFER, P.ACK):
                expected = P.encode(build_reply(request, answer, kind, server_ip))
                assert templates.reply(request, data, answer, kind, server_ip) == expected, (answer, kind)
                compared += 1
    assert compared == 28 * len(ANSWERS) * 2
    assert len(templates) <= len(ANSWERS) * 2 * 2  # one per answer, kind and UUID presence


def test_fields_copied_from_the_request_follow_each_request():
    """Relayed, renewing, broadcast-flagged and non-Ethernet requests through one template each."""
    rng = random.Random(21)
    templates = ReplyTemplates()
    answer = ANSWERS[0]
    base = [data for data, _ in requests()]
    for _ in range(500):
        data = bytearray(rng.choice(base))
        data[1], data[2] = rng.choice([(1, 6), (6, 6), (32, 16), (1, 0)])  # htype, hlen
        data[3] = rng.randrange(0, 4)  # hops: never copied
        data[4:12] = rng.randbytes(8)  # xid, secs (never copied), flags
        for at in (12, 16, 20, 24):  # ciaddr, yiaddr (never copied), siaddr (ours), giaddr
            data[at:at + 4] = socket.inet_aton(rng.choice(["0.0.0.0", "10.1.2.3", "172.16.0.9"]))
        data[28:44] = rng.randbytes(16)
        request = P.decode(bytes(data))
        for kind in (P.OFFER, P.ACK):
            reply = templates.reply(request, bytes(data), answer, kind, "10.77.0.3")
            assert reply == P.encode(build_reply(request, answer, kind, "10.77.0.3"))
            back = P.decode(bytes(reply))
            assert (back.op, back.xid, back.flags, back.chaddr) == (P.BOOTREPLY, request.xid, request.flags,
                                                                    request.chaddr)
            assert (back.hops, back.secs, back.yiaddr, back.siaddr) == (0, 0, "0.0.0.0", "10.77.0.3")
            assert back.options.get(P.OPT_CLIENT_UUID) == request.options.get(P.OPT_CLIENT_UUID)


def test_templates_are_bounded():
    templates = ReplyTemplates(limit=8)
    data, request = requests()[0]
    for n in range(50):
        answer = Answer("ipxe-script", f"http://10.0.0.{n}:8080/boot.ipxe", "PXEClient", False)
        assert templates.reply(request, data, answer, P.OFFER, "10.0.0.1") == \
            P.encode(build_reply(request, answer, P.OFFER, "10.0.0.1"))
        assert len(templates) <= 8
