"""Facts worth keeping about a machine seen on the network, including its NIC vendor (OUI)."""

from __future__ import annotations

import functools
from typing import Any

import netaddr

from bootserver.boot.request import BootRequest

LOCALLY_ADMINISTERED = "locally administered"


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
    try:
        eui = netaddr.EUI(mac)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return None
    if eui.words[0] & 0x02:
        return LOCALLY_ADMINISTERED
    return _vendor_of_oui(int(eui) >> 24)


def facts_from(request: BootRequest) -> dict[str, Any]:
    """Keyword facts for `Store.ensure` from a boot request (None values keep what is known)."""
    return dict(arch=request.arch, uuid=request.uuid, interface=request.interface,
                client_ip=request.client_ip, vendor=vendor_of(request.mac))
