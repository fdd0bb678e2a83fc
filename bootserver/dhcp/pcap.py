"""Read UDP datagrams out of classic libpcap captures (stdlib only).

Used to replay the firmware captures in `shared/fixtures/dhcp/` in tests and benchmarks.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

_MAGICS = {b"\xd4\xc3\xb2\xa1": ("<", 1e6), b"\xa1\xb2\xc3\xd4": (">", 1e6),
           b"\x4d\x3c\xb2\xa1": ("<", 1e9), b"\xa1\xb2\x3c\x4d": (">", 1e9)}
LINKTYPE_ETHERNET = 1


@dataclass(frozen=True)
class Datagram:
    time: float  # seconds since the first record
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


def read_udp(path: str | Path) -> Iterator[Datagram]:
    """Every IPv4/UDP datagram in an Ethernet pcap (optionally VLAN-tagged), in capture order."""
    data = Path(path).read_bytes()
    if data[:4] not in _MAGICS:
        raise ValueError(f"{path}: not a classic pcap file (magic {data[:4].hex()})")
    endian, scale = _MAGICS[data[:4]]
    (linktype,) = struct.unpack(endian + "I", data[20:24])
    if linktype != LINKTYPE_ETHERNET:
        raise ValueError(f"{path}: link type {linktype}, only Ethernet (1) is supported")
    record = struct.Struct(endian + "IIII")
    i, t0 = 24, None
    while i + record.size <= len(data):
        sec, frac, incl, _orig = record.unpack_from(data, i)
        i += record.size
        frame = data[i:i + incl]
        i += incl
        t = sec + frac / scale
        t0 = t if t0 is None else t0
        off = 14
        (ethertype,) = struct.unpack_from("!H", frame, 12)
        if ethertype == 0x8100:
            (ethertype,) = struct.unpack_from("!H", frame, 16)
            off = 18
        if ethertype != 0x0800 or frame[off + 9] != socket.IPPROTO_UDP:
            continue
        ihl = (frame[off] & 0x0F) * 4
        (total,) = struct.unpack_from("!H", frame, off + 2)
        udp = off + ihl
        sport, dport, length = struct.unpack_from("!HHH", frame, udp)
        end = min(udp + length, off + total, len(frame))
        yield Datagram(t - t0, socket.inet_ntoa(frame[off + 12:off + 16]), sport,
                       socket.inet_ntoa(frame[off + 16:off + 20]), dport, frame[udp + 8:end])
