"""Sending a file's bytes on an HTTP connection with os.sendfile, the system calls in threads.

Each os.sendfile copies as much as the socket's send buffer has room for, and on a local link the
kernel does the receiving side's work within the same call: 0.4-0.8 ms a call. asyncio's
loop.sendfile makes that call on the event loop, once per writable socket per round, so 200
machines fetching kernels made rounds of 100-170 ms (measured: bench storm, a callback timer on
Handle._run), during which DHCP, TFTP, /healthz and every script waited. Here a small thread pool
makes the calls (os.sendfile releases the GIL), several megabytes per hand-off, and the loop only
hands off and waits for slow readers' sockets to be writable.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import Counter

from bootserver.metrics import REGISTRY

BYTES_SENT = Counter("bootserver_http_asset_bytes_sent", "Asset body bytes sent over HTTP", registry=REGISTRY)
CHUNK = 4 << 20  # bytes asked of one os.sendfile (the socket buffer usually takes less)
THREADS = 8
THREAD_WAIT_MS = 20  # a pool thread waits this long for room in a socket buffer before handing back
DRAIN_TIMEOUT = 30.0  # seconds for the response headers to leave before the body goes
NICE = 5  # the pool threads yield a core to the event loop (DHCP, TFTP, every request) when both want one


def _lower_priority() -> None:
    """Each pool thread runs NICE steps below the priority of the thread that started it (Linux nice values are
    per thread and a new thread inherits its creator's): a body's copy can wait a few milliseconds, an answer
    should not wait behind it. Best effort."""
    try:
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + NICE))
    except (OSError, AttributeError):
        pass


_POOL = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="sendfile", initializer=_lower_priority)


class TransferAborted(ConnectionResetError):
    """The client went away mid-transfer; `sent` bytes had gone out."""

    def __init__(self, sent: int, reason: str):
        super().__init__(reason)
        self.sent = sent


def _send(sock_fd: int, fd: int, offset: int, count: int) -> tuple[int, str | None]:
    """In a pool thread: up to `count` bytes, waiting up to THREAD_WAIT for room in the socket
    buffer, so one hand-off moves megabytes. Returns (bytes sent, why it stopped short or None)."""
    poller = select.poll()
    poller.register(sock_fd, select.POLLOUT)
    sent = 0
    while sent < count:
        try:
            n = os.sendfile(sock_fd, fd, offset + sent, count - sent)
        except (BlockingIOError, InterruptedError):
            if not poller.poll(THREAD_WAIT_MS):
                return sent, None  # a slow reader: the loop waits for room, no thread does
            continue
        except OSError as exc:
            return sent, str(exc) or type(exc).__name__
        if n == 0:
            return sent, "file truncated during transfer"  # the Content-Length promised cannot be kept
        sent += n
    return sent, None


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    ready = loop.create_future()
    loop.add_writer(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_writer(fd)


async def _headers_sent(transport: asyncio.Transport) -> None:
    """The headers aiohttp wrote go first: wait until the transport has none left to send."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while transport.get_write_buffer_size():
        if transport.is_closing() or time.monotonic() > deadline:
            raise TransferAborted(0, "connection lost")
        await asyncio.sleep(0.001)


async def sendfile(transport: asyncio.Transport, fd: int, offset: int, count: int) -> int:
    """Send `count` bytes of `fd` from `offset` after the response headers. Returns the bytes sent;
    raises TransferAborted, with the bytes that did go out, when the client hangs up or the file
    shrinks under us. The socket is used through its own duplicate descriptor, so a transport
    closed meanwhile cannot hand its number to another connection under a running call."""
    if transport is None or transport.is_closing():
        raise TransferAborted(0, "connection lost")
    sock = transport.get_extra_info("socket")
    loop = asyncio.get_running_loop()
    transport.pause_reading()  # as loop.sendfile: nothing is read while the body goes out
    sent, sock_fd = 0, -1
    try:
        await _headers_sent(transport)
        sock_fd = os.dup(sock.fileno())
        while sent < count:
            if transport.is_closing():
                raise TransferAborted(sent, "connection lost")
            n, failed = await loop.run_in_executor(_POOL, _send, sock_fd, fd, offset + sent, min(CHUNK, count - sent))
            sent += n
            if failed:
                raise TransferAborted(sent, failed)
            if n == 0:
                await _writable(loop, sock_fd)
        return sent
    finally:
        BYTES_SENT.inc(sent)
        if sock_fd >= 0:
            os.close(sock_fd)
        if not transport.is_closing():
            transport.resume_reading()
