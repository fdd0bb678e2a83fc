"""Matching precedence, metadata merging and the unknown-machine fallback (pure: no I/O)."""

from types import MappingProxyType

from bootserver.boot.request import BootRequest
from bootserver.catalog.loader import load_catalog
from bootserver.boot.matching import deep_merge, match
from tests.conftest import MACHINES, PROFILE, write_catalog

GROUPS = MACHINES + """\
---
apiVersion: bootserver/v1
kind: Group
metadata: {name: lab-efi}
spec:
  selector: {mac_prefix: "52:54:00", arch: x86_64-efi}
  profile: install
  metadata: {hostname: efi-host}
---
apiVersion: bootserver/v1
kind: Group
metadata: {name: rack-a}
spec:
  selector: {mac_prefix: "52:54:00", arch: x86_64-efi, subnet: 10.1.0.0/24, labels: {rack: a}}
  profile: live
---
apiVersion: bootserver/v1
kind: Group
metadata: {name: default}
spec:
  profile: live
  metadata: {tier: default}
"""


def catalog(tmp_path):
    return load_catalog(write_catalog(tmp_path / "c", {"a.yaml": PROFILE, "m.yaml": GROUPS,
                                                       "ignition.json": "{}"}))


def req(mac, **kw):
    labels = MappingProxyType(kw.pop("labels", {}))
    return BootRequest(mac=mac, labels=labels, **kw)


def test_machine_by_mac_wins_over_any_group(tmp_path):
    m = match(catalog(tmp_path), req("52:54:00:00:00:01", arch="x86_64-efi"))
    assert m.machine.name == "node1" and m.profile.name == "install" and m.group.name == "lab-efi"
    assert m.metadata["hostname"] == "node1"  # machine over group


def test_group_with_most_matching_keys_wins(tmp_path):
    c = catalog(tmp_path)
    assert match(c, req("52:54:00:00:00:99")).group.name == "lab"
    assert match(c, req("52:54:00:00:00:99", arch="x86_64-efi")).group.name == "lab-efi"
    full = req("52:54:00:00:00:99", arch="x86_64-efi", client_ip="10.1.0.7", labels={"rack": "a"})
    assert match(c, full).group.name == "rack-a"
    wrong_label = req("52:54:00:00:00:99", arch="x86_64-efi", client_ip="10.1.0.7", labels={"rack": "b"})
    assert match(c, wrong_label).group.name == "lab-efi"


def test_default_group_catches_the_rest(tmp_path):
    m = match(catalog(tmp_path), req("00:1b:21:00:00:01"))
    assert m.group.name == "default" and m.metadata == {"tier": "default"}


def test_metadata_deep_merge_group_under_machine(tmp_path):
    m = match(catalog(tmp_path), req("52:54:00:00:00:01"))
    assert dict(m.metadata["disk"]) == {"device": "/dev/vda", "wipe": True}


def test_unknown_mac_without_default_group(tmp_path):
    c = load_catalog(write_catalog(tmp_path / "c", {"a.yaml": PROFILE, "m.yaml": MACHINES, "ignition.json": "{}"}))
    assert match(c, req("00:1b:21:00:00:01")) is None
    assert match(c, req("00:1b:21:00:00:01"), fallback_profile="live").profile.name == "live"


def test_deep_merge_replaces_lists_and_scalars():
    assert deep_merge({"a": {"x": 1, "y": [1]}, "b": 1}, {"a": {"y": [2]}, "b": {"z": 1}}) == \
        {"a": {"x": 1, "y": [2]}, "b": {"z": 1}}
