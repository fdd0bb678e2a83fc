"""TFTP request, option and error packets (tftpy's classes) and RFC 2347 option negotiation.

These run once per transfer, so tftpy's general-purpose codec is fine here. DATA and ACK are
the hot path and are handled with plain `struct` in `session.py`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tftpy.TftpPacketFactory import TftpPacketFactory
from tftpy.TftpPacketTypes import TftpPacketERR, TftpPacketOACK, TftpPacketRRQ, TftpPacketWRQ

# tftpy logs every byte it decodes at debug level; that belongs to tftpy's debugging, not ours.
logging.getLogger("tftpy").setLevel(logging.WARNING)

ERR_UNDEFINED = 0
ERR_NOT_FOUND = 1
ERR_ACCESS = 2

DEFAULT_BLKSIZE = 512  # RFC 1350
MIN_BLKSIZE, MAX_BLKSIZE = 8, 65464  # RFC 2348
MAX_WINDOWSIZE = 64  # RFC 7440 allows 65535; a bounded burst keeps one client from flooding the link
MIN_TIMEOUT, MAX_TIMEOUT = 1, 255  # RFC 2349, seconds

_factory = TftpPacketFactory()


class MalformedPacket(ValueError):
    """The datagram is not a TFTP packet we can read: it is dropped and counted."""


@dataclass(frozen=True)
class Request:
    write: bool
    filename: str
    mode: str
    options: dict[str, str]  # names lower-cased, as the client sent them
    datagram: bytes  # as received: a retransmitted request is byte-identical


def parse_request(datagram: bytes) -> Request:
    """Decode an RRQ or WRQ; anything else on the listening port is malformed."""
    try:
        packet = _factory.parse(datagram)
    except Exception as exc:  # tftpy raises TftpException, struct.error, UnicodeDecodeError…
        # tftpy rejects an option with an empty value (RFC 2090's "multicast") or a dangling name.
        # Options are optional: serve the request as if it had none rather than drop it.
        head = _without_options(datagram)
        try:
            packet = _factory.parse(head) if head else None
        except Exception:
            packet = None
        if packet is None:
            raise MalformedPacket(f"undecodable request: {exc}") from None
    if not isinstance(packet, (TftpPacketRRQ, TftpPacketWRQ)):
        raise MalformedPacket(f"opcode {packet.opcode} sent to the request port")
    if not packet.filename:
        raise MalformedPacket("empty file name")
    options = {str(k).lower(): str(v) for k, v in packet.options.items()}
    return Request(isinstance(packet, TftpPacketWRQ), packet.filename, packet.mode, options, datagram)


def _without_options(datagram: bytes) -> bytes | None:
    """The opcode, file name and mode of a request, when it has them all."""
    if datagram[:2] not in (b"\0\x01", b"\0\x02"):
        return None
    name_end = datagram.find(b"\0", 2)
    mode_end = datagram.find(b"\0", name_end + 1) if name_end > 0 else -1
    return datagram[:mode_end + 1] if mode_end > 0 else None


def error_packet(code: int, message: str | None = None) -> bytes:
    packet = TftpPacketERR()
    packet.errorcode = code
    if message is not None:
        packet.errmsgs = {**packet.errmsgs, code: message.encode("ascii", "replace")}
    elif code not in packet.errmsgs:
        packet.errmsgs = {**packet.errmsgs, code: b"Error"}
    return packet.encode().buffer


def oack_packet(options: dict[str, int]) -> bytes:
    packet = TftpPacketOACK()
    packet.options = {name: str(value) for name, value in options.items()}
    return packet.encode().buffer


@dataclass(frozen=True)
class Negotiated:
    blksize: int
    windowsize: int
    timeout: float | None  # seconds the client asked for, or None for the server's default
    oack: dict[str, int]  # what to acknowledge; empty = answer with DATA directly (RFC 2347)


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def negotiate(options: dict[str, str], size: int, blksize_cap: int) -> Negotiated:
    """Accept the options we understand, within bounds; silently ignore the rest (RFC 2347)."""
    blksize, windowsize, timeout = DEFAULT_BLKSIZE, 1, None
    oack: dict[str, int] = {}
    value = _int(options.get("blksize", ""))
    if value is not None and value >= MIN_BLKSIZE:
        blksize = min(value, blksize_cap, MAX_BLKSIZE)
        oack["blksize"] = blksize
    value = _int(options.get("tsize", ""))
    if value is not None and value >= 0:
        oack["tsize"] = size
    value = _int(options.get("timeout", ""))
    if value is not None and MIN_TIMEOUT <= value <= MAX_TIMEOUT:
        timeout = float(value)
        oack["timeout"] = value
    value = _int(options.get("windowsize", ""))
    if value is not None and value >= 1:
        windowsize = min(value, MAX_WINDOWSIZE)
        oack["windowsize"] = windowsize
    return Negotiated(blksize, windowsize, timeout, oack)
