"""Facts worth keeping about a machine seen on the network, including its NIC vendor (OUI)."""

from __future__ import annotations

import functools
import re
from typing import Any

import netaddr

from bootserver.boot.request import BootRequest

LOCALLY_ADMINISTERED = "locally administered"
_NORMALISED = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")  # how every BootRequest spells its MAC


@functools.lru_cache(maxsize=4096)
def _vendor_of_oui(oui: int) -> str | None:
    try:
        registration = netaddr.OUI(oui).registration()
    except (netaddr.NotRegisteredError, IndexError, ValueError):
        return None
    return str(registration.org).strip() or None


def vendor_of(mac: str) -> str | None:
    """The NIC vendor registered for the MAC's OUI; "locally administered" for such MACs (QEMU's
    52:54:00, containers); None when the OUI is not in netaddr's registry or the MAC is bad."""
    if isinstance(mac, str) and _NORMALISED.fullmatch(mac):  # no netaddr parse: every new MAC's DISCOVER asks
        return _vendor_of_prefix(mac[:8])
    try:
        oui = int(netaddr.EUI(mac)) >> 24
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return None
    return LOCALLY_ADMINISTERED if oui & 0x020000 else _vendor_of_oui(oui)


@functools.lru_cache(maxsize=4096)
def _vendor_of_prefix(prefix: str) -> str | None:
    """vendor_of for a normalised MAC's first three octets (`52:54:00`)."""
    oui = int(prefix.replace(":", ""), 16)
    return LOCALLY_ADMINISTERED if oui & 0x020000 else _vendor_of_oui(oui)


def facts_from(request: BootRequest) -> dict[str, Any]:
    """Keyword facts for `Store.ensure` from a boot request (None values keep what is known)."""
    return {"arch": request.arch, "uuid": request.uuid, "interface": request.interface,
            "client_ip": request.client_ip, "vendor": vendor_of(request.mac)}
