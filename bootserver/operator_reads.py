"""Runtime's side for operators (the board): the fleet, one machine, the catalog's health, and the
feed of which machines change.

Kept beside runtime.py so the facade stays small. Every read here only reads: looking at a machine
(even rendering what it would get) never changes its state or its timeline. Runtime's write paths
call `_note_step` and `_moved` so live views and the fleet's counts follow.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

from bootserver import overview
from bootserver.assets.mirror import listing
from bootserver.boot.machine import MachineRecord
from bootserver.boot.request import BootRequest, Stage
from bootserver.changes import Changes, Subscription
from bootserver.overview import CatalogHealth, FleetPage, FleetRow, MachineDetail
from bootserver.render.ipxe import script_for

MASKED_TOKEN = "MASKED"  # stands in for the installer token in previews
COUNTS_TTL = 1.0  # seconds a fleet-wide count per state is reused


def last_asked(record: MachineRecord, stage: Stage = Stage.IPXE) -> BootRequest:
    return BootRequest(mac=record.mac, arch=record.arch, uuid=record.uuid, client_ip=record.client_ip, stage=stage)


class OperatorReads:
    """Mixed into Runtime; uses its settings, catalog, store and step memory."""

    _counts: tuple[float, dict[str, int]] | None = None

    def start_live_views(self) -> None:
        self.changes = Changes()  # which machines moved, for live views (bounded)
        self._last_step: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self.reload_problems: tuple = ()  # the errors of the last refused reload (Problem, with positions)
        self.loaded_at, self.rejected_at = time.time(), None

    def watch(self) -> Subscription:
        """A bounded feed of which machines change (live views); TooManySubscribers when full."""
        return self.changes.subscribe()

    def stop_watching(self) -> None:
        """End every live feed (the HTTP server is shutting down)."""
        self.changes.close_all()

    def _moved(self, mac: str) -> None:
        """A machine's record changed (state, facts, or gone): fleet counts are stale, live views update."""
        self._counts = None
        self.changes.publish(mac)

    def _note_step(self, mac: str, kind: str, at: float, limit: int = 65536, moved: bool = False) -> None:
        """Remember the machine's latest step (for the fleet view) and tell live views it moved
        (`moved`: its state changed too, so the fleet's counts are stale)."""
        if moved:
            self._counts = None
        self._last_step[mac] = (kind, at)
        self._last_step.move_to_end(mac)
        if len(self._last_step) > limit:
            self._last_step.popitem(last=False)
        self.changes.publish(mac)


    def _matched(self, record: MachineRecord) -> str:
        return overview.how_matched(record, self.catalog, self.match(last_asked(record)))

    async def _last_steps(self, records: list[MachineRecord]) -> list[tuple[str, float] | None]:
        found = []
        for record in records:
            step = self._last_step.get(record.mac)
            if step is None:  # not seen since this process started: ask the timeline
                events = await self.store.events(record.mac, 1)
                step = (events[-1].kind, events[-1].at) if events else None
            found.append(step)
        return found

    async def _rows(self, records: list[MachineRecord]) -> list[FleetRow]:
        steps = await self._last_steps(records)
        return [overview.fleet_row(r, self._matched(r), s) for r, s in zip(records, steps)]

    async def fleet(self, state: str | None = None, search: str = "", offset: int = 0,
                    limit: int = 100) -> FleetPage:
        """One page of machines (filtered by state and a search over MAC/name/profile/address/vendor),
        with how many match and the count per state over the whole fleet."""
        records = await self.store.machines()
        self._counts = (time.monotonic(), overview.state_counts(records))
        chosen = [r for r in records if overview.matches_filter(r, state, search.strip())]
        page = chosen[offset:offset + limit]
        return FleetPage(await self._rows(page), len(chosen), self._counts[1], offset, limit)

    async def fleet_rows(self, macs: list[str]) -> list[FleetRow | str]:
        """Fresh rows for these machines; a forgotten machine comes back as its bare MAC."""
        out: list[FleetRow | str] = []
        for mac in macs:
            record = await self.store.get(mac)
            out.append(mac if record is None else (await self._rows([record]))[0])
        return out

    async def state_counts(self) -> dict[str, int]:
        if self._counts is None or time.monotonic() - self._counts[0] > COUNTS_TTL:
            self._counts = (time.monotonic(), overview.state_counts(await self.store.machines()))
        return self._counts[1]

    async def discovered(self) -> list[MachineRecord]:
        return await self.store.discovered()

    async def machine_detail(self, mac: str, limit: int = 200) -> MachineDetail | None:
        """Its timeline as steps, what it would get now (rendered, secrets masked), where it is declared."""
        record = await self.store.get(mac)
        if record is None:
            return None
        events = await self.store.events(mac, limit)
        request = last_asked(record)
        decision = self.next_boot(record, request)
        found = decision.match
        sources = []
        if found is not None:
            for what, item in (("Machine", found.machine), ("Group", found.group), ("Profile", found.profile)):
                if item is not None:
                    sources.append((f"{what} {item.name}", str(item.source)))
        detail = MachineDetail(record, self._matched(record), overview.steps_of(events, time.time()),
                               decision.action, decision.reason, sources)
        base = self.advertise_url()
        try:
            detail.script = overview.masked_text(script_for(decision, request, base, MASKED_TOKEN))
        except ValueError as exc:  # ArgError is a ValueError
            detail.script_error = str(exc)
        if found is not None and decision.action == "boot":
            try:
                _profile, body = await self.ignition(found, last_asked(record, Stage.OS), "", base, MASKED_TOKEN)
                detail.ignition = overview.masked_ignition(body)
            except LookupError:
                detail.ignition = None
            except Exception as exc:  # a render error is worth showing, not a failed page
                detail.ignition_error = str(exc)
        return detail

    async def catalog_health(self) -> CatalogHealth:
        catalog = self.catalog
        mirror: list[dict[str, Any]] = []
        mirror_error = None
        try:
            rows = await asyncio.to_thread(listing, self.settings.assets)
            mirror = [{"path": r.path, "size": r.size, "verified": r.verified, "channels": r.note} for r in rows]
        except Exception as exc:  # an unreadable mirror is shown, never a failed page
            mirror_error = str(exc)
        return CatalogHealth(
            catalog.generation, str(catalog.root), self.loaded_at,
            {"profiles": len(catalog.profiles), "machines": len(catalog.machines), "groups": len(catalog.groups)},
            self.rejected_at, list(self.reload_problems), self.last_reload_error, list(catalog.warnings),
            mirror, mirror_error)
