"""Phase 1: the lab harness boots real firmware through a stand-in boot service (dnsmasq proxy +
a tiny HTTP server), proving the test OS, the disk marker and the harness before bootserver serves."""

import re

from standin import StandinServer

from bootserver.lab.disk import read_install_marker
from bootserver.lab.lab import DISK_BOOT_RE, INSTALLED_RE, POSTED_RE, MachineSpec

from conftest import BOOT_TIMEOUT


def test_bios_and_uefi_install_through_standin(make_lab):
    bios, uefi = MachineSpec.make(1, "bios"), MachineSpec.make(1, "uefi")
    server = StandinServer()
    lab = make_lab([bios, uefi], server)
    machines = [lab.power_on(bios.name), lab.power_on(uefi.name)]
    for machine, spec in zip(machines, (bios, uefi)):
        match, seconds = machine.wait_for(INSTALLED_RE, BOOT_TIMEOUT)
        assert match["host"] == spec.hostname
        machine.wait_for(POSTED_RE, 30)
        print(f"{spec.name}: power-on to installed marker {seconds:.1f} s")
        assert read_install_marker(machine.disk) == f"BOOTSERVER-LAB-INSTALLED host={spec.hostname} mac={spec.mac}"
        kinds = [e["kind"] for e in server.timeline(spec.mac)]
        assert kinds.index("http.ignition") < kinds.index("installer.installed")
    # BIOS: the reboot comes back to the stand-in, which answers sanboot; SeaBIOS runs the MBR.
    match, seconds = machines[0].wait_for(DISK_BOOT_RE, BOOT_TIMEOUT)
    assert match["firmware"] == "bios"
    assert "local-disk" in [e["kind"] for e in server.timeline(bios.mac)]
    assert re.search("ipxe.efi", (lab.workdir / "dnsmasq-proxy.log").read_text())
