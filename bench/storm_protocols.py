"""The protocol clients of the boot-storm load: DHCP (67 and 4011), TFTP and HTTP, as firmware speaks them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import socket
import struct
from collections import Counter
from urllib.parse import urlsplit

MAGIC = b"\x63\x82\x53\x63"
UEFI_X64 = 7
VENDOR_PXE = b"PXEClient:Arch:00007:UNDI:003016"
VENDOR_IPXE = b"PXEClient:Arch:00007:UNDI:003010"
SO_BINDTODEVICE, SO_RCVBUFFORCE = 25, 33
# edk2's PXE driver (NetworkPkg/UefiPxeBcDxe): 4 s per TFTP timeout, 6 tries
TFTP_TIMEOUT, TFTP_TRIES = 4.0, 6
RETRIES: Counter = Counter()  # retransmissions by the simulated machines, by protocol


class StepError(Exception):
    """A step failed; the message is the error's category in the report."""


# --- DHCP ------------------------------------------------------------------------------------

def dhcp_packet(kind: int, xid: int, mac: bytes, ciaddr: str = "0.0.0.0", extra: list[tuple[int, bytes]] = (),
                vendor: bytes = VENDOR_PXE, uuid: bytes = b"") -> bytes:
    head = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, socket.inet_aton(ciaddr),
                       bytes(4), bytes(4), bytes(4), mac + bytes(10), b"", b"")
    options = [(53, bytes([kind])), (55, bytes([1, 3, 43, 60, 66, 67, 97, 128, 175])), (57, b"\x05\xc0"),
               (60, vendor), (93, struct.pack("!H", UEFI_X64)), (94, b"\x01\x03\x10"), (97, b"\x00" + uuid),
               *extra]
    body = b"".join(bytes([code, len(value)]) + value for code, value in options)
    return head + MAGIC + body + b"\xff"


def dhcp_parse(data: bytes) -> dict:
    if len(data) < 240 or data[236:240] != MAGIC:
        raise ValueError("not a DHCP packet")
    xid = struct.unpack("!I", data[4:8])[0]
    options: dict[int, bytes] = {}
    i = 240
    while i < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        code, size = data[i], data[i + 1]
        options[code] = options.get(code, b"") + data[i + 2:i + 2 + size]
        i += 2 + size
    return {"xid": xid, "siaddr": socket.inet_ntoa(data[20:24]), "chaddr": data[28:34],
            "file": data[108:236].split(b"\0", 1)[0].decode(errors="replace"), "options": options}


def boot_item(offer: dict) -> list[tuple[int, bytes]]:
    """The PXE boot item (option 43.71) for the first entry of the offer's boot menu (43.9), if any."""
    vendor = offer["options"].get(43, b"")
    i = 0
    while i + 1 < len(vendor) and vendor[i] != 255:
        code, size = vendor[i], vendor[i + 1]
        if code == 9 and size >= 2:
            item = vendor[i + 2:i + 4]
            return [(43, bytes([71, 4]) + item + b"\x00\x00\xff")]
        i += 2 + size
    return []


def boot_file(reply: dict) -> str:
    return reply["options"].get(67, b"").rstrip(b"\0").decode() or reply["file"]


def server_of(reply: dict, source: str) -> str:
    sid = reply["options"].get(54)
    return socket.inet_ntoa(sid) if sid and len(sid) == 4 else (reply["siaddr"] if reply["siaddr"] != "0.0.0.0" else source)


class Port68(asyncio.DatagramProtocol):
    """The client side of port 67/68 for every machine at once: replies are matched by xid."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.counts: Counter = Counter()  # replies received / matched to a waiting machine of this process

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        """Broadcast replies reach every load process on port 68: look at the xid (bytes 4..8) first
        and parse only the replies for a machine of this process."""
        self.counts["received"] += 1
        if len(data) < 8 or data[0] != 2:
            return
        future = self.waiting.get(int.from_bytes(data[4:8], "big"))
        if future is None or future.done():
            return
        try:
            reply = dhcp_parse(data)
        except (ValueError, IndexError, struct.error):
            self.counts["malformed"] += 1
            return
        self.counts["matched"] += 1
        future.set_result((reply, addr[0]))

    async def exchange(self, packet: bytes, xid: int, timeout: float, tries: int) -> tuple[dict, str]:
        for _ in range(tries):
            future = asyncio.get_running_loop().create_future()
            self.waiting[xid] = future
            self.transport.sendto(packet, ("255.255.255.255", 67))
            try:
                return await asyncio.wait_for(future, timeout)
            except asyncio.TimeoutError:
                RETRIES["dhcp"] += 1
                continue
            finally:
                self.waiting.pop(xid, None)
        raise StepError("dhcp: no offer on 67")


class Unicast(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue = asyncio.Queue()

    def datagram_received(self, data: bytes, addr) -> None:
        self.replies.put_nowait((data, addr))


async def request_4011(ip: str, server: str, packet: bytes, xid: int, timeout: float, tries: int) -> dict:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(Unicast, local_addr=(ip, 4011))
    try:
        for _ in range(tries):
            transport.sendto(packet, (server, 4011))
            deadline = loop.time() + timeout
            while (left := deadline - loop.time()) > 0:
                try:
                    data, _ = await asyncio.wait_for(proto.replies.get(), left)
                except asyncio.TimeoutError:
                    RETRIES["dhcp"] += 1
                    break
                with_reply = _parsed(data)
                if with_reply and with_reply["xid"] == xid:
                    return with_reply
        raise StepError("dhcp: no ack on 4011")
    finally:
        transport.close()


def _parsed(data: bytes) -> dict | None:
    try:
        return dhcp_parse(data) if data[0] == 2 else None
    except (ValueError, IndexError, struct.error):
        return None


# --- TFTP ------------------------------------------------------------------------------------

class TftpRead(asyncio.DatagramProtocol):
    """One read request, lock-step ACKs, as PXE firmware does it. Once the server's transfer port is
    known the socket is connected to it, so an ICMP port unreachable (that server is gone) ends the
    transfer at once, as edk2's UDP driver reports it to its MTFTP client (NetworkPkg Udp4Dxe,
    Mtftp4RrqInput) rather than waiting out every retransmission."""

    def __init__(self, sock: socket.socket, server: tuple[str, int], filename: str, blksize: int) -> None:
        self.sock = sock
        self.server = server
        self.request = (b"\x00\x01" + filename.encode() + b"\0octet\0blksize\0%d\0tsize\x000\0" % blksize)
        self.blksize = 512
        self.peer: tuple[str, int] | None = None
        self.expected = 1
        self.last = self.request
        self.hash = hashlib.sha256()
        self.size = 0
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()
        self.progress = 0
        self.last_rx = asyncio.get_running_loop().time()
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.sendto(self.request, self.server)

    def _send(self, packet: bytes) -> None:
        self.last = packet
        self.transport.sendto(packet, self.peer)

    def datagram_received(self, data: bytes, addr) -> None:
        if self.done.done():
            return
        if self.peer is None:
            self.peer = addr
            self.sock.connect(addr)
        elif addr != self.peer:
            return
        opcode = int.from_bytes(data[:2], "big")
        self.progress += 1
        self.last_rx = asyncio.get_running_loop().time()
        if opcode == 6:  # OACK
            fields = data[2:].split(b"\0")
            opts = dict(zip(fields[0::2], fields[1::2]))
            self.blksize = int(opts.get(b"blksize", b"512"))
            self._send(b"\x00\x04\x00\x00")
        elif opcode == 3:
            block = int.from_bytes(data[2:4], "big")
            if block == self.expected & 0xFFFF:
                payload = data[4:]
                self.hash.update(payload)
                self.size += len(payload)
                self._send(b"\x00\x04" + data[2:4])
                self.expected += 1
                if len(payload) < self.blksize:
                    self.done.set_result(None)
            else:
                self.transport.sendto(self.last, self.peer)  # a duplicate: say again where we are
        elif opcode == 5:
            message = data[4:].split(b"\0")[0].decode(errors="replace")
            self.done.set_exception(StepError(f"tftp: error {message}"))

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, ConnectionRefusedError) and not self.done.done():
            self.done.set_exception(StepError("tftp: port unreachable"))


async def tftp_get(ip: str, server: str, filename: str, timeout: float, tries: int,
                   port: int = 69) -> tuple[int, str]:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((ip, 0))
        transport, proto = await loop.create_datagram_endpoint(
            lambda: TftpRead(sock, (server, port), filename, 1468), sock=sock)
    except BaseException:
        sock.close()
        raise
    try:
        resent_at = -1  # proto.progress when we last sent again; equal now = still no answer since
        silent = 0
        while not proto.done.done():
            wait = proto.last_rx + timeout - loop.time()  # firmware restarts its timer on every packet
            if wait > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(proto.done), wait)
                continue
            silent = silent + 1 if proto.progress == resent_at else 1
            if silent >= tries:
                raise StepError("tftp: timed out")
            RETRIES["tftp"] += 1
            resent_at = proto.progress
            proto.last_rx = loop.time()
            transport.sendto(proto.last, proto.peer or (server, port))
        proto.done.result()
        return proto.size, proto.hash.hexdigest()
    finally:
        transport.close()


# --- HTTP ------------------------------------------------------------------------------------

_BUF = bytearray(1 << 20)


async def http(method: str, url: str, ip: str, body: bytes = b"", keep: bool = True,
               timeout: float = 60, headers: dict[str, str] | None = None) -> tuple[int, bytes | int]:
    """One request on its own connection from `ip`; the body, or its length when keep is False."""
    return await asyncio.wait_for(_http(method, url, ip, body, keep, headers or {}), timeout)


async def _http(method: str, url: str, ip: str, body: bytes, keep: bool,
                headers: dict[str, str]) -> tuple[int, bytes | int]:
    loop = asyncio.get_running_loop()
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    sock = socket.socket()
    try:
        sock.setblocking(False)
        sock.bind((ip, 0))
        await loop.sock_connect(sock, (host, port))
        head = (f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: iPXE/1.21.1\r\n"
                f"Connection: close\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()))
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        await loop.sock_sendall(sock, head.encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                raise StepError(f"http {parts.path}: connection closed before the headers")
            data += chunk
        header, _, rest = data.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(fields["content-length"]) if "content-length" in fields else None
        if keep:
            received = bytearray(rest)
            while length is None or len(received) < length:
                chunk = await loop.sock_recv(sock, 1 << 20)
                if not chunk:
                    break
                received += chunk
            if length is not None and len(received) != length:
                raise StepError(f"http {parts.path}: short body")
            return status, bytes(received)
        count = len(rest)
        view = memoryview(_BUF)
        while length is None or count < length:
            n = await loop.sock_recv_into(sock, view)
            if not n:
                break
            count += n
        if length is not None and count != length:
            raise StepError(f"http {parts.path}: short body")
        return status, count
    finally:
        sock.close()


IPXE_VARS = re.compile(r"\$\{([^}]*)\}")


def fill(template: str, values: dict[str, str]) -> str:
    """iPXE's ${name} and ${name:uristring} expansion, for the settings this simulated machine has."""
    return IPXE_VARS.sub(lambda m: values.get(m.group(1).split(":")[0], ""), template)
