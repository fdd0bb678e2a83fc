"""In-memory `Store`: for tests and `render` previews. Nothing survives the process."""

from __future__ import annotations

import dataclasses
import hmac
import itertools
import secrets
import time
from collections import deque
from typing import Any

from bootserver.state.updates_memory import MemoryUpdates
from bootserver.state.base import (AlreadyRecorded, Event, MachineRecord, StateChanged, TokenSpent, UnknownMachine,
                                   check_facts)


class MemoryStore(MemoryUpdates):
    def __init__(self, retention: int = 1000) -> None:
        self._machines: dict[str, MachineRecord] = {}
        self._events: dict[str, deque[Event]] = {}
        self._retention = retention
        self._seq = itertools.count(1)
        self._updates: dict = {}  # machine-id -> UpdateRecord (see updates_memory)
        self._pauses: set[str] = set()

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def get(self, mac: str) -> MachineRecord | None:
        rec = self._machines.get(mac)
        return dataclasses.replace(rec) if rec else None

    async def ensure(self, mac: str, *, state: str, **facts: Any) -> MachineRecord:
        check_facts(facts)
        now = time.time()
        rec = self._machines.get(mac)
        if rec is None:
            rec = MachineRecord(mac=mac, state=state, token=secrets.token_urlsafe(24),
                                first_seen=now, state_changed=now)
            self._machines[mac] = rec
        for key, value in facts.items():
            if value is not None:
                setattr(rec, key, value)
        rec.last_seen = now
        return dataclasses.replace(rec)

    async def set_state(self, mac: str, state: str, *, expected: str | None = None,
                        event: Event | None = None) -> MachineRecord:
        rec = self._machines.get(mac)
        if rec is None:
            raise UnknownMachine(mac)
        if expected is not None and rec.state != expected:
            raise StateChanged(mac, expected, rec.state)
        if event is not None and event.key is not None and self._key_seen(mac, event.key):
            raise AlreadyRecorded(mac, event.key)
        rec.state = state
        rec.state_changed = time.time()
        if event is not None:
            self.record_later(event)
        return dataclasses.replace(rec)

    async def record(self, event: Event) -> bool:
        self.record_later(event)
        return True

    def record_later(self, event: Event) -> None:
        if event.key is not None and self._key_seen(event.mac, event.key):
            return
        event.seq = next(self._seq)  # the event is the caller's to give away, as with the SQL stores
        self._events.setdefault(event.mac, deque(maxlen=self._retention)).append(event)

    def _key_seen(self, mac: str, key: str) -> bool:
        return any(e.key == key for e in self._events.get(mac, ()))

    async def key_seen(self, mac: str, key: str) -> bool:
        return self._key_seen(mac, key)

    async def events(self, mac: str, limit: int = 100, before: int | None = None) -> list[Event]:
        found = [e for e in self._events.get(mac, ()) if before is None or e.seq < before]
        return found[-limit:] if limit > 0 else []

    async def machines(self, state: str | None = None) -> list[MachineRecord]:
        return [dataclasses.replace(m) for m in sorted(self._machines.values(), key=lambda m: m.mac)
                if state is None or m.state == state]

    async def discovered(self) -> list[MachineRecord]:
        return await self.machines("discovered")

    async def rotate_token(self, mac: str) -> MachineRecord:
        rec = self._machines.get(mac)
        if rec is None:
            raise UnknownMachine(mac)
        rec.token = secrets.token_urlsafe(24)
        return dataclasses.replace(rec)

    async def spend_token(self, mac: str, token: str, event: Event, *, expected: str,
                          state: str | None = None) -> MachineRecord:
        rec = self._machines.get(mac)  # every check before any write: all or nothing
        if rec is None:
            raise UnknownMachine(mac)
        if not hmac.compare_digest(rec.token.encode(), token.encode()):
            raise TokenSpent(mac)
        if rec.state != expected:
            raise StateChanged(mac, expected, rec.state)
        if event.key is not None and self._key_seen(mac, event.key):
            raise AlreadyRecorded(mac, event.key)
        rec.token = secrets.token_urlsafe(24)
        if state is not None:
            rec.state, rec.state_changed = state, time.time()
        self.record_later(event)
        return dataclasses.replace(rec)

    async def by_token(self, token: str) -> MachineRecord | None:
        for rec in self._machines.values():
            if rec.token == token:
                return dataclasses.replace(rec)
        return None

    async def forget(self, mac: str) -> bool:
        self._events.pop(mac, None)
        return self._machines.pop(mac, None) is not None
