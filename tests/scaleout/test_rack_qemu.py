"""Real firmware behind a relay (issue 14): in the rack of tests/scaleout/rack.py, a BIOS machine
(SeaBIOS + iPXE) on one machine subnet and a UEFI machine (OVMF, edk2's own PXE) on the other get
their address from the site's DHCP server and their boot answers from the replicas, both through
isc-dhcp-relay, matched by the relay's subnet (each subnet's Group gives its hostname). They fetch
everything from the floating address, run the lab's test OS installer (real Ignition) and report
`installed` with an Idempotency-Key; the shared PostgreSQL then says `installed` for both. The test
OS then reboots the machine, and its next boot comes from its disk, still through the relay: iPXE's
sanboot on BIOS; on UEFI iPXE -> GRUB, which reads its local-disk grub.cfg over TFTP from the
floating address and starts the disk's own EFI loader (as tests/e2e/test_lab.py does without relay).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

import pytest
import yaml

from bootserver.lab import catalog as lab_catalog
from bootserver.lab import testos
from bootserver.lab.disk import create_disk, read_install_marker
from bootserver.lab.lab import DISK_BOOT_RE, INSTALLED_RE, POSTED_RE, check_host
from bootserver.lab.qemu import Machine, lab_mac
from tests.scaleout.rack import ADMIN_TOKEN, FLOATING, SUBNETS, Rack, sh
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
              pytest.mark.timeout(900)]

BOOT_TIMEOUT = 420  # TCG on two shared CPUs, plus iPXE's IPv6 wait and the relay hop
DISK_BOOT_TIMEOUT = 240  # the second boot: firmware, DHCP through the relay, iPXE (and GRUB), the disk
MACHINES = {"c1": ("bios", 1), "c2": ("uefi", 2)}  # subnet -> (firmware, index)


def write_catalog(root: Path, assets: Path, kernel: str, initrd: str) -> Path:
    """The lab's test OS profile; one Group per machine subnet (selector: the relay's subnet)."""
    profile = lab_catalog.test_os_profile(kernel, initrd, lab_catalog.write_ignition_assets(assets))
    groups = []
    for name, (firmware, _) in MACHINES.items():
        hostname = f"rack-{firmware}"
        groups.append({"apiVersion": "bootserver/v1", "kind": "Group", "metadata": {"name": f"subnet-{name}"},
                       "spec": {"selector": {"subnet": f"{SUBNETS[name]}.0.0/16"}, "profile": lab_catalog.PROFILE,
                                "metadata": {"hostname": hostname,
                                             "ssh_authorized_keys": [lab_catalog.lab_ssh_key(hostname)]}}})
    (root / "templates").mkdir(parents=True)
    (root / "templates" / "lab.bu").write_text(lab_catalog.BUTANE_TEMPLATE)
    (root / "rack.yaml").write_text(yaml.safe_dump_all([profile, *groups], sort_keys=False))
    return root


def api(rack: Rack, path: str) -> dict:
    out = sh(*rack.exec("rtr", ["curl", "--silent", "--fail", "--max-time", "10", "-H",
                                f"Authorization: Bearer {ADMIN_TOKEN}", f"http://{FLOATING}:8080{path}"]))
    return json.loads(out.stdout)


def second_boot(rack: Rack, mac: str) -> list[dict]:
    """The machine's timeline after its installer said `installed`."""
    events = sorted(api(rack, f"/api/v1/machines/{mac}/events?limit=1000")["events"], key=lambda e: e["seq"])
    kinds = [e["kind"] for e in events]
    return events[kinds.index("installer.installed") + 1:]


def check_disk_boot(rack: Rack, machine: Machine, console: str) -> None:
    """What bootserver answered on the boot after the install: the disk, never the installer again."""
    after = second_boot(rack, machine.mac)
    assert [e["detail"]["action"] for e in after if e["kind"] == "http.ipxe"] == ["local-disk"], after
    assert not [e for e in after if e["kind"] in ("http.kernel", "http.ignition")], after
    if machine.firmware == "uefi":  # GRUB got its local-disk config over TFTP, through the relay's routing
        assert [e["detail"]["action"] for e in after if e["kind"] == "grub.config"] == ["local-disk"], after
        assert any(e["kind"] == "tftp.transfer" and e["detail"]["file"] == "/grub/grub.cfg"
                   and e["detail"]["outcome"] == "complete" for e in after), after
        assert re.search(r"bootserver: starting \(hd0,(gpt|msdos)1\)/EFI/BOOT/BOOTX64.EFI", console)
        assert not re.search(r'BdsDxe: starting Boot\d+ "UEFI Misc Device"', console)  # not the firmware's own


def test_bios_and_uefi_machines_install_through_the_relay(tmp_path):
    problems = check_host()
    assert not problems, "; ".join(problems)
    assets = tmp_path / "assets"
    kernel, initrd = testos.install_into(assets)
    catalogs = {}
    for name in ("r1", "r2", "r3"):
        catalogs[name] = write_catalog(tmp_path / f"catalog-{name}", assets, kernel, initrd)
    machines: list[Machine] = []
    with Rack(tmp_path) as rack:
        try:
            rack.init_postgres()
            rack.start_postgres()
            for name in rack.replicas:
                rack.start_replica(name, catalogs[name], assets)
            rack.wait_replicas_ready()
            for name in rack.replicas:
                rack.start_keepalived(name)
            wait_for(lambda: rack.holder() is not None and rack.floating_answers(), 30, "keepalived to elect")
            rack.start_relay(rack.start_address_dhcp())
            for subnet, (firmware, index) in MACHINES.items():
                tap = rack.tap(subnet, f"t{secrets.token_hex(3)}")
                machine = Machine(name=f"{firmware}-{index}", mac=lab_mac(index, firmware), firmware=firmware,
                                  disk=create_disk(tmp_path / f"{firmware}.disk.img"), workdir=tmp_path, tap=tap,
                                  memory_mb=512)
                machine.start(rack.ns[subnet])
                machines.append(machine)
            results = {}
            for machine in machines:
                match, seconds = machine.wait_for(INSTALLED_RE, BOOT_TIMEOUT)
                results[machine.name] = {"installed s": round(seconds, 1), "host": match["host"]}
                assert match["host"] == f"rack-{machine.firmware}"  # matched by its relay's subnet
            posted = {}
            for machine in machines:
                posted[machine.name] = machine.wait_for(POSTED_RE, 120)
                record = api(rack, f"/api/v1/machines/{machine.mac}")
                events = api(rack, f"/api/v1/machines/{machine.mac}/events?limit=200")["events"]
                assert record["state"] == "installed", record
                installed = [e for e in events if e["kind"] == "installer.installed"]
                assert len(installed) == 1 and installed[0]["key"], installed  # the test OS sent a key
                assert any(e["kind"] == "dhcp.offer" for e in events)
                results[machine.name]["client"] = record["client_ip"]
            for machine in machines:  # the test OS rebooted it: this boot must come from the disk
                posted_at, rebooted = posted[machine.name]
                match, seconds = machine.wait_for(DISK_BOOT_RE, DISK_BOOT_TIMEOUT, after=posted_at.end())
                assert match["firmware"] == machine.firmware
                results[machine.name].update({"disk boot s": round(seconds, 1),
                                              "second boot s": round(seconds - rebooted, 1)})
                console = machine.serial_text()
                check_disk_boot(rack, machine, console[posted_at.end():])
            print("\nrack machines: " + json.dumps(results))
        finally:
            for machine in machines:
                machine.stop()
    for machine in machines:
        assert f"host=rack-{machine.firmware}" in (read_install_marker(machine.disk) or "")
