"""Where TFTP listens and answers from: the listening address, the block size an interface carries,
a transfer's own socket, and what a dynamic-file generator learns about the client."""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass
from typing import Awaitable, Callable

from bootserver.config import split_hostport
from bootserver.tftp.packets import MAX_BLKSIZE, MIN_BLKSIZE

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux value; not exported by Python 3.11
PKTINFO = struct.Struct("=i4s4s")  # struct in_pktinfo: ifindex, spec_dst, addr
_HEADERS = 20 + 8 + 4  # IPv4 + UDP + TFTP DATA header


@dataclass(frozen=True)
class FileRequest:
    """What a dynamic-file generator learns about the client asking."""

    filename: str
    client_ip: str
    client_port: int
    mac: str | None  # from the runtime's DHCP knowledge (`mac_for_ip`), when it has one
    server_ip: str = ""  # our address the request arrived on: what the client can reach


Generator = Callable[[FileRequest], Awaitable[bytes | None]]


def listen_address(value: str) -> tuple[str, int]:
    if value == "auto":
        return "0.0.0.0", 69
    if value == "off":
        raise ValueError("TFTP is off (settings.tftp = off)")
    host, port = split_hostport(value)
    if ipaddress.ip_address(host or "0.0.0.0").version != 4:
        raise ValueError(f"TFTP listens on IPv4 only (PXE is IPv4): {value!r}")
    return host or "0.0.0.0", port


def interface_mtu(ifindex: int) -> int | None:
    try:
        with open(f"/sys/class/net/{socket.if_indextoname(ifindex)}/mtu") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def blksize_cap(setting: int, ifindex: int) -> int:
    """settings.tftp_blksize_max, or (0) the largest block one unfragmented IPv4 packet carries."""
    if setting > 0:
        return max(MIN_BLKSIZE, min(setting, MAX_BLKSIZE))
    mtu = interface_mtu(ifindex) if ifindex else None
    return max(MIN_BLKSIZE, min(MAX_BLKSIZE, (mtu or 1500) - _HEADERS))


def reply_socket(local_ip: str, peer: tuple[str, int]) -> socket.socket:
    """A non-blocking socket from our address on the client's network, connected to the client."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((local_ip, 0))
        sock.connect(peer)
    except OSError:
        sock.close()
        raise
    return sock
