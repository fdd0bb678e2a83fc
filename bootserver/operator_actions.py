"""Runtime's side for operators' actions and look-ups (admin API, `bootserver machines`, the board):
a machine, the fleet, a timeline, forget, reinstall, and what a machine would get next.

Kept beside runtime.py so the facade stays small; mixed into Runtime, whose store, catalog,
settings and live-view hooks (`_note_step`, `_moved`, `_last_step`) it uses.
"""

from __future__ import annotations

import logging
import time

from bootserver.boot import lifecycle
from bootserver.boot.machine import DISCOVERED, Event, MachineRecord
from bootserver.boot.request import BootRequest
from bootserver.state.base import StateChanged, UnknownMachine

log = logging.getLogger("bootserver.boot")
TRANSITION_ATTEMPTS = 5  # compare-and-set retries when other writers keep moving a machine


class NotAdopted(ValueError):
    """Reinstall asked for a machine the catalog does not name yet."""


class OperatorActions:
    """Mixed into Runtime."""

    async def machine(self, mac: str) -> MachineRecord | None:
        return await self.store.get(mac)

    async def machines(self, state: str | None = None) -> list[MachineRecord]:
        return await self.store.machines(state)

    async def timeline(self, mac: str, limit: int = 100, before: int | None = None) -> list[Event]:
        """The machine's newest `limit` events before `before`, oldest first; UnknownMachine if none."""
        events = await self.store.events(mac, limit, before)
        if not events and await self.store.get(mac) is None:
            raise UnknownMachine(mac)
        return events

    async def forget(self, mac: str) -> None:
        if not await self.store.forget(mac):
            raise UnknownMachine(mac)
        self._last_step.pop(mac, None)
        self._moved(mac)

    async def reinstall(self, mac: str, source: str | None = None) -> tuple[str, MachineRecord]:
        """Send the machine back to `ready` so its next boot installs again; (previous state, record)."""
        for _ in range(TRANSITION_ATTEMPTS):
            record = await self.store.get(mac)
            if record is None:
                raise UnknownMachine(mac)
            target = lifecycle.next_state(record.state, "reinstall", None)
            if target is None and record.state == DISCOVERED:
                raise NotAdopted(f"{mac} is only discovered: add it to the catalog (bootserver machines adopt) "
                                 "first")
            event = Event(mac, "reinstall", source, {"from": record.state, "transition": f"{record.state}->{target}"})
            try:
                moved = await self.store.set_state(mac, target, expected=record.state, event=event)
            except StateChanged as lost:  # the machine moved meanwhile: decide again from where it is now
                log.info("machine %s: reinstall lost a race (%s is now %s); deciding again", mac, record.state,
                         lost.current)
                continue
            log.info("machine %s: %s -> %s after reinstall", mac, record.state, moved.state)
            moved = await self.store.rotate_token(mac)  # the next install gets a token of its own
            self._note_step(mac, "reinstall", time.time(), moved=True)
            return record.state, moved
        raise StateChanged(mac, record.state, "still changing")  # the operator may simply ask again

    def next_boot(self, record: MachineRecord | None, request: BootRequest) -> lifecycle.BootDecision:
        """What the machine would get if it asked now, without changing anything (admin API, previews)."""
        return lifecycle.decide(self.match(request), record, self.settings)
