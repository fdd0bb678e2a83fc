"""The proxy's OFFER/ACK bytes, from an `Answer` and the request it answers.

A proxy reply carries no address of the client's own: every client that gets the same answer from
the same server gets the same bytes, but for the fields the reply copies from its request (RFC 2131
section 4.3.1 and table 3: htype, hlen, xid, flags, ciaddr, giaddr, chaddr; RFC 4578 section 2.3:
option 97, the machine's UUID). `ReplyTemplates` encodes each answer once and copies those fields
into it per request, the same bytes as `encode(build_reply(...))` for a fraction of the work.
"""

from __future__ import annotations

import socket

from bootserver.boot.methods import Answer
from bootserver.dhcp.packet import (BOOTREPLY, MIN_PACKET, OPT_BOOTFILE, OPT_CLIENT_UUID, OPT_END, OPT_MESSAGE_TYPE,
                                    OPT_PAD, OPT_SERVER_ID, OPT_VENDOR, OPT_VENDOR_CLASS, PXE_DISCOVERY_CONTROL,
                                    Packet, encode, encode_suboptions)

# PXE 2.1 discovery control bit 3: boot the file named in this packet, skip boot server discovery.
_BIOS_PXE_OPTIONS = encode_suboptions({PXE_DISCOVERY_CONTROL: b"\x08"})
UUID_LENGTH = 17  # RFC 4578: type 0, then 16 bytes; decode() refuses any other length


def build_reply(request: Packet, answer: Answer, kind: int, server_ip: str) -> Packet:
    """The proxy OFFER/ACK: boot file and server identity, no address (yiaddr 0, no lease options)."""
    server = socket.inet_aton(server_ip)
    options = {OPT_MESSAGE_TYPE: bytes((kind,)), OPT_SERVER_ID: server,
               OPT_VENDOR_CLASS: answer.vendor_class.encode()}
    uuid = request.options.get(OPT_CLIENT_UUID)
    if uuid is not None and len(uuid) == UUID_LENGTH:
        options[OPT_CLIENT_UUID] = uuid
    if answer.pxe_discovery_control:
        options[OPT_VENDOR] = _BIOS_PXE_OPTIONS
    boot_file = answer.boot_file.encode()
    if len(boot_file) > 127:  # does not fit the file field with its NUL: option 67 only
        options[OPT_BOOTFILE] = boot_file
        boot_file = b""
    return Packet(op=BOOTREPLY, htype=request.htype, hlen=request.hlen, xid=request.xid,
                  flags=request.flags, ciaddr=request.ciaddr, siaddr=server_ip, giaddr=request.giaddr,
                  chaddr=request.chaddr, sname=server_ip.encode(), file=boot_file, options=options)


def _value_offset(data: bytes, code: int) -> int:
    """Where the value of option `code` starts in an encoded message (it must be there, once)."""
    i = MIN_PACKET
    while data[i] != OPT_END:
        if data[i] == OPT_PAD:
            i += 1
        elif data[i] == code:
            return i + 2
        else:
            i += 2 + data[i + 1]
    raise ValueError(f"option {code} is not in the message")


class ReplyTemplates:
    """Encoded replies by (answer, message type, server address, with a UUID or not), at most `limit`
    of them (a few per boot method and interface in practice; past the limit they start over)."""

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        # (id of the answer, ...) -> (the answer, its bytes, where the UUID goes): keyed by identity, as the
        # Runtime hands out one Answer object per kind of answer (an id is not reused while the entry holds it)
        self._templates: dict[tuple, tuple[Answer, bytes, int]] = {}

    def __len__(self) -> int:
        return len(self._templates)

    def reply(self, request: Packet, data: bytes, answer: Answer, kind: int, server_ip: str) -> bytearray:
        """encode(build_reply(request, answer, kind, server_ip)); `data` are the bytes `request` was
        decoded from, whose header fields are copied as they came."""
        uuid = request.options.get(OPT_CLIENT_UUID)
        if uuid is not None and len(uuid) != UUID_LENGTH:
            uuid = None
        key = (id(answer), kind, server_ip, uuid is not None)
        found = self._templates.get(key)
        if found is None:
            if len(self._templates) >= self.limit:
                self._templates.clear()
            found = self._templates[key] = (answer, *self._template(answer, kind, server_ip, uuid is not None))
        _answer, template, uuid_at = found
        out = bytearray(template)
        out[1:3] = data[1:3]  # htype, hlen
        out[4:8] = data[4:8]  # xid (secs and hops stay 0)
        out[10:16] = data[10:16]  # flags, ciaddr (yiaddr stays 0, siaddr is ours)
        out[24:44] = data[24:44]  # giaddr, chaddr
        if uuid is not None:
            out[uuid_at:uuid_at + UUID_LENGTH] = uuid
        return out

    @staticmethod
    def _template(answer: Answer, kind: int, server_ip: str, with_uuid: bool) -> tuple[bytes, int]:
        prototype = Packet(options={OPT_CLIENT_UUID: bytes(UUID_LENGTH)} if with_uuid else {})
        data = encode(build_reply(prototype, answer, kind, server_ip))
        return data, _value_offset(data, OPT_CLIENT_UUID) if with_uuid else 0
