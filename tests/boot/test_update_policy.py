"""The pure update policy: who is offered what, and when (no store, no sockets)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bootserver.boot import updates as up
from bootserver.boot.matching import Match
from bootserver.catalog.model import (BootSpec, Group, Machine, Profile, Selector, Source, UpdatePolicy,
                                      Window)

SRC = Source(Path("x.yaml"), 1)
PAYLOAD = up.PackageFile("flatcar_production_update.gz", 10, "c2hhMQ==", "c2hhMjU2", "00" * 32)
NEW = up.Release("4116.0.0", "amd64", PAYLOAD)
MONDAY_3AM = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)  # a Monday


def verdict(policy=UpdatePolicy(), release=NEW, running="4081.2.0", paused=False, now=MONDAY_3AM):
    return up.evaluate(policy, release, running, paused, now)


def test_offers_a_newer_release():
    assert verdict() == up.Verdict(True, "offer 4116.0.0 (runs 4081.2.0)")


@pytest.mark.parametrize("kwargs, reason, current", [
    ({"running": "4116.0.0"}, "current: runs 4116.0.0, target 4116.0.0", True),
    ({"running": "4200.0.0"}, "current: runs 4200.0.0, target 4116.0.0", True),  # never a downgrade
    ({"running": "4116.0.0+dev-build"}, "current: runs 4116.0.0+dev-build", True),
    ({"running": ""}, "reports no usable version", False),
    ({"paused": True}, "the rollout is paused", False),
    ({"policy": UpdatePolicy(enabled=False)}, "updates are off", False),
    ({"release": None}, "no update payload for the stable channel in the mirror", False),
    ({"release": None, "policy": UpdatePolicy(version="4081.2.0")}, "no update payload for 4081.2.0", False),
    ({"policy": UpdatePolicy(window=Window(22 * 60, 120))}, "outside the maintenance window (22:00 UTC", False),
])
def test_reasons_not_to_offer(kwargs, reason, current):
    found = verdict(**kwargs)
    assert not found.offer and reason in found.reason and found.current is current


@pytest.mark.parametrize("window, now, inside", [
    (Window(2 * 60, 120), datetime(2026, 11, 30, 2, 0, tzinfo=UTC), True),
    (Window(2 * 60, 120), datetime(2026, 11, 30, 3, 59, tzinfo=UTC), True),
    (Window(2 * 60, 120), datetime(2026, 11, 30, 4, 0, tzinfo=UTC), False),
    (Window(23 * 60, 180), datetime(2026, 12, 1, 1, 30, tzinfo=UTC), True),  # opened yesterday at 23:00
    (Window(23 * 60, 180), datetime(2026, 12, 1, 2, 0, tzinfo=UTC), False),
    (Window(23 * 60, 180, ("sat",)), datetime(2026, 11, 29, 1, 0, tzinfo=UTC), True),  # Sunday 01:00, from Sat
    (Window(23 * 60, 180, ("sun",)), datetime(2026, 11, 29, 1, 0, tzinfo=UTC), False),  # Sunday's opens at 23:00
    (Window(0, 24 * 60, ("mon",)), MONDAY_3AM, True),
    (Window(0, 24 * 60, ("tue",)), MONDAY_3AM, False),
    (None, MONDAY_3AM, True),
])
def test_maintenance_window(window, now, inside):
    assert up.in_window(window, now) is inside


def test_group_policy_wins_over_profile_and_machines_follow_their_profile():
    profile = Profile("p", BootSpec("k"), SRC, updates=UpdatePolicy(channel="beta"))
    group = Group("g", Selector(), "p", SRC, updates=UpdatePolicy(max_updating=2))
    assert up.policy_for(Match(profile, {}, group=group)) == ("group/g", group.updates)
    plain_group = Group("h", Selector(), "p", SRC)
    assert up.policy_for(Match(profile, {}, group=plain_group)) == ("profile/p", profile.updates)
    machine = Machine("m", "02:00:00:00:00:01", "p", SRC)
    assert up.policy_for(Match(profile, {}, machine=machine, group=group)) == ("profile/p", profile.updates)
    assert up.policy_for(Match(Profile("q", BootSpec("k"), SRC), {})) is None
    assert up.policy_for(None) is None


@pytest.mark.parametrize("status, event, result, version, target, after", [
    (up.OFFERED, up.EVENT_DOWNLOAD_STARTED, up.RESULT_SUCCESS, "4081.2.0", "4116.0.0", up.DOWNLOADING),
    (up.DOWNLOADING, up.EVENT_DOWNLOAD_FINISHED, up.RESULT_SUCCESS, "4081.2.0", "4116.0.0", up.DOWNLOADED),
    (up.DOWNLOADED, up.EVENT_UPDATE_COMPLETE, up.RESULT_SUCCESS, "4081.2.0", "4116.0.0", up.APPLIED),
    (up.APPLIED, up.EVENT_UPDATE_COMPLETE, up.RESULT_SUCCESS_REBOOT, "4116.0.0", "4116.0.0", up.CURRENT),
    (up.WAITING, up.EVENT_UPDATE_COMPLETE, up.RESULT_SUCCESS_REBOOT, "4081.2.0", None, up.WAITING),  # a boot
    (up.APPLIED, up.EVENT_UPDATE_COMPLETE, up.RESULT_SUCCESS_REBOOT, "4081.2.0", "4116.0.0", up.APPLIED),
    (up.DOWNLOADING, up.EVENT_DOWNLOAD_FINISHED, up.RESULT_ERROR, "4081.2.0", "4116.0.0", up.ERROR),
])
def test_events_move_the_update_state(status, event, result, version, target, after):
    assert up.status_after_event(status, event, result, version, target) == after


def test_slots_are_held_while_updating_and_go_stale():
    record = up.UpdateRecord("m", status=up.DOWNLOADING, updated=1000.0)
    assert up.holds_slot(record, 1000.0 + up.STALE_AFTER - 1)
    assert not up.holds_slot(record, 1000.0 + up.STALE_AFTER)
    assert not up.holds_slot(up.UpdateRecord("m", status=up.CURRENT, updated=1000.0), 1000.0)
