"""Helpers for the DHCP tests: the firmware captures, a Runtime built on MemoryStore, network namespaces.

Netns tests run the proxy in this process: `inside(ns)` moves the calling thread into a namespace
(setns) just while sockets are created, so the proxy's sockets live in the server namespace and the
test client's in the client namespace, and both are driven by the one asyncio loop.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import secrets
import socket
import subprocess
from contextlib import contextmanager
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from bootserver.config import Settings
from bootserver.dhcp import packet as P
from bootserver.dhcp.pcap import read_udp
from bootserver.catalog.loader import load_catalog
from bootserver.runtime import Runtime
from bootserver.state.memory import MemoryStore

REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    local = REPO.parent / "shared"
    return local if (local / "fixtures" / "dhcp").is_dir() else Path("/work/shared")


FIXTURES = sorted((shared_dir() / "fixtures" / "dhcp").glob("*.pcap"))
SERVER_IP = "10.77.0.3"  # the proxy's address in the captures; the test namespaces reuse it
PEER_DHCP_IP = "10.77.0.2"  # the ordinary DHCP server in the captures


def fixture_datagrams():
    """(capture name, datagram) for every UDP datagram of every capture."""
    return [(path.name.split(".")[0], d) for path in FIXTURES for d in read_udp(path)]


# -- a real Runtime over a catalog of the capture machines -----------------------------------------

PROFILE = """\
apiVersion: bootserver/v1
kind: Profile
metadata: {name: install}
spec:
  boot: {kernel: "http://10.77.0.3:8080/assets/vmlinuz", args: [console=ttyS0]}
  after_install: local-disk
"""


def make_runtime(settings: Settings, known: set[str] = frozenset()) -> Runtime:
    """bootserver's Runtime over a memory store and a catalog naming the `known` MACs."""
    docs = [PROFILE] + [f"---\napiVersion: bootserver/v1\nkind: Machine\nmetadata: {{name: m{i}}}\n"
                        f"spec: {{mac: \"{mac}\", profile: install}}\n" for i, mac in enumerate(sorted(known))]
    with tempfile.TemporaryDirectory(prefix="bsdh-catalog-") as root:
        Path(root, "catalog.yaml").write_text("".join(docs))
        catalog = load_catalog(root)
    return Runtime(settings, catalog, MemoryStore())


async def set_installed(runtime: Runtime, mac: str) -> None:
    await runtime.store.ensure(mac, state="ready")
    await runtime.store.set_state(mac, "installed")


# -- network namespaces -----------------------------------------------------------------------------

_CLONE_NEWNET = 0x40000000
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Python 3.11 lacks the name
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextmanager
def inside(ns: str):
    """Run the block (this thread only) in network namespace `ns`."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        _setns(target)
        yield
    finally:
        _setns(own)
        os.close(own)
        os.close(target)


def sh(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Link:
    """Two namespaces joined by a veth pair: the proxy's side and the clients' side."""

    server_ns: str
    client_ns: str
    server_if: str
    client_if: str
    server_ip: str = SERVER_IP
    client_ips: tuple[str, ...] = ("10.77.0.146", "10.77.0.162", "10.77.0.141")


@contextmanager
def veth_link(server_ips=(SERVER_IP,)):
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    tag = secrets.token_hex(3)
    link = Link(f"bsdh-{tag}-srv", f"bsdh-{tag}-cli", f"bsdh{tag}s", f"bsdh{tag}c")
    try:
        sh("ip", "netns", "add", link.server_ns)
        sh("ip", "netns", "add", link.client_ns)
        sh("ip", "-n", link.server_ns, "link", "add", link.server_if, "type", "veth",
           "peer", "name", link.client_if, "netns", link.client_ns)
        for ip in server_ips:
            sh("ip", "-n", link.server_ns, "addr", "add", f"{ip}/24", "dev", link.server_if)
        for ip in link.client_ips:
            sh("ip", "-n", link.client_ns, "addr", "add", f"{ip}/24", "dev", link.client_if)
        for ns, dev in ((link.server_ns, link.server_if), (link.client_ns, link.client_if)):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        yield link
    finally:
        for ns in (link.server_ns, link.client_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


class Client:
    """A UDP socket in the client namespace that reports each reply's destination address."""

    def __init__(self, link: Link, bind: tuple[str, int], device: bool = True) -> None:
        with inside(link.client_ns):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            if device:
                self.sock.setsockopt(socket.SOL_SOCKET, 25, link.client_if.encode())
            self.sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            self.sock.bind(bind)
            self.sock.setblocking(False)

    def send(self, data: bytes, to: tuple[str, int]) -> None:
        self.sock.sendto(data, to)

    async def recv(self, timeout: float = 1.0):
        """(payload, source, destination address) of the next datagram, or None after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                data, anc, _flags, src = self.sock.recvmsg(65535, 256)
            except BlockingIOError:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                ready = loop.create_future()
                loop.add_reader(self.sock.fileno(), lambda: ready.done() or ready.set_result(None))
                try:
                    await asyncio.wait_for(ready, remaining)
                except asyncio.TimeoutError:
                    return None
                finally:
                    loop.remove_reader(self.sock.fileno())
                continue
            dst = None
            for level, kind, value in anc:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                    dst = socket.inet_ntoa(value[8:12])  # struct in_pktinfo: ifindex, spec_dst, addr
            return data, src, dst

    async def drain(self, quiet: float = 0.2) -> list:
        out = []
        while (got := await self.recv(quiet)) is not None:
            out.append(got)
        return out

    def close(self) -> None:
        self.sock.close()


def capture_discover(capture: str, ipxe: bool) -> P.Packet:
    """The first DISCOVER in capture `capture` sent by iPXE (option 175) or, with ipxe=False, by the
    firmware's own PXE: the tests' stand-in for a real machine's first packet."""
    for name, d in fixture_datagrams():
        if name == capture:
            p = P.decode(d.payload)
            if p.message_type == P.DISCOVER and (P.OPT_IPXE in p.options) == ipxe:
                return p
    raise AssertionError(f"no {'iPXE' if ipxe else 'firmware'} DISCOVER in capture {capture}")
