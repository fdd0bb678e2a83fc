"""The machine lifecycle and the boot decision: pure functions over plain data.

    discovered --(matched by the catalog)--> ready --(install kernel or config served)--> installing
    installing --(installer: installed)--> installed    (boots from its disk if the profile says so)
    installing --(installer: failed)--> failed          (the next boot installs again)
    installed | failed | installing --(reinstall)--> ready

Runtime.decide/observe call these; they never touch the store or the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from bootserver.boot.machine import DISCOVERED, FAILED, INSTALLED, INSTALLING, READY, MachineRecord
from bootserver.boot.matching import Match
from bootserver.config import Settings

#: Events that mean "the install has started" for a profile that installs (after_install set).
#: `http.asset` counts only with detail {"role": "kernel"}.
INSTALL_STARTED = ("http.kernel", "http.ignition")

#: event kind -> (states it applies in, state it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "reinstall": ((READY, INSTALLING, INSTALLED, FAILED), READY),
    "installer.installed": ((DISCOVERED, READY, INSTALLING, FAILED), INSTALLED),
    "installer.failed": ((DISCOVERED, READY, INSTALLING), FAILED),
    "installer.progress": ((DISCOVERED, READY, FAILED), INSTALLING),
}


@dataclass(frozen=True)
class BootDecision:
    action: str  # boot | local-disk | ignore
    reason: str  # for logs and the timeline: why this machine got this answer
    match: Match | None = None
    record: MachineRecord | None = None


def installs(after_install: str | None) -> bool:
    return after_install not in (None, "", "none")


def is_fallback(match: Match | None) -> bool:
    """True for the unknown_profile match an unknown MAC gets (no Machine, no Group)."""
    return match is not None and match.machine is None and match.group is None


def state_when_seen(match: Match | None, record: MachineRecord | None) -> str | None:
    """The state a machine should be in after this boot request, or None to leave it alone.

    Unknown MACs (no match, or only the unknown_profile fallback) are `discovered`; a discovered
    machine the catalog now matches (it was adopted) becomes `ready`.
    """
    if match is None or is_fallback(match):
        return DISCOVERED if record is None else None
    if record is None or record.state == DISCOVERED:
        return READY
    return None


def can_change_state(event_kind: str, detail: Mapping[str, Any] | None = None) -> bool:
    """False for events that never move a machine (most of the timeline): no need to look it up."""
    return (event_kind in INSTALL_STARTED or event_kind in TRANSITIONS
            or (event_kind == "http.asset" and (detail or {}).get("role") == "kernel"))


def next_state(current: str, event_kind: str, after_install: str | None,
               detail: Mapping[str, Any] | None = None) -> str | None:
    """The state an event moves a machine to, or None when it does not change it."""
    started = event_kind in INSTALL_STARTED or (event_kind == "http.asset" and (detail or {}).get("role") == "kernel")
    if started:
        if installs(after_install) and current in (DISCOVERED, READY, FAILED):
            return INSTALLING
        return None
    sources, target = TRANSITIONS.get(event_kind, ((), None))
    return target if current in sources else None


def decide(match: Match | None, record: MachineRecord | None, settings: Settings, *,
           store_ok: bool = True) -> BootDecision:
    """What this machine should get now, and why.

    `store_ok=False` says the record could not be read (state store unreachable): a profile that
    installs then boots from disk, because reinstalling an installed machine destroys its data
    while a delayed first install costs only a reboot. Whether DHCP answers a machine that boots
    from disk (the installed_dhcp setting) is the DHCP table's to say: see boot.methods.choose.
    """
    if match is None:
        if settings.unknown_machines == "ignore":
            return BootDecision("ignore", "unknown MAC; unknown_machines is 'ignore'", None, record)
        if settings.unknown_profile:
            return BootDecision("ignore", f"unknown MAC recorded as discovered; unknown_profile "
                                          f"{settings.unknown_profile!r} is not in the catalog", None, record)
        return BootDecision("ignore", "unknown MAC recorded as discovered; no unknown_profile is set", None, record)
    profile = match.profile
    if record is None and not store_ok and installs(profile.after_install):
        return BootDecision("local-disk", f"state store unreachable and profile {profile.name} installs: "
                            "booting from disk rather than risk reinstalling an installed machine", match, record)
    if record is not None and record.state == INSTALLED and profile.after_install == "local-disk":
        return BootDecision("local-disk", f"installed; profile {profile.name} boots installed machines from "
                            "local disk", match, record)
    why = (f"unknown MAC (discovered) -> unknown_profile {profile.name}" if is_fallback(match)
           else f"{match.why} -> profile {profile.name}")
    if record is not None and record.state == FAILED:
        why += "; the last install failed, installing again"
    return BootDecision("boot", why, match, record)

