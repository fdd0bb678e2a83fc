"""End to end through Vagrant: `vagrant up` of box-less vagrant-libvirt machines (two BIOS, one UEFI)
installs them through bootserver running on the host (host mode: `bootserver lab vagrant`), then they
boot from their disks; afterwards nothing is left: no domain, network, pool, daemon, namespace or NVRAM.

libvirt runs privately inside the lab's network namespace (CI has no systemd and no libvirtd), QEMU
under TCG (driver qemu: KVM does not work on these hosts). Times are printed (-s), not asserted.
"""

import os
import subprocess
import time

import pytest

from bootserver.lab.disk import read_install_marker
from bootserver.lab.libvirt_host import check_tools
from bootserver.lab.netns import list_netns
from bootserver.lab.vagrant import VagrantLab

#: Seconds for all three machines to reach their disks: 40-110 s under TCG (an installed UEFI machine
#: goes iPXE -> GRUB -> disk), much more when the two CPUs are shared with other QEMU runs.
BOOT_TIMEOUT = 480


def settled_timeline(lab, machine, timeout=15):
    """The machine's timeline once its second boot's answer is in it: bootserver answers before the
    event's group commit, so the disk marker on the console can be a moment ahead of the store."""
    deadline = time.monotonic() + timeout
    while True:
        timeline = lab.server.timeline(machine.mac)
        kinds = [e["kind"] for e in timeline]
        if "installer.installed" in kinds and "http.ipxe" in kinds[kinds.index("installer.installed"):]:
            return timeline
        if time.monotonic() > deadline:
            return timeline  # the assertions below say what is missing
        time.sleep(0.5)


@pytest.mark.timeout(900)
def test_vagrant_up_installs_box_less_machines_through_bootserver_on_the_host(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespace, libvirtd)")
    problems = check_tools()
    assert not problems, "host is missing Vagrant lab requirements: " + "; ".join(problems)
    lab = VagrantLab(tmp_path / "vagrant", ["bios", "bios", "uefi"], driver="qemu",
                     log=lambda line: print(line, flush=True))
    started = time.monotonic()
    teardown = 0.0
    try:
        lab.up(timeout=300)
        network = lab.host.virsh("net-dumpxml", "bootserver-boot").stdout
        assert "fd88::1" in network and "no-ping" in network and "<forward" not in network
        assert sorted(lab.host.domains()) == ["bootserver-pxe1", "bootserver-pxe2", "bootserver-pxe3"]
        results = lab.wait(timeout=BOOT_TIMEOUT)
        for name, machine in lab.machines.items():
            assert results[name]["host"] == name
            assert results[name]["disk_firmware"] == machine.firmware  # MBR code / EFI application on the disk
            disk = lab.host.pool_dir / f"bootserver-{name}-vda.raw"
            assert read_install_marker(disk) == f"BOOTSERVER-LAB-INSTALLED host={name} mac={machine.mac}"
            record = lab.server.machine(machine.mac)
            assert record["state"] == "installed"
            assert record["arch"] == ("x86_64-bios" if machine.firmware == "bios" else "x86_64-efi")
            timeline = settled_timeline(lab, machine)
            kinds = [e["kind"] for e in timeline]
            installed_at = kinds.index("installer.installed")
            assert kinds.index("dhcp.offer") < kinds.index("http.kernel") < kinds.index("http.ignition") < installed_at
            second_boot = timeline[installed_at + 1:]
            assert "http.kernel" not in [e["kind"] for e in second_boot]
            if machine.firmware == "bios":
                assert [e["detail"]["action"] for e in second_boot if e["kind"] == "http.ipxe"] == ["local-disk"], \
                    (name, kinds)
            assert machine.console_text().count("TESTOS-INSTALLED") == 1, "the machine installed twice"
    finally:
        teardown = time.monotonic()
        removed = lab.down()
        teardown = time.monotonic() - teardown
        print(f"vagrant lab: removed {', '.join(removed)}", flush=True)
    print(f"\nvagrant lab: up (libvirt, network, bootserver, `vagrant up`) {lab.up_done - started:.1f} s "
          f"(`vagrant up` alone {lab.up_done - lab.up_started:.1f} s), teardown {teardown:.1f} s, "
          f"total {time.monotonic() - started:.1f} s")
    for name, machine in lab.machines.items():
        print(f"  {name} {machine.firmware}: installed {results[name]['installed']:.1f} s, "
              f"booted from disk {results[name]['disk']:.1f} s after `vagrant up` started")
    # nothing is left behind
    assert lab.netns not in list_netns()
    assert not lab.host.socket.exists()
    assert not lab.host.pool_dir.exists()
    assert not list((lab.workdir / "nvram").iterdir())
    assert not (lab.workdir / ".vagrant").exists() and not (lab.workdir / "vagrant.d").exists()
    mine = subprocess.run(["pgrep", "-f", str(lab.workdir)], capture_output=True, text=True).stdout.split()
    assert not mine, f"processes of this lab still run: {mine}"
