"""The transport-free description of one boot step, shared by every protocol adapter.

DHCP, TFTP and HTTP each translate their bytes into a `BootRequest`; matching, lifecycle and
rendering only ever see this type. A leaf: it imports nothing from bootserver.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Mapping

class Stage(str, Enum):
    """Which program is asking: it decides what the answer may contain."""

    PXE = "pxe"  # firmware PXE ROM (BIOS or UEFI): speaks DHCP + TFTP only
    HTTPBOOT = "httpboot"  # UEFI HTTP Boot: DHCP + HTTP, loads an EFI binary
    IPXE = "ipxe"  # iPXE: can fetch scripts over HTTP
    GRUB = "grub"  # GRUB (through shim, or chained for the UEFI local disk): fetches grub.cfg
    OS = "os"  # the booted OS or installer (Ignition fetch, events)


def arch_from_ipxe(buildarch: str | None, platform: str | None) -> str | None:
    """Map iPXE's ${buildarch} and ${platform} to a canonical arch name."""
    if not buildarch and not platform:
        return None
    if platform == "pcbios":
        return "x86_64-bios"
    if platform == "efi":
        return {"x86_64": "x86_64-efi", "i386": "i386-efi", "arm64": "arm64-efi"}.get(buildarch or "")
    return None


NO_LABELS: Mapping[str, str] = MappingProxyType({})  # read-only: one for every request without labels


@dataclass(frozen=True)
class BootRequest:
    mac: str  # normalised: lower-case, colon-separated (see catalog.mac.normalize_mac)
    arch: str | None = None  # one of catalog.model.ARCHES, or None when the client did not say
    stage: Stage = Stage.IPXE
    uuid: str | None = None
    client_ip: str | None = None  # the machine's own address, when it has one
    relay_ip: str | None = None  # DHCP relay (giaddr) that forwarded the request: an address on its subnet
    interface: str | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: NO_LABELS)

    @property
    def subnet_address(self) -> str | None:
        """The address that places the machine in a subnet: its own, else its relay's."""
        return self.client_ip or self.relay_ip

    @property
    def firmware(self) -> str | None:
        """'bios' or 'uefi' (derived from arch)."""
        if self.arch is None:
            return None
        return "bios" if self.arch.endswith("-bios") else "uefi"


def is_loopback(remote: str | None) -> bool:
    """Whether a client address (as a transport reports it, maybe with an IPv6 zone) is this host:
    the admin API and the board trust loopback where they trust nobody else."""
    try:
        return remote is not None and ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
