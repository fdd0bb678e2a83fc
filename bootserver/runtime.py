"""The one object every component shares: settings, the current catalog, the store, and the
boot policy wired to them. Protocol adapters call `decide` and `observe`; nothing else."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from bootserver.boot import lifecycle
from bootserver.boot.request import BootRequest
from bootserver.catalog.matching import Match, match
from bootserver.catalog.model import Catalog
from bootserver.config import Settings
from bootserver.state.base import Event, MachineRecord, Store

log = logging.getLogger("bootserver.boot")


class Runtime:
    def __init__(self, settings: Settings, catalog: Catalog, store: Store) -> None:
        self.settings = settings
        self.catalog = catalog
        self.store = store
        self.last_reload_error: str | None = None
        self.components: dict[str, bool] = {}  # name -> running, for /healthz
        self._ip_to_mac: OrderedDict[str, str] = OrderedDict()

    def match(self, request: BootRequest) -> Match | None:
        fallback = self.settings.unknown_profile if self.settings.unknown_machines == "discover" else None
        return match(self.catalog, request, fallback)

    async def decide(self, request: BootRequest) -> lifecycle.BootDecision:
        """Match, bring the machine's record up to date, and decide what it gets."""
        found = self.match(request)
        if request.client_ip:
            self.remember_ip(request.client_ip, request.mac)
        record = await self.store.get(request.mac)
        facts = dict(arch=request.arch, uuid=request.uuid, interface=request.interface,
                     client_ip=request.client_ip)
        if found is None:
            if self.settings.unknown_machines == "discover":
                record = await self._discover(request, record, facts)
        else:
            new = record is None
            record = await self.store.ensure(request.mac, state=lifecycle.READY, name=found.name,
                                             profile=found.profile.name, **facts)
            if record.state == lifecycle.DISCOVERED:
                record = await self.store.set_state(request.mac, lifecycle.READY)
            if new:
                log.info("machine %s (%s) first seen, matched %s", found.name, request.mac, found.why)
        return lifecycle.decide(request, found, record, self.settings)

    async def _discover(self, request: BootRequest, record: MachineRecord | None,
                        facts: dict[str, Any]) -> MachineRecord:
        record_new = record is None
        record = await self.store.ensure(request.mac, state=lifecycle.DISCOVERED, **facts)
        if record_new:
            log.info("discovered unknown machine %s arch=%s uuid=%s via %s", request.mac, request.arch,
                     request.uuid, request.interface or request.client_ip)
            await self.store.record(Event(request.mac, "discovered", request.client_ip,
                                          {"arch": request.arch, "uuid": request.uuid,
                                           "interface": request.interface}))
        return record

    async def observe(self, who: BootRequest | str, kind: str, detail: dict[str, Any] | None = None,
                      source: str | None = None) -> None:
        """Record a timeline event for a machine (by request or MAC) and apply lifecycle transitions."""
        mac = who.mac if isinstance(who, BootRequest) else who
        if source is None and isinstance(who, BootRequest):
            source = who.client_ip
        await self.store.record(Event(mac, kind, source, detail or {}))
        record = await self.store.get(mac)
        if record is None:
            return
        profile = self.catalog.profiles.get(record.profile or "")
        old = record.state
        new_state = lifecycle.next_state(old, kind, profile.after_install if profile else None)
        if new_state and new_state != old:
            await self.store.set_state(mac, new_state)
            log.info("machine %s (%s): %s -> %s after %s", record.name or "unknown", mac, old, new_state, kind)

    def remember_ip(self, ip: str, mac: str, limit: int = 65536) -> None:
        """Map a client address to its MAC (learnt from DHCP/HTTP) so TFTP can name the machine."""
        self._ip_to_mac[ip] = mac
        self._ip_to_mac.move_to_end(ip)
        if len(self._ip_to_mac) > limit:
            self._ip_to_mac.popitem(last=False)

    def mac_for_ip(self, ip: str) -> str | None:
        return self._ip_to_mac.get(ip)
