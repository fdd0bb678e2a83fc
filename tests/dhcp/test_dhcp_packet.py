"""The codec against real firmware captures, hand-built edge cases and generated packets."""

from __future__ import annotations

import random
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootserver.dhcp import packet as P
from tests.dhcp.dhcp_support import FIXTURES, fixture_datagrams


def test_every_fixture_packet_parses():
    assert len(FIXTURES) == 5
    seen = 0
    for name, d in fixture_datagrams():
        p = P.decode(d.payload)
        assert p.mac and p.mac.startswith("52:54:00:77:00:"), name
        assert p.message_type in (P.DISCOVER, P.OFFER, P.REQUEST, P.ACK)
        # re-encoding what we decoded gives the same packet back
        assert P.decode(P.encode(p)) == p
        seen += 1
    assert seen == 64


def _first(name, predicate):
    for fname, d in fixture_datagrams():
        if fname == name and predicate(d, P.decode(d.payload)):
            return P.decode(d.payload)
    raise AssertionError(f"no such packet in {name}")


def test_edk2_discover_options():
    p = _first("uefi-virtio", lambda d, p: p.message_type == P.DISCOVER and d.dport == 67)
    assert p.vendor_class == "PXEClient:Arch:00007:UNDI:003000"
    assert p.client_arches == (7,)
    assert p.client_ndi == (1, 3, 0)
    assert p.client_uuid == "00000000-0000-4000-8000-525400770011"
    assert p.user_classes == ()
    assert P.OPT_IPXE not in p.options
    assert struct.unpack("!H", p.options[57])[0] == 1472
    assert p.xid == 0xEA871571 and p.ciaddr == "0.0.0.0" and p.giaddr == "0.0.0.0"


def test_edk2_4011_request():
    p = _first("uefi-virtio", lambda d, p: d.dport == 4011 and p.op == P.BOOTREQUEST)
    assert p.message_type == P.REQUEST and p.xid == 0xFFD2C28D
    assert struct.unpack("!H", p.options[57])[0] == 1472


def test_ipxe_rom_options():
    p = _first("bios-virtio", lambda d, p: p.message_type == P.DISCOVER and P.OPT_IPXE in p.options)
    assert p.user_classes == (b"iPXE",)  # raw, not RFC 3004 length-prefixed
    assert p.client_arches == (0,) and p.client_ndi == (1, 2, 1)
    ipxe = p.ipxe_options
    assert ipxe[177] == bytes((1,)) + struct.pack("!HH", 0x1AF4, 0x1000)  # bus-id PCI virtio-net
    assert ipxe[235][:3] == bytes((1, 0, 0))  # version 1.0.0
    assert ipxe[19] == b"\x01"  # HTTP


def test_dnsmasq_bios_offer_pxe_suboptions():
    p = _first("bios-virtio", lambda d, p: p.message_type == P.OFFER and d.src == "10.77.0.3")
    assert p.pxe_options == {P.PXE_DISCOVERY_CONTROL: b"\x08", P.PXE_MENU_PROMPT: b"\x00PXE"}
    assert p.file == b"http://10.77.0.3:8080/boot.ipxe" and p.yiaddr == "0.0.0.0" and p.siaddr == "10.77.0.3"


def test_rfc3004_user_class():
    p = P.Packet(options={P.OPT_USER_CLASS: b"\x04iPXE\x03abc"})
    assert p.user_classes == (b"iPXE", b"abc")


# -- malformed input -------------------------------------------------------------------------------

def _minimal(options: bytes = b"\x35\x01\x01\xff") -> bytes:
    return P.encode(P.Packet(), min_size=0)[:P.MIN_PACKET] + options


@pytest.mark.parametrize("data, error", [
    (b"", P.Truncated),
    (_minimal()[:239], P.Truncated),
    (_minimal(b"\x35\x01\x01"), P.Truncated),  # no end option
    (_minimal()[:236] + b"\x63\x82\x53\x64" + b"\xff", P.BadMagicCookie),
    (_minimal(b"\x35\x05\x01\xff"), P.OptionOverrun),
    (_minimal(b"\x35"), P.OptionOverrun),  # code without a length byte
    (_minimal(b"\x35\x02\x01\x01\xff"), P.BadOptionLength),  # message type is one byte
    (_minimal(b"\x36\x03\x0a\x00\x00\xff"), P.BadOptionLength),  # server id is four
    (_minimal(b"\x5d\x03\x00\x07\x00\xff"), P.BadOptionLength),  # arch list of 2-byte items
    (_minimal(b"\x5e\x02\x01\x03\xff"), P.BadOptionLength),  # client NDI is three
    (_minimal(b"\x61\x05\x00\x01\x02\x03\x04\xff"), P.BadOptionLength),  # UUID type 0 is 17
    (_minimal(b"\x35\x01\x00\xff"), P.BadOptionValue),  # message type 0
    (_minimal(b"\x34\x01\x04\xff"), P.BadOptionValue),  # overload 4
    (_minimal() + bytes(P.MAX_PACKET), P.Oversized),
])
def test_malformed_raises_one_typed_error(data, error):
    with pytest.raises(error) as caught:
        P.decode(data)
    assert isinstance(caught.value, P.MalformedPacket)
    assert caught.value.reason == error.reason


def test_bad_suboptions_are_malformed():
    p = P.Packet(options={P.OPT_VENDOR: b"\x06\x05\x08"})
    with pytest.raises(P.OptionOverrun):
        p.pxe_options


# -- overload and long options ---------------------------------------------------------------------

def test_overload_and_rfc3396_concatenation_order():
    """A long option split over the options field, then file, then sname is joined in that order."""
    data = bytearray(P.encode(P.Packet(), min_size=0)[:P.MIN_PACKET])
    data[108:108 + 8] = b"\x0c\x03def" + b"\x3c\x01Z"  # file: hostname part 2, vendor class part 2
    data[44:44 + 6] = b"\x0c\x03ghi\xff"  # sname: hostname part 3
    data += b"\x35\x01\x01\x34\x01\x03\x0c\x03abc\x3c\x01Y\xff"
    p = P.decode(bytes(data))
    assert p.options[12] == b"abcdefghi"
    assert p.options[60] == b"YZ"
    assert P.OPT_OVERLOAD not in p.options
    assert p.file == b"" and p.sname == b""
    assert P.decode(P.encode(p)) == p


def test_long_option_is_split_and_rejoined():
    value = bytes(range(256)) * 3  # 768 bytes: four instances on the wire
    wire = P.encode(P.Packet(options={P.OPT_MESSAGE_TYPE: b"\x02", 43: value}))
    assert wire.count(bytes((43, 255))) == 3
    assert P.decode(wire).options[43] == value


def test_encode_refuses_what_does_not_fit():
    with pytest.raises(ValueError):
        P.encode(P.Packet(file=b"x" * 129))
    with pytest.raises(ValueError):
        P.encode(P.Packet(options={255: b""}))


# -- properties ------------------------------------------------------------------------------------

_addr = st.builds(lambda b: socket.inet_ntoa(b), st.binary(min_size=4, max_size=4))
_name = st.binary(max_size=64).map(lambda b: b.rstrip(b"\0"))


def _option_value(code):
    if code in P._EXACT_LENGTH:
        n = P._EXACT_LENGTH[code]
        return st.binary(min_size=n, max_size=n)
    if code in P._LIST_LENGTH:
        size, count = P._LIST_LENGTH[code]
        return st.integers(count, 40).flatmap(lambda k: st.binary(min_size=k * size, max_size=k * size))
    return st.binary(max_size=600)


_codes = st.integers(1, 254).filter(lambda c: c not in (P.OPT_OVERLOAD, P.OPT_MESSAGE_TYPE, P.OPT_CLIENT_UUID))
_options = st.lists(_codes, unique=True, max_size=12).flatmap(
    lambda codes: st.tuples(*[_option_value(c) for c in codes]).map(lambda values: dict(zip(codes, values))))


@st.composite
def packets(draw):
    options = {P.OPT_MESSAGE_TYPE: bytes((draw(st.integers(1, 18)),))}
    options.update(draw(_options))
    return P.Packet(op=draw(st.integers(1, 2)), htype=draw(st.integers(0, 255)), hlen=draw(st.integers(0, 16)),
                    hops=draw(st.integers(0, 255)), xid=draw(st.integers(0, 2**32 - 1)),
                    secs=draw(st.integers(0, 65535)), flags=draw(st.integers(0, 65535)),
                    ciaddr=draw(_addr), yiaddr=draw(_addr), siaddr=draw(_addr), giaddr=draw(_addr),
                    chaddr=draw(st.binary(min_size=16, max_size=16)), sname=draw(_name),
                    file=draw(st.binary(max_size=128).map(lambda b: b.rstrip(b"\0"))), options=options)


@settings(max_examples=300, deadline=None)
@given(packets())
def test_round_trip(p):
    assert P.decode(P.encode(p)) == p


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=700))
def test_arbitrary_bytes_parse_or_raise_malformed(data):
    try:
        P.decode(data)
    except P.MalformedPacket:
        pass


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_mutated_fixtures_parse_or_raise_malformed(data):
    datagrams = fixture_datagrams()
    payload = bytearray(datagrams[data.draw(st.integers(0, len(datagrams) - 1))][1].payload)
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(payload))
        payload[i] = rng.randrange(256)
    payload = payload[:data.draw(st.integers(0, len(payload)))]
    try:
        p = P.decode(bytes(payload))
    except P.MalformedPacket:
        return
    # whatever parses can be inspected without surprises
    p.user_classes, p.client_arches, p.client_uuid, p.vendor_class, p.mac
    for prop in ("pxe_options", "ipxe_options"):
        try:
            getattr(p, prop)
        except P.MalformedPacket:
            pass
