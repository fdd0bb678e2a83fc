"""The one object every component shares: settings, the current catalog, the store, and the
boot policy wired to them. Protocol adapters call `decide` and `observe`; nothing else."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

from bootserver.boot import lifecycle
from bootserver.boot.request import BootRequest
from bootserver.catalog.matching import Match, match
from bootserver.catalog.model import Catalog
from bootserver.config import Settings
from bootserver.omaha.codec import AppAnswer, OmahaApp
from bootserver.state import discovery
from bootserver.state.base import Event, MachineRecord, Store, StoreUnavailable
from bootserver.update_service import UpdateService

log = logging.getLogger("bootserver.boot")
LAST_SEEN_RESOLUTION = 60.0  # seconds: a machine's last_seen is refreshed at most this often


def _unchanged(record: MachineRecord, names: dict[str, Any], facts: dict[str, Any]) -> bool:
    """True when `ensure` would only bump last_seen, and that was done recently."""
    if time.time() - record.last_seen > LAST_SEEN_RESOLUTION:
        return False
    wanted = {**names, **{k: v for k, v in facts.items() if v is not None}}
    return all(getattr(record, key) == value for key, value in wanted.items())


class Runtime:
    def __init__(self, settings: Settings, catalog: Catalog, store: Store) -> None:
        self.settings = settings
        self.catalog = catalog
        self.store = store
        self.last_reload_error: str | None = None
        self.components: dict[str, bool] = {}  # name -> running, for /healthz
        self.http_port: int | None = None  # the bound port, once HTTP is listening
        self._ip_to_mac: OrderedDict[str, str] = OrderedDict()
        self._pending: set[asyncio.Task] = set()  # timeline writes nobody waits for (see observe)
        self._updates = UpdateService(self)

    def match(self, request: BootRequest) -> Match | None:
        fallback = self.settings.unknown_profile if self.settings.unknown_machines == "discover" else None
        return match(self.catalog, request, fallback)

    async def decide(self, request: BootRequest) -> lifecycle.BootDecision:
        """Match, bring the machine's record up to date, and decide what it gets."""
        found = self.match(request)
        if request.client_ip:
            self.remember_ip(request.client_ip, request.mac)
        if found is None and self.settings.unknown_machines == "ignore":
            return lifecycle.decide(request, None, None, self.settings)
        record, answered = None, False
        try:
            record = await self.store.get(request.mac)
            answered = True  # the store knows whether this machine is new
            record = await self._remember(request, found, record)
        except StoreUnavailable as exc:  # decide from the last known record, else the catalog alone
            log.warning("machine %s: %s; deciding from %s", request.mac, exc,
                        "its last known record" if record else "the catalog alone")
            return lifecycle.decide(request, found, record, self.settings, store_ok=answered)
        return lifecycle.decide(request, found, record, self.settings)

    async def _remember(self, request: BootRequest, found: Match | None,
                        record: MachineRecord | None) -> MachineRecord:
        """Create or refresh the machine's record: facts, last seen, discovered -> ready on adoption."""
        target = lifecycle.state_when_seen(found, record)
        names: dict[str, Any] = {}
        if found is not None:
            names["profile"] = found.profile.name
            if not lifecycle.is_fallback(found):
                names["name"] = found.name
        facts = discovery.facts_from(request)
        if record is not None and target is None and _unchanged(record, names, facts):
            return record  # nothing new to write: keep the hot path to one read
        updated = await self.store.ensure(request.mac, state=target or lifecycle.READY, **names, **facts)
        if record is None and target == lifecycle.DISCOVERED:
            log.info("discovered unknown machine %s arch=%s uuid=%s vendor=%s via %s", request.mac, request.arch,
                     request.uuid, updated.vendor, request.interface or request.client_ip)
            await self.store.record(Event(request.mac, "discovered", request.client_ip,
                                          {"arch": request.arch, "uuid": request.uuid, "vendor": updated.vendor,
                                           "interface": request.interface}))
        elif record is None:
            log.info("machine %s (%s) first seen, matched %s", found.name, request.mac, found.why)
        elif target is not None and updated.state != target:
            updated = await self.store.set_state(request.mac, target)
            log.info("machine %s (%s): %s -> %s, matched %s", found.name, request.mac, record.state, target,
                     found.why)
        return updated

    async def observe(self, who: BootRequest | str, kind: str, detail: dict[str, Any] | None = None,
                      source: str | None = None) -> None:
        """Record a timeline event for a machine (by request or MAC) and apply lifecycle transitions.

        An event that moves the machine to another state is awaited until it is durable, and with
        the store unreachable it raises StoreUnavailable for installer reports, so the installer is
        told to try again instead of an install being forgotten. Every other event (most of the
        timeline) is queued in order without holding up the answer to the machine.
        """
        mac = who.mac if isinstance(who, BootRequest) else who
        if source is None and isinstance(who, BootRequest):
            source = who.client_ip
        event = Event(mac, kind, source, detail or {})
        try:
            record, new_state = None, None
            if lifecycle.can_change_state(kind, detail):
                record = await self.store.get(mac)
                if record is not None:
                    profile = self.catalog.profiles.get(record.profile or "")
                    new_state = lifecycle.next_state(record.state, kind,
                                                     profile.after_install if profile else None, detail)
            if new_state is None or new_state == record.state:
                self._record_later(event)
                return
            await self.flush()  # keep the timeline in the order things happened
            await self.store.record(event)
            await self.store.set_state(mac, new_state)
            log.info("machine %s (%s): %s -> %s after %s", record.name or "unknown", mac, record.state,
                     new_state, kind)
        except StoreUnavailable as exc:
            if kind in lifecycle.TRANSITIONS:
                raise
            log.warning("machine %s: %s event not applied: %s", mac, kind, exc)

    def _record_later(self, event: Event) -> None:
        record_later = getattr(self.store, "record_later", None)
        if record_later is None:  # no queue in this store: a task keeps the answer from waiting
            task = asyncio.get_running_loop().create_task(self._record_quietly(event))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return
        try:
            record_later(event)
        except Exception as exc:  # never fail a boot for the timeline
            log.warning("machine %s: %s event not recorded: %s", event.mac, event.kind, exc)

    async def _record_quietly(self, event: Event) -> None:
        try:
            await self.store.record(event)
        except Exception as exc:  # the store logs and buffers outages; never fail a boot for the timeline
            log.warning("machine %s: %s event not recorded: %s", event.mac, event.kind, exc)

    async def flush(self) -> None:
        """Wait for timeline writes still in flight (called before the store closes)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def update_check(self, app: OmahaApp, client_ip: str | None, base_url: str) -> AppAnswer:
        """Answer one app of an Omaha request from update_engine: record its events and version,
        and offer the update its catalog entry's policy allows (see update_service)."""
        return await self._updates.check(app, client_ip, base_url)

    async def updates_status(self) -> dict[str, Any]:
        """Every rollout (policy, target, machines updating) and every machine's update state."""
        return await self._updates.status()

    async def updates_pause(self, rollout: str | None, paused: bool) -> dict[str, Any]:
        """Pause or resume one rollout ("group/NAME", "profile/NAME") or, with None, all of them."""
        return await self._updates.pause(rollout, paused)

    def advertise_url(self, local_ip: str | None = None) -> str:
        """The HTTP base URL to give a machine that reached us at `local_ip` (DHCP, TFTP)."""
        return self.settings.effective_advertise_url(local_ip, self.http_port)

    def remember_ip(self, ip: str, mac: str, limit: int = 65536) -> None:
        """Map a client address to its MAC (learnt from DHCP/HTTP) so TFTP can name the machine."""
        self._ip_to_mac[ip] = mac
        self._ip_to_mac.move_to_end(ip)
        if len(self._ip_to_mac) > limit:
            self._ip_to_mac.popitem(last=False)

    def mac_for_ip(self, ip: str) -> str | None:
        return self._ip_to_mac.get(ip)
