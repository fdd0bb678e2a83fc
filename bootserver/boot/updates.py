"""Flatcar update policy: who is offered which release, and when. Pure functions over plain data.

A machine's policy comes from its catalog entry (its Group's `updates`, else its Profile's). It is
offered the target release when updates are on, the target is newer than what it runs, the rollout
is not paused and the clock is inside the maintenance window. Whether a slot is free under the
rollout limits (N updating at once, M offers per hour) is decided atomically by the store, because
many machines ask at the same moment; `holds_slot` says which machines count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from bootserver.boot.matching import Match
from bootserver.catalog.model import UpdatePolicy, Window

#: Omaha event types and results update_engine sends (update_engine omaha_request_action.h).
EVENT_UPDATE_COMPLETE, EVENT_DOWNLOAD_STARTED, EVENT_DOWNLOAD_FINISHED = 3, 13, 14
RESULT_ERROR, RESULT_SUCCESS, RESULT_SUCCESS_REBOOT = 0, 1, 2

# Update states of a machine, as `bootserver machines list` shows them.
CURRENT, WAITING, OFFERED, DOWNLOADING, DOWNLOADED, APPLIED, ERROR = (
    "current", "waiting", "offered", "downloading", "downloaded", "applied", "error")
#: states that occupy one of the rollout's "updating at once" slots
HOLDING = (OFFERED, DOWNLOADING, DOWNLOADED, APPLIED)
#: a slot is given back when its machine has said nothing for this long (it died, or never rebooted)
STALE_AFTER = 2 * 3600.0
#: machine-ids bootserver cannot tie to a machine are recorded up to this many (anyone can POST one)
MAX_UNKNOWN = 10_000

VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


class UnknownRollout(LookupError):
    """Pause/resume named a rollout the catalog does not have."""


@dataclass(frozen=True)
class PackageFile:
    """One mirrored file as the Omaha response names it."""

    name: str
    size: int
    sha1_b64: str
    sha256_b64: str
    sha256_hex: str


@dataclass(frozen=True)
class Release:
    """A mirrored release that can be offered: the update payload and any OEM/sysext packages."""

    version: str
    arch: str
    payload: PackageFile
    extras: tuple[PackageFile, ...] = ()


@dataclass
class UpdateRecord:
    """What bootserver knows of one updating machine, keyed by the machine-id update_engine reports."""

    machine_id: str
    mac: str | None = None  # None: a machine-id bootserver could not tie to a machine it booted
    client_ip: str | None = None
    rollout: str | None = None  # "group/NAME" or "profile/NAME": whose limits apply
    version: str | None = None  # the OS version it last reported
    track: str | None = None
    status: str = WAITING
    target: str | None = None  # the version offered
    offered_at: float | None = None
    error_code: int | None = None
    last_check: float = 0.0
    updated: float = 0.0  # last time it said anything (slots of silent machines go stale)


@dataclass(frozen=True)
class Verdict:
    offer: bool
    reason: str  # why not, or what is offered: goes to the timeline and logs
    current: bool = False  # the machine already runs the target (or newer)


def version_key(version: str | None) -> tuple[int, ...] | None:
    """(major, minor, patch) of "4081.2.0" (also "4081.2.0+dev"); None when it is not a version."""
    found = VERSION_RE.match(version or "")
    return tuple(int(part) for part in found.groups()) if found else None


def policy_for(match: Match | None) -> tuple[str, UpdatePolicy] | None:
    """The policy that applies to a matched machine and the rollout it belongs to.

    A Group's `updates` wins over its Profile's; a Machine document has none of its own."""
    if match is None:
        return None
    if match.group is not None and match.group.updates is not None and match.machine is None:
        return f"group/{match.group.name}", match.group.updates
    if match.profile.updates is not None:
        return f"profile/{match.profile.name}", match.profile.updates
    return None


def in_window(window: Window | None, now: datetime) -> bool:
    """True when `now` (UTC) is inside the maintenance window; no window means always."""
    if window is None:
        return True
    for days_back in (0, 1):  # a window that starts late yesterday may still be open
        day = now - timedelta(days=days_back)
        if window.days and day.strftime("%a").lower() not in window.days:
            continue
        start = day.replace(hour=window.start_minute // 60, minute=window.start_minute % 60, second=0,
                            microsecond=0)
        if start <= now < start + timedelta(minutes=window.length_minutes):
            return True
    return False


def evaluate(policy: UpdatePolicy, release: Release | None, running: str | None, paused: bool,
             now: datetime) -> Verdict:
    """Whether a machine running `running` may be offered `release` now (limits aside)."""
    if not policy.enabled:
        return Verdict(False, "updates are off for this machine")
    if release is None:
        wanted = policy.version or f"the {policy.channel} channel"
        return Verdict(False, f"no update payload for {wanted} in the mirror (bootserver assets fetch flatcar "
                              f"--update-payload)")
    have, target = version_key(running), version_key(release.version)
    if have is None:
        return Verdict(False, f"the machine reports no usable version ({running!r})")
    if have >= target:
        return Verdict(False, f"current: runs {running}, target {release.version}", current=True)
    if paused:
        return Verdict(False, "the rollout is paused")
    if not in_window(policy.window, now):
        return Verdict(False, f"outside the maintenance window ({policy.window.describe()})")
    return Verdict(True, f"offer {release.version} (runs {running})")


def holds_slot(record: UpdateRecord, now: float) -> bool:
    return record.status in HOLDING and now - record.updated < STALE_AFTER


def status_after_event(status: str, event_type: int, result: int, version: str | None,
                       target: str | None) -> str:
    """The machine's update state after one reported Omaha event."""
    if result == RESULT_ERROR:
        return ERROR
    if event_type == EVENT_DOWNLOAD_STARTED:
        return DOWNLOADING
    if event_type == EVENT_DOWNLOAD_FINISHED:
        return DOWNLOADED
    if event_type == EVENT_UPDATE_COMPLETE and result == RESULT_SUCCESS:
        return APPLIED  # written to the other partition; the machine runs it after its reboot
    if event_type == EVENT_UPDATE_COMPLETE and result == RESULT_SUCCESS_REBOOT:
        have, wanted = version_key(version), version_key(target)
        return CURRENT if have is not None and wanted is not None and have >= wanted else status
    return status


EVENT_NAMES = {EVENT_UPDATE_COMPLETE: "update-complete", EVENT_DOWNLOAD_STARTED: "download-started",
               EVENT_DOWNLOAD_FINISHED: "download-finished"}
RESULT_NAMES = {RESULT_ERROR: "error", RESULT_SUCCESS: "success", RESULT_SUCCESS_REBOOT: "success-reboot"}
