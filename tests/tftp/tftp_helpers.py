"""Helpers shared by the TFTP tests: run real clients, and a raw-socket client for protocol edges."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import struct
from pathlib import Path

CLIENT_MAC = "52:54:00:12:34:56"  # what DHCP taught the runtime about 127.0.0.1


async def transfers(runtime, mac: str = CLIENT_MAC) -> list[dict]:
    """The details of the tftp.transfer events recorded for `mac`, oldest first."""
    return [e.detail for e in await runtime.store.events(mac) if e.kind == "tftp.transfer"]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


async def run(*cmd: str, timeout: float = 60) -> tuple[int, str]:
    """Run a client while the loop keeps serving; returns (exit code, stdout+stderr)."""
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode, out.decode(errors="replace")


def rrq(filename: str | bytes, mode: bytes = b"octet", opcode: int = 1, **options) -> bytes:
    name = filename.encode() if isinstance(filename, str) else filename
    packet = struct.pack("!H", opcode) + name + b"\0" + mode + b"\0"
    for key, value in options.items():
        packet += key.encode() + b"\0" + str(value).encode() + b"\0"
    return packet


def ack(block: int) -> bytes:
    return struct.pack("!HH", 4, block & 0xFFFF)


def counter(metric, *labels) -> float:
    """A Prometheus counter's current value (of one label set)."""
    return (metric.labels(*labels) if labels else metric)._value.get()


class RawClient:
    """A UDP socket on the test's loop, for the packets no real client sends."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.loop = asyncio.get_running_loop()

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sock.sendto(data, addr)

    async def recv(self, timeout: float = 2.0) -> tuple[bytes, tuple[str, int]]:
        return await asyncio.wait_for(self.loop.sock_recvfrom(self.sock, 70000), timeout)

    async def recv_none(self, within: float) -> None:
        """Assert nothing arrives within `within` seconds."""
        try:
            data, _ = await self.recv(within)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"unexpected packet {data[:16]!r}")

    def close(self) -> None:
        self.sock.close()


def parse_error(packet: bytes) -> tuple[int, str]:
    opcode, code = struct.unpack("!HH", packet[:4])
    assert opcode == 5, f"expected an ERROR packet, got opcode {opcode}"
    return code, packet[4:].rstrip(b"\0").decode()


def parse_oack(packet: bytes) -> dict[str, str]:
    assert packet[:2] == b"\0\x06", f"expected an OACK, got {packet[:4]!r}"
    fields = packet[2:].split(b"\0")[:-1]
    return {fields[i].decode(): fields[i + 1].decode() for i in range(0, len(fields), 2)}
