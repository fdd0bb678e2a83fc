"""Flatcar updates on the Runtime: answer update_engine's checks and events from the catalog's
policy, the mirror's payloads and the store's rollout state; show and pause rollouts.

Adapters reach this only through Runtime's intent methods (update_check, updates_status,
updates_pause). The decisions themselves are boot.updates' pure functions; the store makes
taking a rollout slot atomic.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from bootserver.assets.updates import MirrorReleases
from bootserver.boot import updates as policy
from bootserver.boot.request import BootRequest
from bootserver.boot.updates import UnknownRollout, UpdateRecord, Verdict
from bootserver.metrics import REGISTRY
from bootserver.omaha.codec import AppAnswer, OmahaApp

if TYPE_CHECKING:
    from bootserver.runtime import Runtime

log = logging.getLogger("bootserver.updates")
ALL = "*"  # the rollout name that pauses every rollout

CHECKS = Counter("bootserver_update_checks_total", "Omaha update checks by answer", ["answer"], registry=REGISTRY)
OFFERS = Counter("bootserver_update_offers_total", "Update offers that took a rollout slot", registry=REGISTRY)
EVENTS = Counter("bootserver_update_events_total", "Omaha events reported by update_engine", ["event", "result"],
                 registry=REGISTRY)
COMPLETIONS = Counter("bootserver_update_completions_total", "Machines that came back running their target",
                      registry=REGISTRY)
ERRORS = Counter("bootserver_update_errors_total", "Omaha error events (eventresult 0)", registry=REGISTRY)
UNRECORDED = Counter("bootserver_update_unknown_unrecorded_total",
                     "Checks from unknown machine-ids not recorded: the limit of unknown ones was reached",
                     registry=REGISTRY)


class UpdateService:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.releases = MirrorReleases(runtime.settings.assets)

    async def check(self, app: OmahaApp, client_ip: str | None, base_url: str) -> AppAnswer:
        if not app.is_flatcar:
            return AppAnswer(app, status="error-unknownApplication")
        store, now = self.runtime.store, time.time()
        stored = await store.update_get(app.machine_id)
        record = stored or UpdateRecord(app.machine_id)
        known = record.mac is not None
        mac = record.mac or (self.runtime.mac_for_ip(client_ip) if client_ip else None) or \
            (await store.mac_for_address(client_ip) if client_ip else None)
        if stored is None and mac is None and await store.update_unknown_count() >= policy.MAX_UNKNOWN:
            UNRECORDED.inc()
            log.warning("unknown machine-id %s from %s not recorded: %d unknown machine-ids are already",
                        app.machine_id, client_ip, policy.MAX_UNKNOWN)
            return AppAnswer(app)
        found = await self._policy(mac)
        record.mac, record.client_ip, record.version, record.track = mac, client_ip, app.version, app.track
        held = policy.holds_slot(record, now) and record.rollout == (found[0] if found else None)
        record.rollout = found[0] if found else None
        record.updated = now
        if mac and not known:
            log.info("machine-id %s reported from %s is machine %s", app.machine_id, client_ip, mac)
        elif not mac and not record.last_check:
            log.info("unknown machine-id %s from %s (version %s): recorded; no policy applies", app.machine_id,
                     client_ip, app.version)
        for event in app.events:
            await self._event(record, app, event)
        if not app.update_check:
            await store.update_put(record)
            return AppAnswer(app)
        record.last_check = now
        verdict, release = await self._verdict(record, app, found, now, held)
        CHECKS.labels("offer" if verdict.offer else "noupdate").inc()
        if mac:
            await self.runtime.observe(mac, "omaha.check", {
                "version": app.version, "track": app.track, "answer": "offer" if verdict.offer else "noupdate",
                "reason": verdict.reason}, source=client_ip)
        if not verdict.offer:
            return AppAnswer(app)
        return AppAnswer(app, release, f"{base_url}/assets/flatcar/{release.arch}/{release.version}/")

    async def _policy(self, mac: str | None):
        """(rollout, policy) of the catalog entry the machine matches as it last booted, or None."""
        if mac is None:
            return None
        machine = await self.runtime.store.get(mac)
        request = BootRequest(mac=mac, arch=machine.arch if machine else None, uuid=machine.uuid if machine else None,
                              client_ip=machine.client_ip if machine else None)
        return policy.policy_for(self.runtime.match(request))

    async def _verdict(self, record: UpdateRecord, app: OmahaApp, found, now: float, held: bool):
        """Decide, take a slot unless the machine still holds its own, and save the record."""
        store = self.runtime.store
        if found is None:
            reason = "no update policy applies" if record.mac else "unknown machine-id: no catalog entry to follow"
            await store.update_put(record)
            return Verdict(False, reason), None
        rollout, rules = found
        release = self.releases.release(app.arch, rules.channel, rules.version) if app.arch else None
        when = datetime.fromtimestamp(now, UTC)
        verdict = policy.evaluate(rules, release, app.version, False, when)
        if verdict.offer and {ALL, rollout} & await store.update_pauses():  # read only when it matters
            verdict = policy.evaluate(rules, release, app.version, True, when)
        if verdict.current:
            record.status, record.error_code = policy.CURRENT, None
        elif not verdict.offer and record.status not in policy.HOLDING:
            record.status = policy.WAITING
        if not verdict.offer:
            await store.update_put(record)
            return verdict, release
        if held and record.status in policy.HOLDING and record.target == release.version:
            await store.update_put(record)  # asked again mid-update: the same offer, the same slot
            return verdict, release
        previous = (record.status, record.target, record.offered_at)
        record.status, record.target, record.offered_at, record.error_code = policy.OFFERED, release.version, now, None
        refused = await store.update_claim(record, rules.max_updating, rules.max_per_hour)
        if refused:
            record.status, record.target, record.offered_at = previous
            record.status = policy.WAITING if record.status not in policy.HOLDING else record.status
            await store.update_put(record)
            return Verdict(False, f"rollout limit: {refused}"), release
        OFFERS.inc()
        log.info("offering Flatcar %s to %s (machine-id %s, runs %s; %s)", release.version, record.mac,
                 record.machine_id, app.version, rollout)
        return verdict, release

    async def _event(self, record: UpdateRecord, app: OmahaApp, event) -> None:
        before = record.status
        record.status = policy.status_after_event(before, event.type, event.result, app.version, record.target)
        name = policy.EVENT_NAMES.get(event.type, f"type-{event.type}")
        result = policy.RESULT_NAMES.get(event.result, f"result-{event.result}")
        # metric labels stay a fixed set whatever a client sends: any other type or result is "other"
        EVENTS.labels(name if event.type in policy.EVENT_NAMES else "other",
                      result if event.result in policy.RESULT_NAMES else "other").inc()
        if record.status == policy.ERROR:
            record.error_code = event.error_code
            ERRORS.inc()
            log.warning("machine %s (machine-id %s): update_engine reports %s error %s", record.mac or "unknown",
                        record.machine_id, name, event.error_code)
        if record.status == policy.CURRENT and before in policy.HOLDING:
            COMPLETIONS.inc()
            log.info("machine %s (machine-id %s) now runs %s", record.mac or "unknown", record.machine_id,
                     app.version)
        if record.mac:
            detail = {"event": name, "result": result, "version": app.version, "status": record.status}
            if event.error_code is not None and event.result == policy.RESULT_ERROR:
                detail["errorcode"] = event.error_code
            if event.previous_version:
                detail["previous_version"] = event.previous_version
            await self.runtime.observe(record.mac, "omaha.event", detail, source=record.client_ip)

    async def by_mac(self) -> dict[str, UpdateRecord]:
        """The newest update record of each machine (a reinstall gives a machine a new machine-id)."""
        found: dict[str, UpdateRecord] = {}
        for record in sorted(await self.runtime.store.update_list(), key=lambda r: r.updated):
            if record.mac:
                found[record.mac] = record
        return found

    def rollouts(self) -> dict[str, Any]:
        """Every rollout the catalog declares: {"group/NAME" | "profile/NAME": policy}."""
        catalog = self.runtime.catalog
        found = {f"profile/{p.name}": p.updates for p in catalog.profiles.values() if p.updates}
        found.update({f"group/{g.name}": g.updates for g in catalog.groups if g.updates})
        return found

    async def status(self) -> dict[str, Any]:
        store = self.runtime.store
        records, paused, now = await store.update_list(), await store.update_pauses(), time.time()
        rollouts = []
        for name, rules in sorted(self.rollouts().items()):
            mine = [r for r in records if r.rollout == name]
            release = self.releases.release("amd64", rules.channel, rules.version)
            counts: dict[str, int] = {}
            for r in mine:
                counts[r.status] = counts.get(r.status, 0) + 1
            rollouts.append({
                "rollout": name, "enabled": rules.enabled, "paused": bool({ALL, name} & paused),
                "follows": rules.version or rules.channel, "target": release.version if release else None,
                "max_updating": rules.max_updating, "max_per_hour": rules.max_per_hour,
                "window": rules.window.describe() if rules.window else None,
                "updating": sum(policy.holds_slot(r, now) for r in mine), "machines": len(mine), "states": counts})
        return {"paused_all": ALL in paused, "rollouts": rollouts,
                "machines": [{**asdict(r), "last_check": _iso(r.last_check), "updated": _iso(r.updated),
                              "offered_at": _iso(r.offered_at)} for r in records]}

    async def pause(self, rollout: str | None, paused: bool) -> dict[str, Any]:
        name = rollout or ALL
        if name != ALL and name not in self.rollouts():
            raise UnknownRollout(f"no rollout {name!r}; the catalog has: {', '.join(sorted(self.rollouts())) or 'none'}"
                                 " (name them group/NAME or profile/NAME)")
        await self.runtime.store.update_pause(name, paused)
        log.info("updates %s for %s", "paused" if paused else "resumed", "every rollout" if name == ALL else name)
        return await self.status()


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if epoch else None
