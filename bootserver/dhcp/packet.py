"""DHCP/BOOTP packet codec: bytes <-> `Packet`, pure and strict.

Covers what a proxyDHCP meets on a boot network: the BOOTP header (RFC 951/2131), options with pad
and end, option overload (52), long options split over several instances (RFC 3396), PXE vendor
options (43) and iPXE's encapsulated options (175), and the client identity options of RFC 4578
(93 architecture, 94 network interface, 97 machine UUID) and RFC 3004 (77 user class).

Anything that does not follow the wire format raises one `MalformedPacket` subclass, so the proxy
can drop and count it by `reason` without guessing what the sender meant.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

MAGIC_COOKIE = b"\x63\x82\x53\x63"
HEADER_LEN = 236  # fixed BOOTP header, up to the magic cookie
MIN_PACKET = HEADER_LEN + len(MAGIC_COOKIE)
MAX_PACKET = 4096  # far above any real client (they send <= 1472); larger datagrams are abuse
BOOTP_MIN_REPLY = 300  # RFC 1542: some BOOTP relays and ROMs drop shorter messages

BOOTREQUEST, BOOTREPLY = 1, 2
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MESSAGE_TYPES = {DISCOVER: "DISCOVER", OFFER: "OFFER", REQUEST: "REQUEST", DECLINE: "DECLINE",
                 ACK: "ACK", NAK: "NAK", RELEASE: "RELEASE", INFORM: "INFORM"}

OPT_PAD, OPT_END = 0, 255
OPT_VENDOR = 43
OPT_REQUESTED_IP = 50
OPT_OVERLOAD = 52
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_VENDOR_CLASS = 60
OPT_BOOTFILE = 67
OPT_USER_CLASS = 77
OPT_CLIENT_ARCH = 93
OPT_CLIENT_NDI = 94
OPT_CLIENT_UUID = 97
OPT_IPXE = 175

# PXE 2.1 option 43 sub-options
PXE_DISCOVERY_CONTROL = 6
PXE_BOOT_SERVERS = 8
PXE_BOOT_MENU = 9
PXE_MENU_PROMPT = 10
PXE_BOOT_ITEM = 71

# Options whose length the RFCs fix; a client that gets these wrong is not parsed further.
_EXACT_LENGTH = {1: 4, 2: 4, 16: 1, 19: 1, 20: 1, 23: 1, 24: 4, 26: 2, 28: 4, 32: 4, 50: 4, 51: 4,
                 OPT_OVERLOAD: 1, OPT_MESSAGE_TYPE: 1, OPT_SERVER_ID: 4, 57: 2, 58: 4, 59: 4,
                 OPT_CLIENT_NDI: 3}
# Options that are lists of fixed-size items: (item size, minimum item count).
_LIST_LENGTH = {3: (4, 1), 4: (4, 1), 5: (4, 1), 6: (4, 1), 7: (4, 1), 42: (4, 1), 44: (4, 1),
                OPT_CLIENT_ARCH: (2, 1), 55: (1, 1), 61: (1, 2), OPT_VENDOR_CLASS: (1, 1),
                OPT_USER_CLASS: (1, 1), OPT_CLIENT_UUID: (1, 1)}

_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
_U16 = struct.Struct("!H")
_ZERO_ADDRESS = bytes(4)


class MalformedPacket(ValueError):
    """The bytes are not a well-formed DHCP message. `reason` is a short label for metrics."""

    reason = "malformed"


class Truncated(MalformedPacket):
    reason = "truncated"


class Oversized(MalformedPacket):
    reason = "oversized"


class BadMagicCookie(MalformedPacket):
    reason = "bad_cookie"


class OptionOverrun(MalformedPacket):
    reason = "overrun"


class BadOptionLength(MalformedPacket):
    reason = "bad_length"


class BadOptionValue(MalformedPacket):
    reason = "bad_value"


@dataclass(slots=True)
class Packet:
    """One DHCP message. Addresses are dotted strings; `sname`/`file` are without NUL padding.

    `options` maps code -> value in wire order, with RFC 3396 instances already concatenated and
    overloaded `sname`/`file` contents moved into it (so the overload option itself is not kept).
    """

    op: int = BOOTREQUEST
    htype: int = 1
    hlen: int = 6
    hops: int = 0
    xid: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: str = "0.0.0.0"
    yiaddr: str = "0.0.0.0"
    siaddr: str = "0.0.0.0"
    giaddr: str = "0.0.0.0"
    chaddr: bytes = bytes(16)
    sname: bytes = b""
    file: bytes = b""
    options: dict[int, bytes] = field(default_factory=dict)

    @property
    def message_type(self) -> int | None:
        value = self.options.get(OPT_MESSAGE_TYPE)
        return value[0] if value else None

    @property
    def mac(self) -> str | None:
        """Lower-case colon form of an Ethernet chaddr; None for other hardware types."""
        if self.htype != 1 or self.hlen != 6:
            return None
        return self.chaddr[:6].hex(":")

    @property
    def server_id(self) -> str | None:
        value = self.options.get(OPT_SERVER_ID)
        return socket.inet_ntoa(value) if value else None

    @property
    def vendor_class(self) -> str | None:
        value = self.options.get(OPT_VENDOR_CLASS)
        return None if value is None else value.decode("latin-1")

    @property
    def user_classes(self) -> tuple[bytes, ...]:
        """Option 77: RFC 3004 length-prefixed items, or one raw item (iPXE sends plain `iPXE`)."""
        value = self.options.get(OPT_USER_CLASS)
        if not value:
            return ()
        items, i = [], 0
        while i < len(value):
            n = value[i]
            if n == 0 or i + 1 + n > len(value):
                return (value,)
            items.append(value[i + 1:i + 1 + n])
            i += 1 + n
        return tuple(items)

    @property
    def client_arches(self) -> tuple[int, ...]:
        """Option 93 (RFC 4578): the client's architecture types, in preference order."""
        value = self.options.get(OPT_CLIENT_ARCH)
        if not value:
            return ()
        if len(value) == 2:  # what every client sends
            return _U16.unpack(value)
        return tuple(v for (v,) in struct.iter_unpack("!H", value))

    @property
    def client_ndi(self) -> tuple[int, int, int] | None:
        """Option 94 (RFC 4578): (interface type, UNDI major, UNDI minor)."""
        value = self.options.get(OPT_CLIENT_NDI)
        return (value[0], value[1], value[2]) if value else None

    @property
    def client_uuid(self) -> str | None:
        """Option 97 type 0: the SMBIOS UUID, sent in EFI/SMBIOS byte order (first fields little-endian)."""
        value = self.options.get(OPT_CLIENT_UUID)
        if value is None:
            return None
        if value[0] != 0 or len(value) != 17:
            return None
        h = (value[4:0:-1] + value[6:4:-1] + value[8:6:-1] + value[9:17]).hex()  # bytes_le -> big endian
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    @property
    def pxe_options(self) -> dict[int, bytes]:
        """Option 43 decoded as PXE sub-options (raises MalformedPacket if it is not TLV)."""
        return decode_suboptions(self.options.get(OPT_VENDOR, b""), OPT_VENDOR)

    @property
    def ipxe_options(self) -> dict[int, bytes]:
        """Option 175 decoded as iPXE's encapsulated options."""
        return decode_suboptions(self.options.get(OPT_IPXE, b""), OPT_IPXE)


def _scan(buf: bytes, start: int, end: int, out: dict[int, bytes], where: str) -> bool:
    """Read options from buf[start:end] into `out`, concatenating repeats (RFC 3396).

    Returns True when the end option was seen.
    """
    i = start
    while i < end:
        code = buf[i]
        if code == OPT_PAD:
            i += 1
            continue
        if code == OPT_END:
            return True
        if i + 1 >= end:
            raise OptionOverrun(f"option {code} in {where} has no length byte")
        j = i + 2 + buf[i + 1]
        if j > end:
            raise OptionOverrun(f"option {code} in {where} runs {j - end} bytes past the end")
        value = buf[i + 2:j]
        previous = out.get(code)
        out[code] = value if previous is None else previous + value
        i = j
    return False


def _length_rule(code: int) -> bytes | None:
    """For an option code with a length rule: a table, by value length (up to MAX_PACKET), of 1 where
    the length is allowed; None when the code has no rule."""
    if code in _EXACT_LENGTH:
        exact = _EXACT_LENGTH[code]
        return bytes(n == exact for n in range(MAX_PACKET + 1))
    if code in _LIST_LENGTH:
        size, count = _LIST_LENGTH[code]
        return bytes(n >= size * count and n % size == 0 for n in range(MAX_PACKET + 1))
    return None


# by option code: one look-up and one index per option instead of set operations per packet
_LENGTH_OK: tuple[bytes | None, ...] = tuple(_length_rule(code) for code in range(256))


def _length_error(code: int, value: bytes) -> BadOptionLength:
    if code in _EXACT_LENGTH:
        return BadOptionLength(f"option {code} has length {len(value)}, expected {_EXACT_LENGTH[code]}")
    size, count = _LIST_LENGTH[code]
    return BadOptionLength(f"option {code} has length {len(value)}, "
                           f"expected at least {size * count} in steps of {size}")


def _check_lengths(options: dict[int, bytes]) -> None:
    rules = _LENGTH_OK
    for code, value in options.items():
        allowed = rules[code]
        if allowed is not None and not allowed[len(value)]:
            raise _length_error(code, value)
    message_type = options.get(OPT_MESSAGE_TYPE)
    if message_type is not None and not 1 <= message_type[0] <= 18:
        raise BadOptionValue(f"message type {message_type[0]} does not exist")
    uuid_value = options.get(OPT_CLIENT_UUID)  # RFC 4578 2.3: type 0, then a 16-byte UUID; nothing else
    if uuid_value is not None and len(uuid_value) != 17:
        raise BadOptionLength(f"option 97 has length {len(uuid_value)}, expected 17")
    if uuid_value is not None and uuid_value[0] != 0:
        raise BadOptionValue(f"option 97 has type {uuid_value[0]}, expected 0")


def decode(data: bytes) -> Packet:
    """Parse one DHCP message; raises a MalformedPacket subclass on any wire-format error."""
    end = len(data)
    if end > MAX_PACKET:
        raise Oversized(f"{end} bytes, more than {MAX_PACKET}")
    if end < MIN_PACKET:
        raise Truncated(f"{end} bytes, a DHCP message has at least {MIN_PACKET}")
    if data[HEADER_LEN:MIN_PACKET] != MAGIC_COOKIE:
        raise BadMagicCookie(f"magic cookie {data[HEADER_LEN:MIN_PACKET].hex()}")
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname,
     bootfile) = _HEADER.unpack_from(data)
    if hlen > 16:
        raise BadOptionValue(f"hardware address length {hlen} exceeds the 16-byte chaddr field")
    # the options field: _scan, inlined (this runs for every datagram the proxy receives)
    options: dict[int, bytes] = {}
    i = MIN_PACKET
    while True:
        if i >= end:
            raise Truncated("options field has no end option")
        code = data[i]
        if code == OPT_END:
            break
        if code == OPT_PAD:
            i += 1
            continue
        if i + 1 >= end:
            raise OptionOverrun(f"option {code} in options has no length byte")
        j = i + 2 + data[i + 1]
        if j > end:
            raise OptionOverrun(f"option {code} in options runs {j - end} bytes past the end")
        if code in options:
            options[code] += data[i + 2:j]
        else:
            options[code] = data[i + 2:j]
        i = j
    if OPT_OVERLOAD in options:
        overload = options.pop(OPT_OVERLOAD)
        if len(overload) != 1:
            raise BadOptionLength(f"option 52 has length {len(overload)}, expected 1")
        if overload[0] not in (1, 2, 3):
            raise BadOptionValue(f"option 52 value {overload[0]} is not 1, 2 or 3")
        # RFC 3396 section 7: the options field, then file, then sname.
        if overload[0] & 1:
            _scan(data, 108, 236, options, "file")
            bootfile = b""
        if overload[0] & 2:
            _scan(data, 44, 108, options, "sname")
            sname = b""
        if OPT_OVERLOAD in options:
            raise BadOptionValue("option 52 inside an overloaded field")
    _check_lengths(options)
    ntoa = socket.inet_ntoa
    return Packet(op, htype, hlen, hops, xid, secs, flags,
                  "0.0.0.0" if ciaddr == _ZERO_ADDRESS else ntoa(ciaddr),
                  "0.0.0.0" if yiaddr == _ZERO_ADDRESS else ntoa(yiaddr),
                  "0.0.0.0" if siaddr == _ZERO_ADDRESS else ntoa(siaddr),
                  "0.0.0.0" if giaddr == _ZERO_ADDRESS else ntoa(giaddr),
                  chaddr, sname.rstrip(b"\0"), bootfile.rstrip(b"\0"), options)


def encode_options(options: dict[int, bytes]) -> bytearray:
    """Options as TLVs, splitting values over 255 bytes into several instances (RFC 3396)."""
    out = bytearray()
    for code, value in options.items():
        if not 0 < code < 255:
            raise ValueError(f"option code {code} cannot be sent as an option")
        if not value:
            out += bytes((code, 0))
            continue
        for i in range(0, len(value), 255):
            chunk = value[i:i + 255]
            out.append(code)
            out.append(len(chunk))
            out += chunk
    return out


def encode(packet: Packet, min_size: int = BOOTP_MIN_REPLY) -> bytes:
    """Serialise a packet (no overload: sname and file go in their header fields)."""
    if len(packet.sname) > 64 or len(packet.file) > 128:
        raise ValueError("sname is limited to 64 bytes and file to 128; put a longer boot file in option 67")
    if len(packet.chaddr) > 16:
        raise ValueError("chaddr is limited to 16 bytes")
    out = bytearray(_HEADER.pack(
        packet.op, packet.htype, packet.hlen, packet.hops, packet.xid, packet.secs, packet.flags,
        socket.inet_aton(packet.ciaddr), socket.inet_aton(packet.yiaddr), socket.inet_aton(packet.siaddr),
        socket.inet_aton(packet.giaddr), packet.chaddr, packet.sname, packet.file))
    out += MAGIC_COOKIE
    out += encode_options(packet.options)
    out.append(OPT_END)
    if len(out) < min_size:
        out += bytes(min_size - len(out))
    return bytes(out)


def decode_suboptions(data: bytes, parent: int) -> dict[int, bytes]:
    """Encapsulated options (43, 175): TLVs with pad and end, repeats concatenated."""
    out: dict[int, bytes] = {}
    _scan(data, 0, len(data), out, f"option {parent}")
    return out


def encode_suboptions(suboptions: dict[int, bytes]) -> bytes:
    """Encapsulated options, closed by an end sub-option as PXE 2.1 asks."""
    out = bytearray()
    for code, value in suboptions.items():
        if not 0 < code < 255 or len(value) > 255:
            raise ValueError(f"sub-option {code} cannot be encoded (code 1-254, at most 255 bytes)")
        out.append(code)
        out.append(len(value))
        out += value
    out.append(OPT_END)
    return bytes(out)
