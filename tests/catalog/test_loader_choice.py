"""`loader` (ipxe | grub): on a profile's boot, a Group or a Machine; the Machine's wins, then the
Group's, then the profile's; anything else is a catalog error naming the field."""

import pytest

from bootserver.boot.loaders import loader_for
from bootserver.boot.matching import match_for
from bootserver.boot.request import BootRequest
from bootserver.catalog.loader import CatalogError, load_catalog
from bootserver.config import Settings
from tests.conftest import write_catalog

CATALOG = """\
apiVersion: bootserver/v1
kind: Profile
metadata: {name: secure}
spec:
  boot: {kernel: os/vmlinuz, loader: grub}
---
apiVersion: bootserver/v1
kind: Profile
metadata: {name: plain}
spec:
  boot: {kernel: os/vmlinuz}
---
apiVersion: bootserver/v1
kind: Machine
metadata: {name: by-profile}
spec: {mac: "52:54:00:00:00:01", profile: secure}
---
apiVersion: bootserver/v1
kind: Machine
metadata: {name: by-machine}
spec: {mac: "52:54:00:00:00:02", profile: secure, loader: ipxe}
---
apiVersion: bootserver/v1
kind: Group
metadata: {name: rack}
spec: {selector: {mac_prefix: "52:54:00:00:01"}, profile: plain, loader: grub}
"""


def loader_of(catalog, mac):
    return loader_for(match_for(catalog, BootRequest(mac=mac), Settings()))


def test_machine_over_group_over_profile(tmp_path):
    catalog = load_catalog(write_catalog(tmp_path / "c", {"all.yaml": CATALOG}))
    assert loader_of(catalog, "52:54:00:00:00:01") == "grub"  # the profile's
    assert loader_of(catalog, "52:54:00:00:00:02") == "ipxe"  # the Machine's over the profile's
    assert loader_of(catalog, "52:54:00:00:01:07") == "grub"  # the Group's over the profile's ipxe
    assert loader_for(None) == "ipxe"


def test_unknown_loader_is_a_catalog_error(tmp_path):
    root = write_catalog(tmp_path / "c", {"all.yaml": CATALOG.replace("loader: ipxe", "loader: pxelinux")})
    with pytest.raises(CatalogError) as info:
        load_catalog(root)
    assert any("loader" in str(p) and "pxelinux" in str(p) for p in info.value.problems), info.value.problems
