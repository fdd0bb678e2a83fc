"""A TFTP load client for the benchmarks: many concurrent reads in one process, windowsize-capable.

Why not curl or atftp: 100 forked clients on a 2-core machine measure fork/exec as much as the
server, curl has no windowsize, and neither can add round-trip time. This client is one process
with one `selectors` loop; every transfer is checked byte for byte (sha256) against the expected
digest. `--ack-delay` holds every ACK (and the request) back for that long: with TFTP's lock-step
windows that is exactly an added round-trip time, which stands in for `tc netem delay` on kernels
without netem.

    python -m bench.tftp_client --server 127.0.0.1:69 --file f1m --count 100 --sha256 HEX
prints one JSON line: {"ok": n, "failed": n, "bytes": n, "wall": seconds, "errors": [...]}
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import selectors
import socket
import struct
import time

_ACK = struct.Struct("!HH")


class Transfer:
    def __init__(self, server: tuple[str, int], filename: str, blksize: int, windowsize: int,
                 timeout: float) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.server = server
        options = b"blksize\0%d\0" % blksize
        if windowsize > 1:
            options += b"windowsize\0%d\0" % windowsize
        self.request = b"\0\x01" + filename.encode() + b"\0octet\0" + options
        self.blksize = 512  # until an OACK says otherwise
        self.windowsize = 1
        self.asked_blksize = blksize
        self.asked_windowsize = windowsize
        self.timeout = timeout
        self.expected = 1  # next block number (absolute)
        self.since_ack = 0
        self.last_ack = b""
        self.nacked = 0  # the block we last re-acknowledged after a gap, to do it once
        self.hash = hashlib.sha256()
        self.size = 0
        self.peer: tuple[str, int] | None = None
        self.done = False
        self.complete = False  # last block received; done once its ACK is sent
        self.error: str | None = None
        self.deadline = 0.0
        self.retries = 0


class Client:
    def __init__(self, ack_delay: float) -> None:
        self.sel = selectors.DefaultSelector()
        self.ack_delay = ack_delay
        self.delayed: list[tuple[float, int, Transfer, bytes, tuple | None, bool]] = []
        self.seq = 0
        self.active = 0

    def send(self, t: Transfer, packet: bytes, to: tuple | None = None, final: bool = False) -> None:
        """Send now, or after --ack-delay; `final` ends the transfer once the last ACK is out."""
        if self.ack_delay:
            self.seq += 1
            heapq.heappush(self.delayed, (time.monotonic() + self.ack_delay, self.seq, t, packet, to, final))
            return
        self._send_now(t, packet, to)
        if final:
            self.finish(t)

    @staticmethod
    def _send_now(t: Transfer, packet: bytes, to: tuple | None) -> None:
        if t.done:
            return
        try:
            t.sock.sendto(packet, to or t.peer or t.server)
        except OSError:
            pass  # as if lost; the timeout resends

    def start(self, t: Transfer) -> None:
        self.sel.register(t.sock, selectors.EVENT_READ, t)
        self.active += 1
        t.last_ack = t.request
        t.deadline = time.monotonic() + t.timeout
        self.send(t, t.request, t.server)

    def finish(self, t: Transfer, error: str | None = None) -> None:
        if t.done:
            return
        t.error = error
        self.sel.unregister(t.sock)
        t.done = True
        self.active -= 1
        t.sock.close()

    def ack(self, t: Transfer, block: int, final: bool = False) -> None:
        t.last_ack = _ACK.pack(4, block & 0xFFFF)
        t.since_ack = 0
        self.send(t, t.last_ack, None, final)

    def on_packet(self, t: Transfer, data: bytes, addr: tuple) -> None:
        if t.peer is None:
            t.peer = addr
        elif addr != t.peer:
            return
        opcode = data[1] if len(data) >= 4 else -1
        t.deadline = time.monotonic() + t.timeout
        t.retries = 0
        if opcode == 6 and t.expected == 1:
            fields = data[2:].split(b"\0")[:-1]
            opts = {fields[i].lower(): int(fields[i + 1]) for i in range(0, len(fields) - 1, 2)}
            t.blksize = opts.get(b"blksize", 512)
            t.windowsize = opts.get(b"windowsize", 1)
            self.ack(t, 0)
        elif opcode == 3:
            block = data[2] << 8 | data[3]
            if block != t.expected & 0xFFFF:
                if t.nacked != t.expected:  # a gap or a duplicate: say once where we are
                    t.nacked = t.expected
                    self.ack(t, t.expected - 1)
                return
            payload = data[4:]
            t.hash.update(payload)
            t.size += len(payload)
            t.expected += 1
            t.since_ack += 1
            if len(payload) < t.blksize:
                t.complete = True
                self.ack(t, block, final=True)
                return
            if t.since_ack >= t.windowsize:
                self.ack(t, block)
        elif opcode == 5:
            self.finish(t, "server error: " + data[4:].rstrip(b"\0").decode(errors="replace"))

    def run(self, transfers: list[Transfer], limit: float) -> None:
        for t in transfers:
            self.start(t)
        end = time.monotonic() + limit
        while self.active or self.delayed:
            now = time.monotonic()
            if now > end:
                for t in transfers:
                    self.finish(t, "benchmark time limit")
                break
            while self.delayed and self.delayed[0][0] <= now:
                _, _, t, packet, to, final = heapq.heappop(self.delayed)
                self._send_now(t, packet, to)
                if final:
                    self.finish(t)
            wait = 0.05
            if self.delayed:
                wait = max(0.0, min(wait, self.delayed[0][0] - now))
            for key, _ in self.sel.select(wait):
                t = key.data
                while not t.done:
                    try:
                        data, addr = t.sock.recvfrom(70000)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError as exc:
                        self.finish(t, f"receive: {exc}")
                        break
                    self.on_packet(t, data, addr)
            now = time.monotonic()
            for t in transfers:
                if not t.done and not t.complete and now > t.deadline:
                    t.retries += 1
                    if t.retries > 5:
                        self.finish(t, "timed out")
                    else:
                        t.deadline = now + t.timeout
                        self.send(t, t.last_ack, None if t.peer else t.server)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tftp_client")
    parser.add_argument("--server", default="127.0.0.1:69")
    parser.add_argument("--file", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--blksize", type=int, default=1468)
    parser.add_argument("--windowsize", type=int, default=1)
    parser.add_argument("--ack-delay", type=float, default=0.0, help="seconds added to every round trip")
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--sha256", help="expected digest of every transfer")
    parser.add_argument("--limit", type=float, default=120.0, help="give up after this many seconds")
    args = parser.parse_args()
    host, port = args.server.rsplit(":", 1)
    transfers = [Transfer((host, int(port)), args.file, args.blksize, args.windowsize, args.timeout)
                 for _ in range(min(args.count, 500))]
    client = Client(args.ack_delay)
    started = time.monotonic()
    client.run(transfers, min(args.limit, 600.0))
    wall = time.monotonic() - started
    errors = [t.error or "digest mismatch" for t in transfers
              if t.error or (args.sha256 and t.hash.hexdigest() != args.sha256)]
    print(json.dumps({"ok": len(transfers) - len(errors), "failed": len(errors),
                      "bytes": sum(t.size for t in transfers if not t.error), "wall": wall,
                      "errors": sorted(set(errors))[:5]}))


if __name__ == "__main__":
    main()
