"""The one facade every adapter talks to: intent methods over the settings, the current catalog and
the store. Adapters (dhcp/, tftp/, http/) and the CLI call `decide`, `observe`, `report`,
`machine`, `reinstall` and the like; they never reach the store or the catalog themselves, so the
policy behind each intent lives here once, in front of the pure core (boot/, catalog/, render/).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import OrderedDict
from typing import Any

from bootserver.boot import lifecycle, methods
from bootserver.boot.loaders import loader_for
from bootserver.boot.machine import DISCOVERED, Event, MachineRecord, boot_address_from, ignition_access
from bootserver.boot.matching import Match, named_by_catalog
from bootserver.boot.request import BootRequest
from bootserver.boot.updates import UpdateRecord
from bootserver.catalog.model import Catalog, Profile
from bootserver.changes import TooManySubscribers
from bootserver.config import Settings
from bootserver.installer_reports import INSTALLER_EVENTS, InstallerReports, WrongToken
from bootserver.operator_actions import TRANSITION_ATTEMPTS, NotAdopted, OperatorActions
from bootserver.operator_reads import OperatorReads
from bootserver.omaha.codec import AppAnswer, OmahaApp
from bootserver.render import grub
from bootserver import discovery
from bootserver.answers import Answers
from bootserver.ratelimit import Buckets
from bootserver.resources import OncePerSecond
from bootserver.timeline_fold import RepeatFolder
from bootserver.state.base import AlreadyRecorded, StateChanged, Store, StoreError, StoreUnavailable, UnknownMachine
from bootserver.update_service import UpdateService

#: What adapters may catch from the intent methods (the store's faults, as Runtime passes them on).
__all__ = ["INSTALLER_EVENTS", "NotAdopted", "Runtime", "StateChanged", "StoreError", "StoreUnavailable",
           "TooManySubscribers", "UnknownMachine", "WrongToken"]

log = logging.getLogger("bootserver.boot")
LAST_SEEN_RESOLUTION = 60.0  # seconds: a machine's last_seen is refreshed at most this often


def _unchanged(record: MachineRecord, names: dict[str, Any], facts: dict[str, Any]) -> bool:
    """True when `ensure` would only bump last_seen, and that was done recently."""
    if time.time() - record.last_seen > LAST_SEEN_RESOLUTION:
        return False
    wanted = {**names, **{k: v for k, v in facts.items() if v is not None}}
    return all(getattr(record, key) == value for key, value in wanted.items())


class Runtime(OperatorReads, OperatorActions, InstallerReports):
    def __init__(self, settings: Settings, catalog: Catalog, store: Store) -> None:
        self.settings = settings
        self.catalog = catalog
        self.store = store
        self.last_reload_error: str | None = None
        self.start_live_views()  # also: loaded_at, rejected_at, reload_problems (the board's catalog health)
        self.components: dict[str, bool] = {}  # name -> running, for /healthz
        self.http_port: int | None = None  # the bound port, once HTTP is listening
        self._ip_to_mac: OrderedDict[str, str] = OrderedDict()
        self._advertise_urls: dict[tuple, tuple[Settings, str]] = {}
        self._dhcp_choices: tuple[Settings | None, int | None, dict] = (None, None, {})  # see dhcp_answer
        self._pending: set[asyncio.Task] = set()  # timeline writes nobody waits for (see observe)
        rate = max(1, settings.new_machines_per_second)
        self._new_machines = Buckets(rate, 10 * rate, max_keys=1)  # one bucket: records for unnamed MACs
        self._not_recorded = OncePerSecond(log)
        self._updates = UpdateService(self)
        self._answers = Answers(settings)
        self._repeats = RepeatFolder()  # the same answer again within a second: counted, not written

    # -- the app's side: what changed in the process --------------------------------------------

    def catalog_loaded(self, catalog: Catalog) -> None:
        """A reload produced a valid catalog: serve it from the next request on."""
        self.catalog = catalog
        self.last_reload_error, self.reload_problems, self.loaded_at, self.rejected_at = None, (), time.time(), None

    def catalog_rejected(self, error: str, problems: tuple = ()) -> None:
        """A reload failed validation: keep serving the last good catalog, say why on /healthz."""
        self.last_reload_error, self.reload_problems, self.rejected_at = error, tuple(problems), time.time()

    def component_running(self, name: str, running: bool) -> None:
        self.components[name] = running

    def http_listening(self, port: int) -> None:
        self.http_port = port

    def health(self) -> dict[str, Any]:
        catalog = self.catalog
        return {
            "status": "ok" if all(self.components.values()) else "degraded",
            "catalog": {"generation": catalog.generation, "root": str(catalog.root),
                        "profiles": len(catalog.profiles), "machines": len(catalog.machines),
                        "groups": len(catalog.groups)},
            "last_reload_error": self.last_reload_error,
            "components": dict(self.components),
        }

    # -- boot requests ------------------------------------------------------------------------

    def match(self, request: BootRequest) -> Match | None:
        return self._answers.match(self.catalog, request)

    async def decide(self, request: BootRequest) -> lifecycle.BootDecision:
        """Match, bring the machine's record up to date, and decide what it gets (one read of the record)."""
        record, answered = None, False
        if request.arch is None:  # Ignition, the installer: match as the firmware said over DHCP, so a
            try:  # Group's `arch` selector gives an arm64 machine the same profile all the way
                record, answered = await self.store.get(request.mac), True
            except StoreUnavailable:
                pass
            if record is not None and record.arch:
                request = dataclasses.replace(request, arch=record.arch)
        found = self.match(request)
        if request.client_ip:
            self.remember_ip(request.client_ip, request.mac)
        if found is None and self.settings.unknown_machines == "ignore":
            return lifecycle.decide(None, None, self.settings)
        try:
            if not answered:
                record = await self.store.get(request.mac)
                answered = True  # the store knows whether this machine is new
            if record is None and not named_by_catalog(found) and not self._new_machines.allow():
                self._not_recorded.warning("new machines arrive faster than %d/s: %s and others not recorded "
                                           "or answered now (they will be when they ask again)",
                                           self.settings.new_machines_per_second, request.mac)
                return lifecycle.BootDecision("ignore", "too many new machines at once; ask again", None, None)
            record = await self._remember(request, found, record)
        except StoreUnavailable as exc:  # decide from the last known record, else the catalog alone
            log.warning("machine %s: %s; deciding from %s", request.mac, exc,
                        "its last known record" if record else "the catalog alone")
            return lifecycle.decide(found, record, self.settings, store_ok=answered)
        return lifecycle.decide(found, record, self.settings)

    async def dhcp_answer(self, request: BootRequest, arch_code: int, vendor_class: str,
                          local_ip: str) -> methods.Answer | methods.Silence:
        """What the proxyDHCP tells this client: the boot decision through the boot-method table."""
        decision = await self.decide(request)
        loader = loader_for(decision.match)
        # choose() is pure in these and the settings (the advertised URL follows the settings and HTTP port):
        # one Answer per combination, shared by every machine that gets it
        key = (arch_code, request.stage, vendor_class, decision.action, decision.reason, local_ip, loader)
        settings, port = self.settings, self.http_port
        choices = self._dhcp_choices
        if choices[0] is not settings or choices[1] != port or len(choices[2]) >= 1024:
            choices = self._dhcp_choices = (settings, port, {})
        answer = choices[2].get(key)
        if answer is None:
            answer = choices[2][key] = methods.choose(arch_code, request.stage, vendor_class, decision.action,
                                                      decision.reason, settings, self.advertise_url(local_ip), loader)
        return answer

    async def grub_config(self, request: BootRequest, base: str, server_ip: str,
                          http: tuple[str, int] | None = None) -> str:
        """The GRUB config a machine gets now (TFTP grub/grub.cfg, GET /grub.cfg): the same decision
        as /ipxe. A profile that cannot be rendered is logged and recorded, and the machine is told
        why and handed back to its firmware."""
        decision = await self.decide(request)
        name = decision.match.name if decision.match else "unknown"
        try:
            text = grub.config_for(decision, request, base, decision.record.token if decision.record else None,
                                   server_ip, http)
        except ValueError as exc:  # render.args.ArgError, render.grub.GrubRenderError
            log.error("%s (%s): cannot render GRUB config for profile %s: %s", name, request.mac,
                      decision.match.profile.name, exc)
            await self.observe(request, "render.failed", {"what": "grub", "error": str(exc)})
            return grub.no_boot_config(f"cannot render the boot config: {exc}")
        if await self.observe(request, "grub.config", {
                "action": decision.action, "reason": decision.reason,
                "profile": decision.match.profile.name if decision.match else None}):  # not a repeat (timeline_fold)
            log.info("%s (%s) gets GRUB %s: %s", name, request.mac, decision.action, decision.reason)
        return text

    def ipxe_script(self, decision: lifecycle.BootDecision, request: BootRequest, base: str,
                    server_ip: str | None) -> str:
        """The /ipxe script for a decision (kept, see answers); ArgError or ValueError if it cannot be rendered."""
        return self._answers.ipxe_script(self.catalog, decision, request, base, server_ip)

    async def ignition(self, found: Match, request: BootRequest, stage: str, base: str,
                       token: str | None) -> tuple[Profile, bytes]:
        """The Ignition config a matched machine is served (`stage="final"`: what its installer writes).
        Without the machine's `token` (store unreachable) the config has no events URL. Raises
        LookupError (no such config), ValueError (bad stage) or render.errors.RenderError."""
        return await self._answers.ignition(self.catalog, found, request, stage, base, token)

    async def _remember(self, request: BootRequest, found: Match | None,
                        record: MachineRecord | None) -> MachineRecord:
        """Create or refresh the machine's record: facts, last seen, discovered -> ready on adoption."""
        target = lifecycle.state_when_seen(found, record)
        names: dict[str, Any] = {}
        if found is not None:
            names["profile"] = found.profile.name
            if found.machine is not None:  # a group-matched machine has no name of its own: keep its MAC
                names["name"] = found.machine.name
        facts = discovery.facts_from(request)
        if not boot_address_from(request, record):
            facts["client_ip"] = None  # None keeps what is known: the address it booted from
        if record is not None and target is None and _unchanged(record, names, facts):
            return record  # nothing new to write: keep the hot path to one read
        updated = await self.store.ensure(request.mac, state=target or lifecycle.READY, **names, **facts)
        self._moved(request.mac)
        if record is None and target == DISCOVERED:
            log.info("discovered unknown machine %s arch=%s uuid=%s vendor=%s via %s", request.mac, request.arch,
                     request.uuid, updated.vendor, request.interface or request.client_ip)
            await self.store.record(Event(request.mac, "discovered", request.client_ip,
                                          {"arch": request.arch, "uuid": request.uuid, "vendor": updated.vendor,
                                           "interface": request.interface}))
        elif record is None:
            log.info("machine %s (%s) first seen, matched %s", found.name, request.mac, found.why)
        elif target is not None and updated.state != target:
            try:
                updated = await self.store.set_state(request.mac, target, expected=updated.state)
            except StateChanged:  # another request or replica moved it first: its state stands
                return await self.store.get(request.mac) or updated
            self._moved(request.mac)
            log.info("machine %s (%s): %s -> %s, matched %s", found.name, request.mac, record.state, target,
                     found.why)
        return updated

    # -- what machines tell us ----------------------------------------------------------------

    async def observe(self, who: BootRequest | str, kind: str, detail: dict[str, Any] | None = None,
                      source: str | None = None, key: str | None = None, known: MachineRecord | None = None) -> bool:
        """Record a timeline event for a machine (by request or MAC) and apply lifecycle transitions.

        An event that moves the machine to another state is committed with the transition (one
        transaction), and with the store unreachable it raises StoreUnavailable for installer
        reports, so the installer is told to try again instead of an install being forgotten. An
        installer report (`key`: its idempotency key) is durable before this returns. Every other
        event (most of the timeline) is queued in order without holding up the answer to the machine,
        and the same answer to the same machine again within a second is counted, not written
        (timeline_fold): then this returns False (True otherwise), and the caller need not log it either.
        `known`: the machine's record as this request just read it, to decide a transition from without
        reading it again (a compare-and-set: if it changed meanwhile, the next try reads it afresh).
        """
        mac = who.mac if isinstance(who, BootRequest) else who
        if source is None and isinstance(who, BootRequest):
            source = who.client_ip
        event = Event(mac, kind, source, detail or {}, key=key)
        self._note_step(mac, kind, event.at)
        try:
            if not lifecycle.can_change_state(kind, detail):
                return self._record_later(event)
            try:
                moved = await self._transition(event, known)
            except AlreadyRecorded:  # a retried report that won a transition through another replica
                log.info("machine %s: %s with key %s is already recorded: a retry, not applied again", mac, kind, key)
                return True
            if moved is not None:
                self._moved(mac)
                log.info("machine %s (%s): %s -> %s after %s", moved[1].name or "unknown", mac, moved[0],
                         moved[1].state, kind)
            elif kind in lifecycle.TRANSITIONS:  # a report that moves nothing is still kept before the answer
                if not await self.store.record(event):
                    raise StoreUnavailable("the state store is unreachable; the report waits in memory")
            else:
                return self._record_later(event)
        except StoreUnavailable as exc:
            if kind in lifecycle.TRANSITIONS:
                raise
            log.warning("machine %s: %s event not applied: %s", mac, kind, exc)
        return True

    async def _transition(self, event: Event, known: MachineRecord | None = None) -> tuple[str, MachineRecord] | None:
        """Apply the lifecycle transition `event` causes as a compare-and-set on the state it was
        decided from, committed together with the event (which names the transition), deciding
        again from the fresh state when another writer (request or replica) got there first.
        Returns (previous state, record) when the machine moved, None when the event moves nothing."""
        mac, kind = event.mac, event.kind
        for _ in range(TRANSITION_ATTEMPTS):
            record = known if known is not None and known.mac == mac else await self.store.get(mac)
            known = None
            if record is None:
                return None
            profile = self.catalog.profiles.get(record.profile or "")
            new_state = lifecycle.next_state(record.state, kind, profile.after_install if profile else None,
                                             event.detail)
            if new_state is None or new_state == record.state:
                return None
            moving = dataclasses.replace(event, detail={**event.detail, "transition": f"{record.state}->{new_state}"})
            await self.flush()  # keep the timeline in the order things happened
            try:
                return record.state, await self.store.set_state(mac, new_state, expected=record.state, event=moving)
            except StateChanged as lost:
                log.info("machine %s: %s lost a race (%s is now %s); deciding again", mac, kind, record.state,
                         lost.current)
                continue
        log.warning("machine %s: %s not applied: its state kept changing under %d attempts", mac, kind,
                    TRANSITION_ATTEMPTS)
        return None

    def ignition_access(self, record: MachineRecord | None, request: BootRequest) -> tuple[bool, str, str | None]:
        """(allowed, event kind to record, why it is not the machine's own request): boot.machine.ignition_access."""
        return ignition_access(record, request, self.settings.strict_machine_address)

    async def asset_fetched(self, mac: str | None, client_ip: str | None, path: str,
                            detail: dict[str, Any]) -> MachineRecord | None:
        """Record an asset fetch on a known machine's timeline (by MAC, else by the address DHCP or /ipxe taught
        us). Its profile's kernel is `http.kernel`: the install started. Returns its record, None if anonymous."""
        mac = mac or self.mac_for_ip(client_ip or "") or (  # with HTTP workers its /ipxe may have gone elsewhere
            await self.store.mac_for_address(client_ip) if client_ip and self.settings.http_workers > 1 else None)
        if mac is None:
            return None
        record = await self.store.get(mac)
        if record is None:
            return None
        profile = self.catalog.profiles.get(record.profile or "")
        fetched = detail.get("method") == "GET" and detail.get("status") in (200, 206)
        kernel = fetched and profile is not None and profile.boot.kernel == path
        await self.observe(mac, "http.kernel" if kernel else "http.asset", {"path": path, **detail},
                           source=client_ip, known=record)
        return record

    # -- timeline plumbing --------------------------------------------------------------------

    def _record_later(self, event: Event) -> bool:
        """Queue an event that moves nothing; False when it folds into the same answer a moment ago."""
        event = self._repeats.fold(event)
        if event is None:
            return False
        record_later = getattr(self.store, "record_later", None)
        if record_later is None:  # no queue in this store: a task keeps the answer from waiting
            task = asyncio.get_running_loop().create_task(self._record_quietly(event))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return True
        try:
            record_later(event)
        except Exception as exc:  # never fail a boot for the timeline
            log.warning("machine %s: %s event not recorded: %s", event.mac, event.kind, exc)
        return True

    def _moved(self, mac: str) -> None:
        super()._moved(mac)
        self._repeats.forget(mac)  # its next answer is news

    def _note_step(self, mac: str, kind: str, at: float, limit: int = 65536, moved: bool = False) -> None:
        if moved:  # a reinstall: the next answer is news too
            self._repeats.forget(mac)
        super()._note_step(mac, kind, at, limit, moved)

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

    async def update_states(self) -> dict[str, UpdateRecord]:
        """{MAC: its update record}: the OS version and update state of every machine that reported."""
        return await self._updates.by_mac()

    async def updates_status(self) -> dict[str, Any]:
        """Every rollout (policy, target, machines updating) and every machine's update state."""
        return await self._updates.status()

    async def updates_pause(self, rollout: str | None, paused: bool) -> dict[str, Any]:
        """Pause or resume one rollout ("group/NAME", "profile/NAME") or, with None, all of them."""
        return await self._updates.pause(rollout, paused)

    async def close(self) -> None:
        """Settle the timeline and close the store (the last step of a stop)."""
        await self.flush()
        await self.store.close()

    # -- addresses ----------------------------------------------------------------------------

    def advertise_url(self, local_ip: str | None = None) -> str:
        """The HTTP base URL for a machine that reached us at `local_ip` (DHCP, TFTP), kept per address and settings."""
        key = (local_ip, id(self.settings), self.http_port)  # the entry holds the settings: the id stays theirs
        if key not in self._advertise_urls:
            self._advertise_urls = {} if len(self._advertise_urls) >= 256 else self._advertise_urls
            self._advertise_urls[key] = (self.settings, self.settings.effective_advertise_url(local_ip, self.http_port))
        return self._advertise_urls[key][1]

    def remember_ip(self, ip: str, mac: str, limit: int = 65536) -> None:
        """Map a client address to its MAC (learnt from DHCP/HTTP) so TFTP can name the machine."""
        self._ip_to_mac[ip] = mac
        self._ip_to_mac.move_to_end(ip)
        if len(self._ip_to_mac) > limit:
            self._ip_to_mac.popitem(last=False)

    def mac_for_ip(self, ip: str) -> str | None:
        return self._ip_to_mac.get(ip)
