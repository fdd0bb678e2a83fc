"""Runtime's side for installer reports (POST /api/v1/machines/{mac}/events): authenticated by the
machine's one-time token, from the address the machine booted from.

A final report (`installed`, `failed`) spends the token, records the event with its idempotency key
and makes the lifecycle transition in one store transaction (`Store.spend_token`): all happen or
none. An installer told to retry (the store failed, the replica died before answering) thus finds its
token unspent, and the retry of a report that was committed is answered again, recognised by its key.

Kept beside runtime.py so the facade stays small; mixed into Runtime, whose store, catalog and
live-view hooks (`observe`, `flush`, `_note_step`, `_moved`) it uses.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from bootserver.boot import lifecycle
from bootserver.boot.machine import Event, MachineRecord, token_matches
from bootserver.operator_actions import TRANSITION_ATTEMPTS
from bootserver.state.base import AlreadyRecorded, StateChanged, StoreUnavailable, TokenSpent, UnknownMachine

log = logging.getLogger("bootserver.boot")
INSTALLER_EVENTS = ("installed", "failed", "progress")
FINAL_EVENTS = ("installed", "failed")  # each spends the install's token: a new one comes with the next install


class WrongToken(PermissionError):
    """An installer event carried no token, or not this machine's."""


class InstallerReports:
    """Mixed into Runtime."""

    async def report(self, mac: str, token: str | None, event: Any, detail: str,
                     source: str | None, key: str | None = None) -> MachineRecord:
        """An installer's report (one of INSTALLER_EVENTS), authenticated by the machine's token.

        `key` is the installer's idempotency key: a report whose key the timeline already holds (a
        retry after a lost answer, to this replica or another) is answered again but not applied again.
        Raises WrongToken first, then ValueError for an unknown event, and StoreUnavailable when the
        report cannot be kept (the installer is told to retry).
        """
        record = await self.store.get(mac)
        if not token_matches(record, token):
            if await self._answered_before(record, event, source, key):
                return record
            raise WrongToken("missing token" if not token else "wrong token")
        _check_address(record, source)
        if event not in INSTALLER_EVENTS:
            raise ValueError(f"unknown installer event {event!r}")
        if key is not None and await self.store.key_seen(mac, key):
            log.info("machine %s: %s with key %s is already recorded: a retry, not applied again", mac, event, key)
            return await self.store.get(mac) or record
        if event in FINAL_EVENTS:
            return await self._final_report(Event(mac, f"installer.{event}", source, {"detail": detail}, key=key),
                                            token)
        await self.observe(mac, f"installer.{event}", {"detail": detail}, source=source, key=key)
        return await self.store.get(mac) or record

    async def _answered_before(self, record: MachineRecord | None, event: Any, source: str | None,
                               key: str | None) -> bool:
        """True for the retry of a report already recorded (its token was spent by it): same key,
        from the address the machine booted from. The key, as secret as the token, says so."""
        if record is None or key is None or not await self.store.key_seen(record.mac, key):
            return False
        _check_address(record, source)
        log.info("machine %s: %s with key %s is already recorded: a retry after its token was spent, "
                 "not applied again", record.mac, event, key)
        return True

    async def _final_report(self, event: Event, token: str) -> MachineRecord:
        """Spend the token, record `event` and apply its transition, all in one store transaction
        (a compare-and-set on the state it was decided from, decided again when a rival moved first)."""
        mac, kind = event.mac, event.kind
        self._note_step(mac, kind, event.at)
        for _ in range(TRANSITION_ATTEMPTS):
            record = await self.store.get(mac)
            if record is None:
                raise WrongToken("unknown machine (forgotten meanwhile)")
            profile = self.catalog.profiles.get(record.profile or "")
            target = lifecycle.next_state(record.state, kind, profile.after_install if profile else None,
                                          event.detail)
            moving = target is not None and target != record.state
            entry = (dataclasses.replace(event, detail={**event.detail, "transition": f"{record.state}->{target}"})
                     if moving else event)
            await self.flush()  # keep the timeline in the order things happened
            try:
                updated = await self.store.spend_token(mac, token, entry, expected=record.state,
                                                       state=target if moving else None)
            except StateChanged as lost:
                log.info("machine %s: %s lost a race (%s is now %s); deciding again", mac, kind, record.state,
                         lost.current)
                continue
            except TokenSpent:  # a rival report committed first: this one's own retry, or a replay
                if event.key is not None and await self.store.key_seen(mac, event.key):
                    return await self.store.get(mac) or record
                raise WrongToken("spent token (a final report was already made with it)") from None
            except AlreadyRecorded:
                log.info("machine %s: %s with key %s is already recorded: a retry, not applied again", mac, kind,
                         event.key)
                return await self.store.get(mac) or record
            except UnknownMachine:
                raise WrongToken("unknown machine (forgotten meanwhile)") from None
            if moving:
                self._moved(mac)
                log.info("machine %s (%s): %s -> %s after %s", updated.name or "unknown", mac, record.state,
                         updated.state, kind)
            return updated
        raise StoreUnavailable(f"machine {mac} kept changing state under {TRANSITION_ATTEMPTS} attempts; retry")


def _check_address(record: MachineRecord, source: str | None) -> None:
    if record.client_ip and source != record.client_ip:
        raise WrongToken(f"from another address (the machine booted from {record.client_ip})")
