"""The machine lifecycle and the boot decision: pure functions over plain data.

    discovered --(matched)--> ready --(install kernel/config served)--> installing
    installing --(installer: installed)--> installed     (boots from disk if the profile says so)
    installing --(installer: failed)--> failed
    any --(reinstall)--> ready
"""

from __future__ import annotations

from dataclasses import dataclass

from bootserver.boot.request import BootRequest
from bootserver.catalog.matching import Match
from bootserver.config import Settings
from bootserver.state.base import MachineRecord

DISCOVERED, READY, INSTALLING, INSTALLED, FAILED = "discovered", "ready", "installing", "installed", "failed"
STATES = (DISCOVERED, READY, INSTALLING, INSTALLED, FAILED)

#: events that mean "the install has started" for a profile that installs (after_install set)
INSTALL_STARTED = ("http.kernel", "http.ignition")


@dataclass(frozen=True)
class BootDecision:
    action: str  # boot | local-disk | ignore
    reason: str
    match: Match | None = None
    record: MachineRecord | None = None


def decide(request: BootRequest, match: Match | None, record: MachineRecord | None,
           settings: Settings) -> BootDecision:
    """What this machine should get now, and why (the reason goes to logs and the timeline)."""
    if match is None:
        if settings.unknown_machines == "ignore":
            return BootDecision("ignore", "unknown MAC; unknown_machines is 'ignore'", None, record)
        return BootDecision("ignore", "unknown MAC recorded as discovered; no unknown_profile is set", None, record)
    if record is not None and record.state == INSTALLED and match.profile.after_install == "local-disk":
        return BootDecision("local-disk", f"installed; profile {match.profile.name} boots installed machines "
                                          "from local disk", match, record)
    return BootDecision("boot", f"{match.why} -> profile {match.profile.name}", match, record)


def next_state(current: str, event_kind: str, after_install: str | None) -> str | None:
    """The state an event moves a machine to, or None when it does not change it."""
    if event_kind == "reinstall":
        return READY
    if event_kind == "installer.installed" and current in (READY, INSTALLING, FAILED):
        return INSTALLED
    if event_kind == "installer.failed" and current in (READY, INSTALLING):
        return FAILED
    if event_kind in INSTALL_STARTED and current == READY and after_install not in (None, "none"):
        return INSTALLING
    return None
