"""What bootserver knows about one machine: its lifecycle state, its installer token, its timeline.

These are domain types: `boot/` decides with them, `state/` stores them, adapters never see more
than Runtime hands out.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from typing import Any

from bootserver.boot.request import BootRequest, Stage

DISCOVERED, READY, INSTALLING, INSTALLED, FAILED = "discovered", "ready", "installing", "installed", "failed"
STATES = (DISCOVERED, READY, INSTALLING, INSTALLED, FAILED)


@dataclass
class MachineRecord:
    mac: str
    state: str  # one of STATES
    token: str  # the installer's secret for posting events
    name: str | None = None
    profile: str | None = None
    arch: str | None = None
    uuid: str | None = None
    vendor: str | None = None
    interface: str | None = None
    client_ip: str | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0
    state_changed: float = 0.0


@dataclass
class Event:
    mac: str
    kind: str  # e.g. dhcp.offer, dhcp.ack, tftp.transfer, http.ipxe, http.asset, http.ignition, installer.installed
    source: str | None = None  # client address
    detail: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    seq: int | None = None  # store-assigned, increasing; None until recorded
    key: str | None = None  # the sender's idempotency key: a second event with the same key is not kept


def token_matches(record: MachineRecord | None, token: str | None) -> bool:
    """Constant-time check of an installer's token against the machine's (the one place it is compared)."""
    if record is None or not token:
        return False
    return hmac.compare_digest(record.token.encode(), token.encode())


def boot_address_from(request: BootRequest, record: MachineRecord | None) -> bool:
    """Whether this request may set the machine's boot address (the one its installer token is bound
    to): DHCP and iPXE requests may, while no install is running; the booted OS (/ignition,
    /metadata), which anyone can ask for by MAC, never does."""
    return request.stage is not Stage.OS and (record is None or record.state != INSTALLING)


def ignition_access(record: MachineRecord | None, request: BootRequest, strict: bool) -> tuple[bool, str, str | None]:
    """May this request have the machine's Ignition config, and does fetching it start the install?
    (allowed, event kind to record, why it is not the machine's own request or None).

    The machine's own request comes from the address it booted from (DHCP/iPXE). Another address is
    served (relays, NAT and address changes exist) but starts nothing, unless `strict`
    (strict_machine_address) refuses it, and refuses machines that have not booted yet."""
    booted_from = record.client_ip if record is not None else None
    if booted_from is not None and request.client_ip == booted_from:
        return True, "http.ignition", None
    why = (f"from {request.client_ip}, not the address it booted from ({booted_from})" if booted_from
           else f"from {request.client_ip} before the machine booted through bootserver")
    return not strict, "http.ignition.foreign", why
