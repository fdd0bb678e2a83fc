"""The lab's network: three namespaces joined by a bridge, named from one prefix.

    <prefix>-sw    the L2 switch: bridge br0, one tap per VM (QEMU runs here), veth ports
    <prefix>-dhcp  eth0 10.77.0.2/24 + fd77::2/64: dnsmasq as the ordinary DHCP server (+ IPv6 RA)
    <prefix>-srv   eth0 10.77.0.3/24: bootserver (proxyDHCP, TFTP, HTTP)

Everything is found again by name, so `down` and the next `up` can remove what an aborted run
left behind. Nothing is configured in the host's namespace.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass

SUBNET = "10.77.0"
DHCP_IP = f"{SUBNET}.2"
SERVER_IP = f"{SUBNET}.3"
DHCP_RANGE = (f"{SUBNET}.100", f"{SUBNET}.199")
IPV6_PREFIX = "fd77::"
BRIDGE = "br0"
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class NetnsError(ValueError):
    pass


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["ip"] + (["-n", netns] if netns else []) + list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    return proc


def in_netns(netns: str, argv: list[str]) -> list[str]:
    """The command line that runs `argv` inside `netns`."""
    return ["ip", "netns", "exec", netns, *argv]


def list_netns() -> list[str]:
    out = ip("netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(netns: str) -> list[int]:
    out = ip("netns", "pids", netns, check=False).stdout
    return [int(p) for p in out.split()]


def remove_namespaces(names: tuple[str, ...], log=print) -> list[str]:
    """Delete the namespaces in `names` that exist, first ending the processes still inside them
    (those were started by an earlier lab run of the same name). Returns the names removed."""
    removed = []
    for name in list_netns():
        if name not in names:
            continue
        pids = netns_pids(name)
        for pid in pids:
            log(f"lab: ending process {pid} in {name}")
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if _alive(p)]
            time.sleep(0.1)
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        ip("netns", "del", name, check=False)
        removed.append(name)
    return removed


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass(frozen=True)
class Topology:
    prefix: str

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.prefix):
            raise NetnsError(f"bad lab name prefix {self.prefix!r}: use lower-case letters, digits and '-'")

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    @property
    def dhcp(self) -> str:
        return f"{self.prefix}-dhcp"

    @property
    def server(self) -> str:
        return f"{self.prefix}-srv"

    @property
    def namespaces(self) -> tuple[str, str, str]:
        return (self.switch, self.dhcp, self.server)

    def exists(self) -> bool:
        return self.switch in list_netns()

    def create(self, ipv6_ra: bool = True) -> None:
        """Create the namespaces, the bridge and the veth links (not the taps: see add_tap)."""
        for ns in self.namespaces:
            ip("netns", "add", ns)
            ip("link", "set", "lo", "up", netns=ns)
            _sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        ip("link", "add", BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0", netns=self.switch)
        ip("link", "set", BRIDGE, "up", netns=self.switch)
        for port, ns, addr in (("vdhcp", self.dhcp, DHCP_IP), ("vsrv", self.server, SERVER_IP)):
            ip("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns, netns=self.switch)
            ip("link", "set", port, "master", BRIDGE, "up", netns=self.switch)
            ip("addr", "add", f"{addr}/24", "dev", "eth0", netns=ns)
            ip("link", "set", "eth0", "up", netns=ns)
        if ipv6_ra:
            # iPXE waits ~15 s for IPv6 router discovery unless a router advertises on the link.
            _sysctl(self.dhcp, "net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.eth0.disable_ipv6=0")
            ip("addr", "add", f"{IPV6_PREFIX}2/64", "dev", "eth0", "nodad", netns=self.dhcp)

    def add_tap(self, name: str) -> str:
        ip("tuntap", "add", "dev", name, "mode", "tap", netns=self.switch)
        ip("link", "set", name, "master", BRIDGE, "up", netns=self.switch)
        return name

    def remove_tap(self, name: str) -> None:
        ip("link", "del", name, netns=self.switch, check=False)

    def destroy(self, log=print) -> list[str]:
        return remove_namespaces(self.namespaces, log=log)


def _sysctl(netns: str, *assignments: str) -> None:
    subprocess.run(in_netns(netns, ["sysctl", "-qw", *assignments]), check=True, capture_output=True)
