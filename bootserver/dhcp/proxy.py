"""ProxyDHCP: boot information (never addresses) for PXE, UEFI HTTP Boot and iPXE clients.

Runs as Twisted `DatagramProtocol`s on the shared asyncio loop (Twisted's asyncio reactor): the
reactor's UDP port reads each socket, every datagram that is there, and hands each to `receive()`;
replies are sent on the port's socket directly. Each configured interface gets its own sockets on
ports 67 and 4011, bound to the device with SO_BINDTODEVICE and SO_REUSEADDR, so that replies
leave through the interface the request came in on, carry that interface's address (or the
`floating_address` keepalived moves between replicas, so every replica answers alike), and an
ordinary DHCP server on the same host can own port 67 beside us (docs/dhcp.md).

This module only translates: bytes -> `BootRequest`, `runtime.dhcp_answer()` (the boot decision through
the boot-method table) -> reply bytes. Every packet it does not answer is counted and logged at debug level with the reason.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import socket
import struct
from typing import Any, Coroutine

from twisted.internet.protocol import DatagramProtocol

from bootserver.boot.methods import Answer, Silence, arch_for, stage_for
from bootserver.boot.request import BootRequest
from bootserver.dhcp.packet import (ACK, BOOTREQUEST, DISCOVER, INFORM, MAX_PACKET, MESSAGE_TYPES, OFFER, OPT_IPXE,
                                    OPT_REQUESTED_IP, REQUEST, MalformedPacket, Packet, decode)
from bootserver.dhcp.counts import Counts
from bootserver.dhcp.ratelimit import MacRateLimiter
from bootserver.dhcp.reply import ReplyTemplates

log = logging.getLogger("bootserver.dhcp")

DHCP_PORT = 67
PXE_PORT = 4011
CLIENT_PORT = 68
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SIOCGIFADDR = 0x8915
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux value; not exported by Python 3.11
RECEIVE_BUFFER = 4 << 20

MALFORMED = Counts("bootserver_dhcp_malformed", "DHCP datagrams dropped as malformed, by reason", "reason")
UNANSWERED = Counts("bootserver_dhcp_unanswered", "Well-formed DHCP packets the proxy left unanswered", "reason")
REPLIES = Counts("bootserver_dhcp_replies", "ProxyDHCP replies sent", "kind")
REPLIES.values.update(offer=0, ack=0)
_REPLY_KINDS = {OFFER: "offer", ACK: "ack"}


class ProxyStartError(OSError):
    """A listening socket could not be opened; the message says which and why."""


def interface_address(name: str) -> str:
    """The primary IPv4 address of an interface (in the caller's network namespace)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            raw = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError as exc:
            raise ProxyStartError(f"interface {name}: no IPv4 address ({exc.strerror})") from None
    return socket.inet_ntoa(raw[20:24])


def open_socket(interface: str, port: int) -> socket.socket:
    """A UDP socket on 0.0.0.0:port that only sees (and only sends through) `interface`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode())
        try:  # room for a boot storm: hundreds of firmware DISCOVERs arrive within milliseconds
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)  # capped by rmem_max
        sock.bind(("0.0.0.0", port))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        hint = (" (another DHCP server holds the port without SO_REUSEADDR; run dnsmasq with "
                "--bind-interfaces, see docs/dhcp.md)" if exc.errno == errno.EADDRINUSE else "")
        raise ProxyStartError(f"cannot listen on {interface} port {port}: {exc.strerror}{hint}") from None
    return sock


def reply_type(packet: Packet, port: int, server_ip: str) -> int | str:
    """OFFER or ACK for a packet the proxy answers, else the reason it does not."""
    if packet.op != BOOTREQUEST:
        return "not a BOOTREQUEST"
    kind = packet.message_type
    if port == PXE_PORT:
        if kind in (REQUEST, INFORM):
            return ACK
        return f"{MESSAGE_TYPES.get(kind, kind)} on port 4011"
    if kind == DISCOVER:
        return OFFER
    if kind == REQUEST:
        server_id = packet.server_id
        if server_id != server_ip:
            return f"REQUEST for server {server_id}"
        if OPT_REQUESTED_IP in packet.options:  # a lease request to a DHCP server sharing our address
            return "REQUEST for an address lease"
        return ACK
    return f"{MESSAGE_TYPES.get(kind, kind)} on port 67"


def client_address(packet: Packet, source: tuple[str, int]) -> str | None:
    """The client's own address, if it has one: ciaddr, else the UDP source unless a relay sent it."""
    if packet.ciaddr != "0.0.0.0":
        return packet.ciaddr
    if packet.giaddr != "0.0.0.0" or source[0] == "0.0.0.0":
        return None  # a relay's address is not the machine's
    return source[0]


def relay_address(packet: Packet) -> str | None:
    """The relay agent's address on the client's subnet (giaddr, RFC 2131 section 4.3.1), or None."""
    return packet.giaddr if packet.giaddr != "0.0.0.0" else None


def destination(request: Packet, port: int, source: tuple[str, int]) -> tuple[str, int]:
    """4011: back to the sender's address and port. 67: the relay, else the client, else broadcast."""
    if port == PXE_PORT:
        return source
    if request.giaddr != "0.0.0.0":
        return request.giaddr, DHCP_PORT
    if request.ciaddr != "0.0.0.0":
        return request.ciaddr, CLIENT_PORT
    return "255.255.255.255", CLIENT_PORT


async def _carry_on(coro: Coroutine[Any, Any, None], waiting_for: Any) -> None:
    """Drive a coroutine that already ran up to its first wait on to its end, as a Task would have:
    wait until the future it yielded is done (None: it only yielded to the loop), then resume it, and
    it reads the future's outcome itself. Cancelling this Task cancels that future, as a Task does."""
    loop = asyncio.get_running_loop()
    while True:
        cancelled = False
        try:
            if waiting_for is None:
                await asyncio.sleep(0)
            elif not waiting_for.done():
                woken = loop.create_future()
                waiting_for.add_done_callback(lambda _done, w=woken: w.done() or w.set_result(None))
                await woken
        except asyncio.CancelledError:
            cancelled = waiting_for is None or not waiting_for.cancel()  # else it reads the cancel itself
        try:
            waiting_for = coro.throw(asyncio.CancelledError()) if cancelled else coro.send(None)
        except StopIteration:
            return


def _cancel_unfinished(coro: Coroutine[Any, Any, None], waiting_for: Any) -> None:
    """A Task cancelled before its first step never ran _carry_on: cancel the answer it was given."""
    if coro.cr_frame is None:  # finished, the usual case
        return
    if waiting_for is not None:
        waiting_for.cancel()
    try:
        coro.throw(asyncio.CancelledError())
    except (asyncio.CancelledError, StopIteration):
        return
    coro.close()  # it tried to wait again after the cancel: stop it there


def send_from(sock: socket.socket, data: bytes | bytearray, target: tuple[str, int], source_ip: str) -> None:
    """sendto with `source_ip` as the source address (IP_PKTINFO ipi_spec_dst): a 4011 ACK leaves
    from the floating address the client asked, not from this replica's own. Falls back to the
    routing's choice when the address is not (or no longer) ours."""
    pktinfo = struct.pack("@i4s4s", 0, socket.inet_aton(source_ip), bytes(4))
    try:
        sock.sendmsg([data], [(socket.IPPROTO_IP, IP_PKTINFO, pktinfo)], 0, target)
    except OSError:
        sock.sendto(data, target)


class _Listener(DatagramProtocol):
    """One (interface, port) socket; hands every datagram to the component. Twisted's port reads
    the socket (all that is there, up to its maxThroughput a wake-up); `socket` is that port's
    socket, which replies are sent on directly."""

    def __init__(self, proxy: "ProxyDHCP", interface: str, address: str, port: int) -> None:
        self.receive = proxy.receive
        self.interface = interface
        self.address = address
        self.port = port
        self.socket: Any = None  # the adopted port's socket, once listening

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802 (Twisted's name)
        try:
            self.receive(self, data, addr)
        except Exception:  # never lose the port to one packet (Twisted would log it too, uncounted)
            log.exception("proxyDHCP failed on a packet from %s on %s", addr, self.interface)
            UNANSWERED.inc("error")


class ProxyDHCP:
    """The proxyDHCP component: `await start()` opens the sockets, `await stop()` closes them."""

    def __init__(self, runtime: Any, settings: Any, *, interfaces: tuple[str, ...] | None = None,
                 ports: tuple[int, ...] = (DHCP_PORT, PXE_PORT), limiter: MacRateLimiter | None = None,
                 max_in_flight: int = 1024) -> None:
        self.runtime = runtime
        self.interfaces = tuple(dict.fromkeys(settings.dhcp if interfaces is None else interfaces))
        self.ports = ports
        self.limiter = MacRateLimiter() if limiter is None else limiter
        self.max_in_flight = max_in_flight
        self.floating_address: str | None = settings.floating_address  # next-server of every replica
        self.listeners: list[_Listener] = []
        self._ports: list[Any] = []
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._templates = ReplyTemplates()

    async def start(self) -> None:
        from twisted.internet import reactor

        self._loop = asyncio.get_running_loop()
        if not self.interfaces:
            log.info("proxyDHCP off (no dhcp interfaces configured)")
            return
        try:
            for name in self.interfaces:
                address = interface_address(name)
                for port in self.ports:
                    sock = open_socket(name, port)
                    listener = _Listener(self, name, address, port)
                    try:  # one more byte than MAX_PACKET is read, so decode() sees an oversized datagram
                        adopted = reactor.adoptDatagramPort(sock.fileno(), socket.AF_INET, listener,
                                                            maxPacketSize=MAX_PACKET + 1)
                    finally:
                        sock.close()  # the reactor holds its own duplicate
                    self._ports.append(adopted)
                    listener.socket = adopted.socket
                    self.listeners.append(listener)
                log.info("proxyDHCP on %s (%s), ports %s", name, address, ", ".join(map(str, self.ports)))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        ports, self._ports = self._ports, []
        for port in ports:
            stopped = port.stopListening()  # a Deferred that fires once the socket is closed, or None
            if stopped is not None:
                await stopped.asFuture(asyncio.get_running_loop())
        self.listeners.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- per packet ---------------------------------------------------------------------------

    def _drop(self, reason: str, why: str, listener: _Listener, source: Any, packet: Packet) -> None:
        UNANSWERED.inc(reason)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("unanswered %s from %s:%s on %s:%d: %s", packet.chaddr[:6].hex(":"), source[0], source[1],
                      listener.interface, listener.port, why)

    def receive(self, listener: _Listener, data: bytes, source: Any) -> None:
        try:
            packet = decode(data)
        except MalformedPacket as exc:
            MALFORMED.inc(exc.reason)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("unanswered %d bytes from %s:%s on %s:%d: malformed (%s: %s)", len(data),
                          source[0], source[1], listener.interface, listener.port, exc.reason, exc)
            return
        kind = reply_type(packet, listener.port, self.floating_address or listener.address)
        if isinstance(kind, str):
            self._drop("not_for_proxy", kind, listener, source, packet)
            return
        mac = packet.mac
        if mac is None:
            self._drop("not_ethernet", f"hardware type {packet.htype}/{packet.hlen}", listener, source, packet)
            return
        vendor = packet.vendor_class
        arches = packet.client_arches
        stage = stage_for(vendor, packet.user_classes, OPT_IPXE in packet.options) if vendor else None
        if stage is None or not arches:
            self._drop("not_pxe", f"vendor class {vendor!r}, architecture {arches}: not a PXE or HTTP "
                       "boot client", listener, source, packet)
            return
        arch = arch_for(arches[0])
        if arch is None:
            self._drop("unsupported_arch", f"architecture type {arches[0]} has no boot method",
                       listener, source, packet)
            return
        # keyed by transaction too: anyone can send a victim's MAC, so a bucket per MAC alone would let a
        # spoofer silence the victim; its own transactions (xid, relay) have buckets of their own
        allowed, dropped = self.limiter.allow(data[24:34] + data[4:8])  # giaddr, MAC, xid as they came
        if not allowed:
            UNANSWERED.inc("rate_limited")
            if dropped == 1:  # one line per run of drops, so a flooding client cannot flood the log
                log.debug("unanswered %s on %s:%d: rate limited (further drops are counted, not logged)",
                          mac, listener.interface, listener.port)
            return
        if len(self._tasks) >= self.max_in_flight:
            self._drop("overloaded", f"{len(self._tasks)} requests already in flight", listener, source, packet)
            return
        request = BootRequest(mac, arch, stage, packet.client_uuid, client_address(packet, source),  # positional:
                              relay_address(packet), listener.interface)  # mac, arch, stage, uuid, client, relay, interface
        self._start(self._answer(listener, data, packet, kind, request, arches[0], vendor, source))

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run the answer at once, as far as it gets without waiting. Most answers never wait (the
        store answers a known machine from the loop thread), so they finish here and cost no Task
        (one per answer was a sixth of the proxy's CPU); an answer that must wait for the store is
        handed, where it stopped, to a Task that carries it on."""
        assert self._loop is not None
        try:
            waiting_for = coro.send(None)
        except StopIteration:
            return
        task = self._loop.create_task(_carry_on(coro, waiting_for))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _task: _cancel_unfinished(coro, waiting_for))

    async def _answer(self, listener: _Listener, data: bytes, packet: Packet, kind: int, request: BootRequest,
                      arch_code: int, vendor: str, source: Any) -> None:
        try:
            result = await self.runtime.dhcp_answer(request, arch_code, vendor, listener.address)
            if isinstance(result, Silence):
                if result.notice:
                    log.info("not answering %s on %s: %s", request.mac, listener.interface, result.reason)
                self._drop("policy", result.reason, listener, source, packet)
                return
            reply = self._templates.reply(packet, data, result, kind, self.floating_address or listener.address)
            target = destination(packet, listener.port, source)
            # straight to the socket: Twisted's write() re-validates the address, a sixth of the CPU
            if listener.port == PXE_PORT and self.floating_address:
                send_from(listener.socket, reply, target, self.floating_address)
            else:
                listener.socket.sendto(reply, target)
            REPLIES.inc(_REPLY_KINDS[kind])
            event = "dhcp.offer" if kind == OFFER else "dhcp.ack"
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s to %s (%s, %s) on %s:%d -> %s:%d: %s", event, request.mac, request.arch,
                          request.stage.value, listener.interface, listener.port, target[0], target[1],
                          result.boot_file)
            await self.runtime.observe(request, event, {
                "arch": request.arch, "firmware": request.firmware, "stage": request.stage.value,
                "interface": listener.interface, "port": listener.port, "file": result.boot_file,
                "method": result.method}, source=request.client_ip)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("proxyDHCP failed on a packet from %s on %s", request.mac, listener.interface)
            self._drop("error", "internal error (logged above)", listener, source, packet)

