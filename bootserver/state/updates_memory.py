"""In-memory part of the `Store` for Flatcar updates (tests, previews). One loop, no awaits inside
a claim: the count and the take cannot interleave."""

from __future__ import annotations

import dataclasses
import time

from bootserver.boot.updates import UpdateRecord, holds_slot


class MemoryUpdates:
    """Mixed into MemoryStore: uses its `_machines`, `_updates` and `_pauses`."""

    _machines: dict  # mac -> MachineRecord
    _updates: dict[str, UpdateRecord]
    _pauses: set[str]

    async def update_get(self, machine_id: str) -> UpdateRecord | None:
        found = self._updates.get(machine_id)
        return dataclasses.replace(found) if found else None

    async def update_put(self, record: UpdateRecord) -> None:
        self._updates[record.machine_id] = dataclasses.replace(record)

    async def update_claim(self, record: UpdateRecord, max_updating: int | None,
                           max_per_hour: int | None) -> str | None:
        now = time.time()
        others = [r for r in self._updates.values()
                  if r.rollout == record.rollout and r.machine_id != record.machine_id]
        busy = sum(holds_slot(r, now) for r in others)
        if max_updating is not None and busy >= max_updating:
            return f"{busy} machine(s) updating, the rollout allows {max_updating} at once"
        recent = sum(1 for r in others if r.offered_at and r.offered_at > now - 3600)
        if max_per_hour is not None and recent >= max_per_hour:
            return f"{recent} offer(s) in the last hour, the rollout allows {max_per_hour}"
        await self.update_put(record)
        return None

    async def update_list(self) -> list[UpdateRecord]:
        return sorted((dataclasses.replace(r) for r in self._updates.values()),
                      key=lambda r: (r.rollout or "", r.machine_id))

    async def update_unknown_count(self) -> int:
        return sum(r.mac is None for r in self._updates.values())

    async def mac_for_address(self, ip: str) -> str | None:
        found = [m for m in self._machines.values() if m.client_ip == ip]
        return max(found, key=lambda m: m.last_seen).mac if found else None

    async def update_pauses(self) -> set[str]:
        return set(self._pauses)

    async def update_pause(self, rollout: str, paused: bool) -> None:
        (self._pauses.add if paused else self._pauses.discard)(rollout)
