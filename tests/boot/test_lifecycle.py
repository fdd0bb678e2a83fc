"""The lifecycle and the boot decision: pure functions, tested without a store or sockets."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bootserver.boot import lifecycle as lc
from bootserver.boot import methods
from bootserver.boot.request import Stage
from bootserver.config import Settings
from bootserver.boot.machine import MachineRecord

MAC = "52:54:00:a1:9c:ae"


@dataclass(frozen=True)
class Profile:  # the fields of catalog.model.Profile that the policy reads
    name: str
    after_install: str = "none"


@dataclass(frozen=True)
class Match:  # the fields of boot.matching.Match that the policy reads
    profile: Profile
    machine: object = None
    group: object = None
    why: str = "Machine node1 (MAC 52:54:00:a1:9c:ae)"


INSTALLER = Match(Profile("flatcar-install", "local-disk"), machine="node1")
LIVE = Match(Profile("flatcar-live"), group="lab")
FALLBACK = Match(Profile("rescue", "local-disk"))


def rec(state: str) -> MachineRecord:
    return MachineRecord(mac=MAC, state=state, token="t")


@pytest.mark.parametrize("current,kind,after,expected", [
    ("ready", "http.kernel", "local-disk", "installing"),
    ("ready", "http.ignition", "local-disk", "installing"),
    ("ready", "http.kernel", "none", None),  # a live profile never "installs"
    ("installing", "http.kernel", "local-disk", None),
    ("installed", "http.kernel", "local-disk", None),  # a stray fetch does not undo an install
    ("failed", "http.ignition", "local-disk", "installing"),  # retry
    ("installing", "installer.installed", "local-disk", "installed"),
    ("ready", "installer.installed", "local-disk", "installed"),
    ("installed", "installer.installed", "local-disk", None),
    ("installing", "installer.failed", "local-disk", "failed"),
    ("installed", "installer.failed", "local-disk", None),
    ("ready", "installer.progress", "local-disk", "installing"),
    ("installed", "reinstall", "local-disk", "ready"),
    ("failed", "reinstall", "local-disk", "ready"),
    ("discovered", "reinstall", None, None),  # nothing installed to undo
    ("ready", "dhcp.offer", "local-disk", None),
    ("ready", "tftp.transfer", "local-disk", None),
])
def test_next_state(current, kind, after, expected):
    assert lc.next_state(current, kind, after) == expected


def test_kernel_asset_starts_install_only_when_marked_as_kernel():
    assert lc.next_state("ready", "http.asset", "local-disk", {"role": "kernel"}) == "installing"
    assert lc.next_state("ready", "http.asset", "local-disk", {"role": "initrd"}) is None
    assert lc.next_state("ready", "http.asset", "local-disk") is None


def test_whole_story_by_transitions():
    state = "discovered"
    state = lc.state_when_seen(INSTALLER, rec(state)) or state
    assert state == "ready"
    for kind in ("dhcp.offer", "http.ipxe", "http.kernel", "http.ignition", "installer.installed"):
        state = lc.next_state(state, kind, "local-disk") or state
    assert state == "installed"
    assert lc.decide(INSTALLER, rec(state), Settings()).action == "local-disk"
    state = lc.next_state(state, "reinstall", "local-disk")
    assert lc.decide(INSTALLER, rec(state), Settings()).action == "boot"


def test_state_when_seen():
    assert lc.state_when_seen(None, None) == "discovered"
    assert lc.state_when_seen(FALLBACK, None) == "discovered"
    assert lc.state_when_seen(None, rec("discovered")) is None
    assert lc.state_when_seen(INSTALLER, None) == "ready"
    assert lc.state_when_seen(INSTALLER, rec("discovered")) == "ready"  # adopted
    assert lc.state_when_seen(INSTALLER, rec("installed")) is None


def test_unknown_mac_ignored_or_discovered():
    d = lc.decide(None, None, Settings(unknown_machines="ignore"))
    assert (d.action, d.reason) == ("ignore", "unknown MAC; unknown_machines is 'ignore'")
    d = lc.decide(None, rec("discovered"), Settings(unknown_machines="discover"))
    assert d.action == "ignore" and "discovered" in d.reason and "no unknown_profile" in d.reason
    d = lc.decide(None, None, Settings(unknown_machines="discover", unknown_profile="gone"))
    assert d.action == "ignore" and "'gone' is not in the catalog" in d.reason


def test_unknown_mac_gets_unknown_profile():
    d = lc.decide(FALLBACK, rec("discovered"), Settings(unknown_machines="discover", unknown_profile="rescue"))
    assert (d.action, d.match) == ("boot", FALLBACK)
    assert d.reason == "unknown MAC (discovered) -> unknown_profile rescue"


@pytest.mark.parametrize("state", ["ready", "installing", "failed"])
def test_installer_profile_boots_until_installed(state):
    d = lc.decide(INSTALLER, rec(state), Settings())
    assert d.action == "boot" and "profile flatcar-install" in d.reason
    assert ("installing again" in d.reason) == (state == "failed")


def test_installed_machine_boots_from_disk():
    d = lc.decide(INSTALLER, rec("installed"), Settings())
    assert d.action == "local-disk"
    assert d.reason == "installed; profile flatcar-install boots installed machines from local disk"
    assert d.record.state == "installed"


def test_installed_machine_with_live_profile_keeps_booting_it():
    assert lc.decide(LIVE, rec("installed"), Settings()).action == "boot"


def test_installed_dhcp_is_applied_by_the_dhcp_table_only():
    """The decision says local-disk at every stage; only the DHCP table silences firmware for it."""
    silent = Settings(installed_dhcp="silent")
    assert lc.decide(INSTALLER, rec("installed"), silent).action == "local-disk"
    pxe = methods.choose(7, Stage.PXE, "PXEClient", "local-disk", "installed", silent, "http://s")
    ipxe = methods.choose(7, Stage.IPXE, "PXEClient", "local-disk", "installed", silent, "http://s")
    assert isinstance(pxe, methods.Silence) and isinstance(ipxe, methods.Silence)
    answered = methods.choose(0, Stage.PXE, "PXEClient", "local-disk", "installed",
                              Settings(installed_dhcp="answer"), "http://s")
    assert isinstance(answered, methods.Answer) and answered.boot_file == "undionly.kpxe"


def test_store_unreachable_never_risks_a_reinstall():
    d = lc.decide(INSTALLER, None, Settings(), store_ok=False)
    assert d.action == "local-disk" and "unreachable" in d.reason
    assert lc.decide(LIVE, None, Settings(), store_ok=False).action == "boot"
    assert lc.decide(INSTALLER, None, Settings()).action == "boot"  # new machine, store fine
