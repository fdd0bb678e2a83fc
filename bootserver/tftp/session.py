"""One read transfer: the DATA/ACK hot path.

Each session owns a non-blocking UDP socket connected to the client (its transfer ID), so the
kernel drops packets from any other address and no lookup is needed per packet. The server watches
every session's socket in one epoll of its own (server.py) and calls `on_readable()`.

A small file's DATA packets are built once per block size (files.py: `Frames`); in lock-step
(windowsize 1) an ACK is then handled by comparing it with the one ACK we wait for (`want`) and
sending the next prepared packet: no parsing, no packing, no slicing, no clock read. Anything else
(a duplicate or stale ACK, a window, an ERROR, a large file sent from the mmap with
`sendmsg([header, slice])`) takes the general path.

Timeouts are not timers per session, and an ACK does not read the clock: the server's one sweep
sees a session's progress (`base` moved since its last look) and then sets its deadline; past it,
it calls `retransmit()`, and consecutive timeouts back off exponentially.

Block numbers are absolute inside the session and only truncated to 16 bits on the wire, so a
file of more than 65535 blocks rolls over to block 0 (what tftp-hpa, curl, atftp and iPXE expect).
Block 0 stands for the OACK when options were acknowledged.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import TYPE_CHECKING, Callable

from bootserver.tftp.files import Lease

if TYPE_CHECKING:
    import asyncio

_DATA_HEADER = struct.Struct("!HH").pack
_OP_DATA, _OP_ACK, _OP_ERROR = 3, 4, 5
# Consecutive timeouts double the wait (RFC 1123 4.2.3.2 asks for an adaptive timeout), up to 8 s.
# Besides sparing a congested link, a silence longer than 5 s lets a windowed client whose own
# timer is reset by every duplicate DATA (atftp: a fixed 5 s) time out and re-send the ACK we lost.
MAX_INTERVAL = 8.0


class ReadSession:
    __slots__ = ("peer", "request", "filename", "sock", "fd", "lease", "view", "size", "blksize", "windowsize",
                 "timeout", "oack", "last", "base", "sent", "next", "window_end", "deadline", "retries",
                 "retransmits", "malformed", "started", "writing", "mark", "packets", "acks", "want",
                 "_recv", "_sendp", "_loop", "_end")

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, peer: tuple[str, int],
                 request: bytes, filename: str, lease: Lease, blksize: int, windowsize: int, timeout: float,
                 oack: bytes | None, end: Callable[[ReadSession, str], None]) -> None:
        self._loop = loop
        self._end = end  # called once: complete, probed, timeout, client_error, client_gone
        self.sock = sock
        self.fd = sock.fileno()
        self._recv = sock.recv
        self._sendp = sock.send
        self.peer = peer
        self.request = request
        self.filename = filename
        self.lease = lease
        self.view = lease.view
        self.size = len(lease.view)
        self.blksize = blksize
        self.windowsize = windowsize
        self.timeout = timeout
        self.oack = oack
        self.last = self.size // blksize + 1  # a final short (maybe empty) block ends the transfer
        self.base = 0 if oack else 1  # first block not yet acknowledged
        self.sent = self.base - 1  # highest block sent so far
        self.next = self.window_end = self.base
        self.mark = self.base  # `base` when the sweep last looked: a change is progress
        self.deadline = 0.0
        self.retries = 0
        self.retransmits = 0
        self.malformed = 0
        self.started = time.monotonic()
        self.writing = False
        frames = lease.frames(blksize)
        self.packets = frames.packets if frames is not None else None
        self.acks = frames.acks if frames is not None and windowsize == 1 else None  # lock-step fast path
        self.want: bytes | None = None  # the ACK that moves the transfer on, when on the fast path

    @property
    def acked_bytes(self) -> int:
        return min(self.size, max(0, self.base - 1) * self.blksize)

    def start(self) -> None:
        self.deadline = self._loop.time() + self.timeout
        self._send_window()

    def close(self) -> None:
        if self.writing:
            self.writing = False
            self._loop.remove_writer(self.fd)
        self.sock.close()
        self.view = self.packets = self.acks = self.want = None
        self.lease.release()

    def progressed(self, now: float) -> bool:
        """The sweep's look: True (and the deadline restarts) when blocks were acknowledged since the last."""
        if self.base == self.mark:
            return False
        self.mark = self.base
        self.retries = 0
        self.deadline = now + self.timeout
        return True

    def retransmit(self, max_retries: int) -> bool:
        """Called by the sweep past the deadline: resend the window, or say we are out of retries."""
        self.retries += 1
        if self.retries > max_retries:
            return False
        self.retransmits += max(1, min(self.sent, self.window_end) - self.base + 1)
        self.deadline = self._loop.time() + min(self.timeout * (1 << self.retries), max(self.timeout, MAX_INTERVAL))
        self._send_window()
        return True

    def _send_window(self) -> None:
        self.want = None
        if self.base == 0:
            self.window_end = 0
            if self._send(self.oack):
                self.sent = max(self.sent, 0)
                if self.acks is not None:
                    self.want = self.acks[0]
            return
        self.next = self.base
        self.window_end = min(self.base + self.windowsize - 1, self.last)
        self._flush()

    def _flush(self) -> None:
        block, end = self.next, self.window_end
        try:
            if self.packets is not None:
                packets, send = self.packets, self._sendp
                while block <= end:
                    send(packets[block])
                    block += 1
            else:
                size, view, sendmsg = self.blksize, self.view, self.sock.sendmsg
                while block <= end:
                    offset = (block - 1) * size
                    sendmsg((_DATA_HEADER(_OP_DATA, block & 0xFFFF), view[offset:offset + size]))
                    block += 1
        except (BlockingIOError, InterruptedError):
            # Socket buffer full: finish this window when it drains.
            if not self.writing:
                self.writing = True
                self._loop.add_writer(self.fd, self._flush)
        except ConnectionRefusedError:  # ICMP port unreachable: the client went away
            self._end(self, "client_gone")
            return
        except OSError:
            pass  # ENOBUFS, EPERM from a firewall, no route: as if lost; the sweep resends
        else:
            if self.writing:
                self.writing = False
                self._loop.remove_writer(self.fd)
            if self.acks is not None:
                self.want = self.acks[end]
        self.next = block
        if block - 1 > self.sent:
            self.sent = block - 1

    def _send(self, packet: bytes) -> bool:
        try:
            self._sendp(packet)
            return True
        except ConnectionRefusedError:
            self._end(self, "client_gone")
        except OSError:
            pass  # full buffer, firewall, no route: as if lost; the sweep resends it
        return False

    def on_readable(self) -> None:
        try:
            packet = self._recv(516)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionRefusedError:  # ICMP port unreachable: the client went away
            self._end(self, "client_gone")
            return
        except OSError:
            return
        if packet == self.want:  # lock-step: the ACK of the block in flight
            block = self.window_end
            if block == self.last:
                self.base = block + 1
                self._end(self, "complete")
                return
            block += 1
            self.base = self.sent = self.window_end = block
            self.next = block + 1
            try:
                self._sendp(self.packets[block])
            except ConnectionRefusedError:
                self._end(self, "client_gone")
                return
            except OSError:  # a full buffer or a lost send: the general path sorts it out
                self.want = None
                self.next = block
                self.sent = block - 1
                self._flush()
                return
            self.want = self.acks[block]
            return
        self._general(packet)

    def _general(self, packet: bytes) -> None:
        if len(packet) < 4 or packet[0]:
            self.malformed += 1
            return
        opcode = packet[1]
        if opcode == _OP_ACK:
            # How far past the last acknowledged block this ACK reaches, modulo 2**16.
            delta = ((packet[2] << 8 | packet[3]) - self.base + 1) & 0xFFFF
            if delta == 0 or delta > self.sent - self.base + 1:
                return  # duplicate or stale ACK: never answered (no Sorcerer's Apprentice)
            acked = self.base - 1 + delta
            if acked == self.last:
                self.base = acked + 1
                self._end(self, "complete")
                return
            self.base = acked + 1
            self._send_window()
        elif opcode == _OP_ERROR:
            # An error in answer to the OACK is how PXE firmware ends its size probe (tsize).
            self._end(self, "probed" if self.base == 0 else "client_error")
        else:
            self.malformed += 1
