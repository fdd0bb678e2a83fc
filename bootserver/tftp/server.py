"""The TFTP component: read-only serving of iPXE binaries and generated files on the shared loop.

One listening socket receives requests (with IP_PKTINFO, so each transfer answers from the address
the client asked and its block size fits that interface's MTU), read in bursts (a rack booting at
once is not held one request per loop round). Each transfer gets its own connected, non-blocking
socket (session.py); they are all in one epoll of the server's, watched by the loop: one loop
callback answers every ACK that arrived, without a loop handle per packet. One periodic sweep
drives every retransmission. Raw sockets rather than asyncio DatagramProtocol: the protocol path
allocates a 256 KiB buffer per received datagram (measured in bench/loop_io.py).

A transfer is given up after `retries` retransmissions in a row without an ACK that moves it on:
with the 1 s first timeout doubling up to 8 s, 9 retries is 63 s of silence (tftpd-hpa: 63 s;
dnsmasq: 120 s without progress): a machine starved of CPU for half a minute still finishes.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import time
from typing import Any, Awaitable, Mapping

from bootserver.resources import OncePerSecond
from bootserver.tftp import metrics
from bootserver.boot_files import PathRefused, Root, resolve
from bootserver.tftp.addressing import (IP_PKTINFO, PKTINFO, FileRequest, Generator, blksize_cap, listen_address,
                                        reply_socket)
from bootserver.tftp.files import Lease, MappedFiles
from bootserver.tftp.packets import (
    ERR_ACCESS,
    ERR_NOT_FOUND,
    ERR_UNDEFINED,
    MalformedPacket,
    Request,
    error_packet,
    negotiate,
    oack_packet,
    parse_request,
)
from bootserver.tftp.session import ReadSession

log = logging.getLogger("bootserver.tftp")

DEFAULT_RETRIES = 9  # 1 + 2 + 4 + 7 x 8 = 63 s of silence before a transfer is given up
_REQUESTS_PER_ROUND = 64  # requests read from the listening socket per loop callback
_EVENTS_PER_ROUND = 512  # transfer sockets answered per loop callback (the rest in the next round)
_REQUEST_RCVBUF = 1 << 20  # room for a burst of requests (and their retransmissions) on port 69


class TFTPServer:
    """Read-only TFTP over `settings.ipxe_dir` then each of `settings.tftp_root`.

    `dynamic` maps a file name to an async generator of its bytes (None = not found), checked
    before the folders: e.g. `boot.ipxe` rendered per client by the same code as HTTP.
    """

    def __init__(self, runtime: Any, settings: Any, dynamic: Mapping[str, Generator] | None = None, *,
                 retransmit_timeout: float = 1.0, retries: int = DEFAULT_RETRIES, max_sessions: int = 1000,
                 per_client: int = 8) -> None:
        self.runtime = runtime
        self.settings = settings
        self.dynamic: dict[str, Generator] = dict(dynamic or {})
        self.folders: dict[str, Root] = {}  # name prefix -> folder served under it (see serve_folder)
        self.retransmit_timeout = retransmit_timeout
        self.retries = retries
        self.max_sessions = max_sessions  # each holds a socket: keep the process's descriptors for HTTP
        self.per_client = per_client  # one host cannot hold every session (and renew them forever)
        self._per_ip: dict[str, int] = {}  # client address -> transfers running or being prepared
        self._no_socket = OncePerSecond(log)
        self._full = OncePerSecond(log)
        self._waiting = False  # at max_sessions: requests wait on the socket until a transfer ends
        self.sessions: dict[tuple[str, int], ReadSession] = {}
        self._by_fd: dict[int, ReadSession] = {}  # the same sessions by socket, for the epoll
        self._epoll: select.epoll | None = None
        self.files = MappedFiles()
        self.address: tuple[str, int] | None = None
        self._preparing: dict[tuple[str, int], bytes] = {}  # request being answered by a generator
        self._tasks: set[asyncio.Task] = set()
        self._sock: socket.socket | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._tick = min(0.1, retransmit_timeout / 4)
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def roots(self) -> list[Root]:
        return [Root(str(self.settings.ipxe_dir), confined=False),
                *(Root(str(p)) for p in self.settings.tftp_root)]

    def register(self, name: str, generator: Generator) -> None:
        self.dynamic[name] = generator

    def serve_folder(self, prefix: str, folder: str) -> None:
        """Serve `folder` under the names `prefix…` (also asked with a leading slash, as GRUB does);
        hidden names (a part starting with a dot) are refused there."""
        self.folders[prefix] = Root(folder)

    def _resolve(self, filename: str) -> str | None:
        name = filename.lstrip("/")
        for prefix, root in self.folders.items():
            if name.startswith(prefix):
                rest = name[len(prefix):]
                if any(part.startswith(".") for part in rest.split("/")):
                    raise PathRefused("hidden path")
                return resolve(rest, [root])
        return resolve(filename, self.roots)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        host, port = listen_address(self.settings.tftp)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_IP, IP_PKTINFO, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:  # room for a burst; as root past net.core.rmem_max
                sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), _REQUEST_RCVBUF)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _REQUEST_RCVBUF)
            sock.bind((host, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.address = sock.getsockname()
        self._epoll = select.epoll()
        self._loop.add_reader(self._epoll.fileno(), self._on_transfers)
        self._loop.add_reader(sock.fileno(), self._on_requests)
        log.info("tftp: listening on %s:%d%s, serving %s", *self.address,
                 " (every interface; tftp: ADDRESS:PORT limits it)" if self.address[0] == "0.0.0.0" else "",
                 ", ".join(r.path for r in self.roots))

    async def stop(self) -> None:
        if self._sock is not None:
            if not self._waiting:
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for session in list(self.sessions.values()):
            self._close(session)
        if self._epoll is not None:
            self._loop.remove_reader(self._epoll.fileno())
            self._epoll.close()
            self._epoll = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    # -- requests ---------------------------------------------------------------------------

    def _on_transfers(self) -> None:
        """Every transfer socket with a packet waiting: one callback for all of them."""
        epoll = self._epoll
        if epoll is None:
            return
        by_fd = self._by_fd
        for fd, _events in epoll.poll(0, _EVENTS_PER_ROUND):
            session = by_fd.get(fd)
            if session is not None:
                session.on_readable()

    def _on_requests(self) -> None:
        for i in range(_REQUESTS_PER_ROUND):
            if self._sock is None:
                return
            if len(self.sessions) + len(self._preparing) >= self.max_sessions:
                if i == 0:  # readable: a request waits, and there is no room for it
                    self._wait_for_room()
                return
            if not self._on_request():
                return

    def _wait_for_room(self) -> None:
        """At the limit stop reading requests (as dnsmasq does): they wait on the socket until a
        transfer ends. An error would end the machine's boot."""
        if not self._waiting:
            self._waiting = True
            self._loop.remove_reader(self._sock.fileno())
            metrics.ERRORS.labels("busy").inc()
            self._full.warning("tftp: %d transfers running (the limit): new requests wait", len(self.sessions))

    def _room_again(self) -> None:
        if self._waiting and self._sock is not None and len(self.sessions) + len(self._preparing) < self.max_sessions:
            self._waiting = False
            self._loop.add_reader(self._sock.fileno(), self._on_requests)

    def _on_request(self) -> bool:
        """Read and answer one request; False when none was waiting."""
        try:
            data, ancillary, _flags, peer = self._sock.recvmsg(2048, socket.CMSG_SPACE(PKTINFO.size))
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:  # e.g. an ICMP error queued on the socket
            log.debug("tftp: receive error on the request socket: %s", exc)
            return True
        local_ip, ifindex = self.address[0], 0
        for level, kind, value in ancillary:
            if level == socket.SOL_IP and kind == IP_PKTINFO and len(value) >= PKTINFO.size:
                ifindex, local, _dst = PKTINFO.unpack_from(value)
                local_ip = socket.inet_ntoa(local)  # our address on that interface (also for broadcasts)
        try:
            request = parse_request(data)
        except MalformedPacket as exc:
            metrics.ERRORS.labels("malformed").inc()
            log.debug("tftp: dropped a malformed packet from %s:%d: %s", *peer, exc)
            return True
        running = self.sessions.get(peer)
        if running is not None and running.request == data:
            # A retransmitted request: the transfer already running answers it. Also when it arrives
            # late, after the transfer moved on (a client resends its request when our first answer
            # is slow; both copies can wait on this socket): restarting would move the transfer to a
            # new port while the client's socket is connected to the old one.
            return True
        if self._preparing.get(peer) == data:
            return True
        if running is None and self._preparing.get(peer) is None:
            if self._per_ip.get(peer[0], 0) >= self.per_client:
                self._refuse(peer, local_ip, "client_busy", ERR_UNDEFINED,
                             "too many transfers from your address, try again", None)
                return True
        self._handle(request, peer, local_ip, ifindex)
        return True

    def _handle(self, request: Request, peer: tuple[str, int], local_ip: str, ifindex: int) -> None:
        if request.write:
            self._refuse(peer, local_ip, "write_refused", ERR_ACCESS, "read-only server",
                         f"write request for {request.filename!r} refused")
            return
        if request.mode != "octet":
            self._refuse(peer, local_ip, "bad_mode", ERR_UNDEFINED, "only octet mode is supported",
                         f"{request.mode} mode for {request.filename!r} refused")
            return
        generator = self.dynamic.get(request.filename)
        if generator is not None:
            self._preparing[peer] = request.datagram
            self._count_ip(peer[0], +1)
            self._spawn(self._serve_generated(generator, request, peer, local_ip, ifindex))
            return
        try:
            path = self._resolve(request.filename)
        except PathRefused as exc:
            log.warning("tftp: refused %r from %s:%d: %s", request.filename, *peer, exc)
            self._refuse(peer, local_ip, "access_violation", ERR_ACCESS, "access violation", None)
            return
        if path is None:
            self._refuse(peer, local_ip, "not_found", ERR_NOT_FOUND, None,
                         f"{request.filename!r} not found")
            return
        try:
            lease = self.files.open(path)
        except OSError as exc:
            self._refuse(peer, local_ip, "not_found", ERR_NOT_FOUND, None,
                         f"{request.filename!r} cannot be opened: {exc.strerror}")
            return
        self._open(request, peer, local_ip, ifindex, lease)

    async def _serve_generated(self, generator: Generator, request: Request, peer: tuple[str, int],
                               local_ip: str, ifindex: int) -> None:
        try:
            info = FileRequest(request.filename, peer[0], peer[1], self.runtime.mac_for_ip(peer[0]), local_ip)
            try:
                content = await generator(info)
            except Exception:
                log.exception("tftp: generating %r for %s:%d failed", request.filename, *peer)
                self._refuse(peer, local_ip, "render_failed", ERR_UNDEFINED, "cannot generate file", None)
                return
            if content is None:
                self._refuse(peer, local_ip, "not_found", ERR_NOT_FOUND, None,
                             f"{request.filename!r} not generated for {peer[0]}")
                return
            if self._sock is not None:
                self._open(request, peer, local_ip, ifindex, Lease(memoryview(bytes(content))))
        finally:
            if self._preparing.get(peer) == request.datagram:
                del self._preparing[peer]
                self._count_ip(peer[0], -1)
                self._room_again()

    def _open(self, request: Request, peer: tuple[str, int], local_ip: str, ifindex: int,
              lease: Lease) -> None:
        agreed = negotiate(request.options, len(lease.view), blksize_cap(self.settings.tftp_blksize_max, ifindex))
        # A client's timeout option is honoured as an upper bound: curl asks 6 s, but on a boot
        # network resending a lost block after our own (shorter) timeout costs nothing: duplicate
        # DATA is ignored by every client and duplicate ACKs by us.
        timeout = min(agreed.timeout or self.retransmit_timeout, self.retransmit_timeout)
        try:
            sock = reply_socket(local_ip, peer)
        except OSError as exc:
            lease.release()
            metrics.ERRORS.labels("socket").inc()
            self._no_socket.warning("tftp: no socket for %s:%d (%s): %s", *peer, request.filename, exc)
            return
        running = self.sessions.get(peer)
        if running is not None:
            # Same client port, a new request: the client gave up on the old transfer. (edk2 ends
            # its tsize probe with an ERROR, but its next RRQ may be read before that ERROR.)
            self._finished(running, "probed" if running.base == 0 else "restarted")
        session = ReadSession(self._loop, sock, peer, request.datagram, request.filename, lease, agreed.blksize,
                              agreed.windowsize, timeout,
                              oack_packet(agreed.oack) if agreed.oack else None, self._finished)
        self.sessions[peer] = session
        self._by_fd[session.fd] = session
        self._epoll.register(session.fd, select.EPOLLIN)
        self._count_ip(peer[0], +1)
        metrics.SESSIONS.inc()
        session.start()
        if self._sweeper is None and peer in self.sessions:
            self._sweeper = self._loop.call_later(self._tick, self._sweep)

    def _refuse(self, peer: tuple[str, int], local_ip: str, reason: str, code: int,
                message: str | None, logline: str | None) -> None:
        metrics.ERRORS.labels(reason).inc()
        if logline:
            log.info("tftp: %s:%d: %s", *peer, logline)
        try:
            with reply_socket(local_ip, peer) as sock:
                sock.send(error_packet(code, message))
        except OSError as exc:
            log.debug("tftp: could not send an error to %s:%d: %s", *peer, exc)

    def _count_ip(self, ip: str, delta: int) -> None:
        count = self._per_ip.get(ip, 0) + delta
        if count > 0:
            self._per_ip[ip] = count
        else:
            self._per_ip.pop(ip, None)

    # -- timers and the end of transfers ----------------------------------------------------

    def _sweep(self) -> None:
        now = self._loop.time()
        for session in list(self.sessions.values()):
            if session.progressed(now):
                continue
            if now >= session.deadline and self.sessions.get(session.peer) is session:
                before = session.retransmits
                if session.retransmit(self.retries):
                    metrics.RETRANSMITS.inc(session.retransmits - before)
                elif self.sessions.get(session.peer) is session:
                    try:
                        session.sock.send(error_packet(ERR_UNDEFINED, "timed out"))
                    except OSError:
                        pass
                    self._finished(session, "timeout")
        self._sweeper = self._loop.call_later(self._tick, self._sweep) if self.sessions else None

    def _close(self, session: ReadSession) -> None:
        if self.sessions.get(session.peer) is session:
            del self.sessions[session.peer]
            del self._by_fd[session.fd]
            if self._epoll is not None:
                self._epoll.unregister(session.fd)
            self._count_ip(session.peer[0], -1)
            metrics.SESSIONS.dec()
            session.close()
            self._room_again()

    def _finished(self, session: ReadSession, outcome: str) -> None:
        if self.sessions.get(session.peer) is not session:
            return
        self._close(session)
        duration = time.monotonic() - session.started
        sent = session.acked_bytes
        metrics.TRANSFERS.labels(outcome).inc()
        metrics.BYTES.inc(sent)
        if session.malformed:
            metrics.ERRORS.labels("malformed").inc(session.malformed)
        if outcome == "probed":  # not a transfer: firmware asked for the size (tsize) and stopped
            log.debug("tftp: %s:%d probed %s (%d bytes)", *session.peer, session.filename, session.size)
            return
        if outcome != "complete":
            metrics.ERRORS.labels(outcome).inc()
        log.info("tftp: %s %s to %s:%d: %d of %d bytes, blksize %d, windowsize %d, %.3f s, %d retransmits",
                 outcome, session.filename, *session.peer, sent, session.size, session.blksize,
                 session.windowsize, duration, session.retransmits)
        detail = {"file": session.filename, "outcome": outcome, "bytes": sent, "size": session.size,
                  "blksize": session.blksize, "windowsize": session.windowsize,
                  "duration": round(duration, 6), "retransmits": session.retransmits}
        self._spawn(self._observe(session.peer[0], detail))

    async def _observe(self, client_ip: str, detail: dict) -> None:
        """A machine event when DHCP told the runtime this address's MAC; else only the log line."""
        mac = self.runtime.mac_for_ip(client_ip)
        if mac is None:
            return
        try:
            await self.runtime.observe(mac, "tftp.transfer", detail, source=client_ip)
        except Exception:
            log.exception("tftp: could not record the transfer of %s to %s", detail["file"], mac)

    def _spawn(self, coro: Awaitable) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
