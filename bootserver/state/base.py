"""The `Store` interface: everything outside `state/` sees only this.

Machines are keyed by normalised MAC. Each has a lifecycle state (see boot.lifecycle), a secret
token the installer uses to post events, facts learnt from the network, and a bounded timeline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class MachineRecord:
    mac: str
    state: str  # discovered | ready | installing | installed | failed
    token: str
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


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def get(self, mac: str) -> MachineRecord | None: ...

    async def ensure(self, mac: str, *, state: str, **facts: Any) -> MachineRecord:
        """Return the machine, creating it in `state` if new; updates facts and last_seen."""

    async def set_state(self, mac: str, state: str) -> MachineRecord: ...

    async def record(self, event: Event) -> None: ...

    async def events(self, mac: str, limit: int = 100) -> list[Event]: ...

    async def machines(self) -> list[MachineRecord]: ...

    async def forget(self, mac: str) -> bool: ...
