"""The operator's read-side shapes (fleet rows, a machine's timeline as steps, catalog health) and
the pure functions that build them from records, events and the catalog. Runtime's read methods
fill them; the board renders them. No I/O here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from bootserver.boot.machine import DISCOVERED, STATES, Event, MachineRecord
from bootserver.boot.matching import Match
from bootserver.catalog.model import Catalog, Problem

MASK = "******** (masked)"
#: keys whose values are secrets wherever they appear in a rendered config
SECRET_KEY = re.compile(r"password|passwd|secret|token|private", re.IGNORECASE)
SECRET_QUERY = re.compile(r"(?i)([?&](?:token|secret|password)=)[^&\s\"']+")
#: how a timeline event kind reads as a step of the boot chain
STEP_NAMES = {
    "discovered": "discovered (unknown MAC)", "dhcp.offer": "proxy offer", "dhcp.ack": "proxy ack",
    "tftp.transfer": "loader over TFTP", "tftp.failed": "TFTP transfer failed", "http.ipxe": "iPXE script",
    "http.grub": "GRUB config", "http.kernel": "kernel", "http.asset": "asset", "http.ignition": "Ignition",
    "http.metadata": "metadata", "installer.progress": "installer progress",
    "installer.installed": "installer report: installed", "installer.failed": "installer report: failed",
    "reinstall": "reinstall asked", "render.failed": "render failed",
}


@dataclass(frozen=True)
class FleetRow:
    mac: str
    name: str | None
    state: str
    profile: str | None
    matched: str  # machine | group NAME | discovered | fallback | none
    arch: str | None
    firmware: str | None
    address: str | None
    vendor: str | None
    last_step: str | None
    last_step_at: float | None
    state_changed: float


@dataclass(frozen=True)
class FleetPage:
    rows: list[FleetRow]
    total: int  # machines matching the filter
    counts: dict[str, int]  # per state, over the whole fleet
    offset: int
    limit: int


@dataclass(frozen=True)
class Step:
    seq: int | None
    at: float
    kind: str
    title: str
    took: float | None  # seconds until the next step
    reason: str
    source: str | None


@dataclass
class MachineDetail:
    record: MachineRecord
    matched: str
    steps: list[Step]
    action: str  # what it would get now
    reason: str
    sources: list[tuple[str, str]]  # (what, file:line) of its Machine/Group/Profile
    script: str = ""
    script_error: str | None = None
    ignition: str | None = None
    ignition_error: str | None = None


@dataclass(frozen=True)
class CatalogHealth:
    generation: int
    root: str
    loaded_at: float
    counts: dict[str, int]
    rejected_at: float | None
    errors: list[Problem]
    error_text: str | None
    warnings: list[Problem]
    mirror: list[dict[str, Any]] = field(default_factory=list)
    mirror_error: str | None = None


def firmware_of(arch: str | None) -> str | None:
    if not arch:
        return None
    return "bios" if arch.endswith("-bios") else "uefi"


def how_matched(record: MachineRecord, catalog: Catalog, found: Match | None) -> str:
    if record.state == DISCOVERED and record.mac not in catalog.by_mac:
        return "discovered"
    if found is None:
        return "none"
    if found.machine is not None:
        return "machine"
    if found.group is not None:
        return f"group {found.group.name}"
    return "fallback"


def fleet_row(record: MachineRecord, matched: str, last: tuple[str, float] | None) -> FleetRow:
    kind, at = last if last else (None, None)
    return FleetRow(record.mac, record.name, record.state, record.profile, matched, record.arch,
                    firmware_of(record.arch), record.client_ip, record.vendor,
                    STEP_NAMES.get(kind, kind) if kind else None, at, record.state_changed)


def matches_filter(record: MachineRecord, state: str | None, search: str) -> bool:
    if state and record.state != state:
        return False
    if not search:
        return True
    needle = search.lower()
    return any(needle in (value or "").lower() for value in
               (record.mac, record.name, record.profile, record.client_ip, record.vendor, record.arch))


def state_counts(records: Iterable[MachineRecord]) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for record in records:
        counts[record.state] = counts.get(record.state, 0) + 1
    return counts


def _reason(event: Event) -> str:
    detail = event.detail or {}
    parts = list(dict.fromkeys(str(detail[key]) for key in ("reason", "detail", "error", "path", "file", "loader",
                                                             "from") if detail.get(key)))
    if "action" in detail:
        parts.insert(0, str(detail["action"]))
    if "status" in detail:
        parts.append(f"status {detail['status']}")
    return ": ".join(parts[:1]) + (" — " + ", ".join(parts[1:]) if len(parts) > 1 else "")


def steps_of(events: list[Event], now: float) -> list[Step]:
    """Events oldest first as steps, each with the time until the next one (the last: until now)."""
    steps = []
    for i, event in enumerate(events):
        following = events[i + 1].at if i + 1 < len(events) else None
        steps.append(Step(event.seq, event.at, event.kind, STEP_NAMES.get(event.kind, event.kind),
                          (following - event.at) if following is not None else max(0.0, now - event.at),
                          _reason(event), event.source))
    return steps


def mask_secrets(value: Any) -> Any:
    """A JSON value with every secret-named key's value and token-bearing URL masked."""
    if isinstance(value, dict):
        return {k: (MASK if SECRET_KEY.search(k) and isinstance(v, (str, int, float)) else mask_secrets(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    if isinstance(value, str):
        return SECRET_QUERY.sub(lambda m: m.group(1) + "MASKED", value)
    return value


def masked_ignition(body: bytes) -> str:
    try:
        return json.dumps(mask_secrets(json.loads(body)), indent=2)
    except ValueError:
        return "(not JSON; not shown)"


def masked_text(text: str) -> str:
    return SECRET_QUERY.sub(lambda m: m.group(1) + "MASKED", text)
