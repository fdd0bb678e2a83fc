"""Why the TFTP data path uses raw sockets with loop.add_reader, not asyncio DatagramProtocol.

Both variants answer each 4-byte ACK with one DATA packet (4-byte header + 1468 bytes sliced from
an mmap-like buffer), on an asyncio loop in a child process. A blocking client plays lock-step
windowsize 1. Printed: round trips per second and the server's CPU microseconds per round trip.

    python -m bench.loop_io [round_trips]
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import struct
import sys
import time

BLKSIZE = 1468
HEADER = struct.Struct("!HH").pack


def _serve_protocol(port_queue, n: int) -> None:
    data = memoryview(os.urandom(BLKSIZE * 64))

    class Proto(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport, self.count = transport, 0

        def datagram_received(self, packet, addr):
            block = (packet[2] << 8 | packet[3]) + 1
            offset = (block % 64) * BLKSIZE
            self.transport.sendto(HEADER(3, block & 0xFFFF) + data[offset:offset + BLKSIZE], addr)
            self.count += 1
            if self.count == n:
                done.set_result(None)

    async def main():
        global done
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        transport, _ = await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", 0))
        port_queue.put(transport.get_extra_info("sockname")[1])
        cpu = time.process_time()
        await done
        port_queue.put(time.process_time() - cpu)
        transport.close()

    asyncio.run(main())


def _serve_raw(port_queue, n: int) -> None:
    data = memoryview(os.urandom(BLKSIZE * 64))

    async def main():
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        port_queue.put(sock.getsockname()[1])
        _, peer = await loop.sock_recvfrom(sock, 16)  # the client's hello
        sock.connect(peer)
        count = 0

        def readable():
            nonlocal count
            packet = sock.recv(516)
            block = (packet[2] << 8 | packet[3]) + 1
            offset = (block % 64) * BLKSIZE
            sock.sendmsg((HEADER(3, block & 0xFFFF), data[offset:offset + BLKSIZE]))
            count += 1
            if count == n:
                done.set_result(None)

        sock.send(b"ready")
        loop.add_reader(sock.fileno(), readable)
        cpu = time.process_time()
        await done
        port_queue.put(time.process_time() - cpu)
        loop.remove_reader(sock.fileno())
        sock.close()

    asyncio.run(main())


def measure(target, n: int) -> tuple[float, float]:
    queue = multiprocessing.Queue()
    proc = multiprocessing.Process(target=target, args=(queue, n))
    proc.start()
    port = queue.get(timeout=10)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(5)
    client.connect(("127.0.0.1", port))
    if target is _serve_raw:
        client.send(b"hello")
        client.recv(16)
    started = time.perf_counter()
    ack = 0
    for _ in range(n):
        client.send(struct.pack("!HH", 4, ack & 0xFFFF))
        ack = struct.unpack("!H", client.recv(2048)[2:4])[0]
    wall = time.perf_counter() - started
    cpu = queue.get(timeout=10)
    proc.join(10)
    client.close()
    return n / wall, cpu / n * 1e6


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30000
    for _ in range(2):  # alternate, twice
        for name, target in (("DatagramProtocol + sendto(bytes)", _serve_protocol),
                             ("raw socket + add_reader + sendmsg", _serve_raw)):
            rate, cpu = measure(target, n)
            print(f"{name:<36} {rate:>9.0f} round trips/s  {cpu:>6.1f} us server CPU per round trip")
