"""End to end: real firmware (SeaBIOS + iPXE ROM, OVMF with genuine edk2 PXE) boots and installs
through bootserver, in network namespaces, under QEMU (TCG).

Power-on-to-installed-marker times are printed (run with -s to see them); they are measurements,
not assertions.
"""

import re
import threading
import time

from bootserver.lab import catalog as lab_catalog
from bootserver.lab.disk import read_install_marker
from bootserver.lab.lab import DISK_BOOT_RE, FAILED_RE, INSTALLED_RE, POSTED_RE, MachineSpec
from bootserver.lab.server import BootserverService

from conftest import BOOT_TIMEOUT
from ignition_checks import BAD_CONFIG, check_installed_disk, check_untouched_disk

#: An installed UEFI machine gets silence from bootserver; OVMF reaches its disk entry only after
#: its PXEv4 and HTTPv4 attempts time out (about 60 s each under TCG), then runs the disk's
#: \EFI\BOOT\BOOTX64.EFI, which prints the disk marker.
UEFI_FALLTHROUGH_TIMEOUT = 400


def kinds(timeline):
    return [e["kind"] for e in timeline]


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def install_story(lab, server, spec, results):
    """First boot installs and reports; the second boot of the same VM and disk comes from the disk."""
    machine = lab.power_on(spec.name)
    match, seconds = machine.wait_for(INSTALLED_RE, BOOT_TIMEOUT)
    assert match["host"] == spec.hostname
    results[spec.name] = {"installed": seconds}
    posted = machine.wait_for(POSTED_RE, 60)[0].end()
    timeout = BOOT_TIMEOUT if spec.firmware == "bios" else UEFI_FALLTHROUGH_TIMEOUT
    match, results[spec.name]["disk"] = machine.wait_for(DISK_BOOT_RE, timeout, after=posted)
    assert match["firmware"] == spec.firmware  # the MBR code on BIOS, the EFI application on UEFI


def rejected_story(lab, spec, results):
    """A config real Ignition refuses: the test OS reports Ignition's error and powers off."""
    machine = lab.power_on(spec.name)
    match, results[spec.name] = machine.wait_for(FAILED_RE, BOOT_TIMEOUT)
    assert match["reason"] == "ignition"
    wait_until(lambda: not machine.running(), 60, f"{spec.name} to power off")


def test_bios_and_uefi_install_then_boot_from_disk(make_lab):
    """Real Ignition applies each machine's config to its disk (and refuses a bad one); the
    machines then boot from their disks."""
    bios, uefi = MachineSpec.make(1, "bios"), MachineSpec.make(1, "uefi")
    bad = MachineSpec.make(2, "bios", metadata=BAD_CONFIG)
    server = BootserverService()
    lab = make_lab([bios, uefi, bad], server)
    results, errors = {}, []

    def story(spec):
        try:
            if spec is bad:
                rejected_story(lab, spec, results)
            else:
                install_story(lab, server, spec, results)
        except BaseException as exc:  # reported below, from the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=story, args=(spec,)) for spec in (bios, uefi, bad)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    for spec in (bios, uefi):
        print(f"{spec.firmware}: power-on to installed marker {results[spec.name]['installed']:.1f} s, "
              f"to disk boot {results[spec.name]['disk']:.1f} s")
        machine = lab.machines[spec.name]
        assert read_install_marker(machine.disk) == f"BOOTSERVER-LAB-INSTALLED host={spec.hostname} mac={spec.mac}"
        record = server.machine(spec.mac)
        assert record["state"] == "installed"
        assert record["arch"] == ("x86_64-bios" if spec.firmware == "bios" else "x86_64-efi")
        timeline = server.timeline(spec.mac)
        k = kinds(timeline)
        installed_at = k.index("installer.installed")
        first_boot, second_boot = timeline[:installed_at], timeline[installed_at + 1:]
        # what was served on the first boot, in order
        assert [e["detail"]["action"] for e in first_boot if e["kind"] == "http.ipxe"] == ["boot"]
        served = [e["detail"]["file"] for e in first_boot if e["kind"] in ("http.kernel", "http.asset")]
        # the test OS, then what Ignition fetched: the merged fragment (fetch), the payload (files)
        assert served == [lab.kernel_asset, lab.initrd_asset, lab_catalog.FRAGMENT_ASSET, lab_catalog.PAYLOAD_ASSET]
        assert k.index("dhcp.offer") < k.index("http.ipxe") < k.index("http.kernel") < k.index("http.ignition")
        assert k.index("http.ignition") < installed_at
        if spec.firmware == "uefi":
            transfers = [e["detail"] for e in first_boot if e["kind"] == "tftp.transfer"]
            assert any(t["file"] == "ipxe.efi" and t["outcome"] == "complete" for t in transfers), transfers
            # installed UEFI machines get silence (installed_dhcp auto): nothing is served again
            assert not [e for e in second_boot if e["kind"] in ("http.ipxe", "http.kernel", "tftp.transfer")]
        console = machine.serial_text()
        second_console = console[console.index("TESTOS-POSTED"):]
        if spec.firmware == "bios":
            assert [e["detail"]["action"] for e in second_boot if e["kind"] == "http.ipxe"] == ["local-disk"]
            assert "http.kernel" not in kinds(second_boot)
            # iPXE ran the served sanboot (the last characters can be lost when the MBR resets COM1)
            assert "Booting from SAN device 0x8" in second_console
        else:
            # OVMF tried the network, heard nothing, and started the disk's boot entry
            assert re.search(r'BdsDxe: failed to load Boot\d+ "UEFI PXEv4', second_console)
            assert re.search(r'BdsDxe: starting Boot\d+ "UEFI Misc Device"', second_console)
        assert console.count("TESTOS-INSTALLED") == 1, "the machine installed twice"
        check_installed_disk(machine.disk, spec, [s for s in (bios, uefi, bad) if s is not spec])
    # the bad config: Ignition's fetch stage refused it, bootserver's timeline says why
    print(f"bad config: power-on to failed {results[bad.name]:.1f} s")
    assert server.machine(bad.mac)["state"] == "failed"
    failed = [e for e in server.timeline(bad.mac) if e["kind"] == "installer.failed"]
    assert len(failed) == 1
    reason = failed[0]["detail"]["detail"]
    assert "ignition fetch stage failed" in reason, reason
    assert "CRITICAL : Ignition failed: hash verification failed" in reason, reason
    check_untouched_disk(lab.machines[bad.name].disk)


def test_uefi_snponly_boots_the_test_os(make_lab):
    spec = MachineSpec.make(1, "uefi-snponly")
    server = BootserverService(uefi_loader="snponly.efi")
    lab = make_lab([spec], server)
    machine = lab.power_on(spec.name)
    _, seconds = machine.wait_for(INSTALLED_RE, BOOT_TIMEOUT)
    machine.wait_for(POSTED_RE, 60)
    print(f"uefi-snponly: power-on to installed marker {seconds:.1f} s")
    transfers = [e["detail"] for e in server.timeline(spec.mac) if e["kind"] == "tftp.transfer"]
    assert [t["file"] for t in transfers if t["outcome"] == "complete"] == ["snponly.efi"]
    assert server.machine(spec.mac)["state"] == "installed"


NO_BOOT_RE = r"No more network devices"


def test_unknown_mac_discovered_and_not_booted(make_lab):
    known = MachineSpec.make(1, "bios")
    stranger = MachineSpec.make(0xF1, "bios", in_catalog=False)
    discover = BootserverService(unknown_machines="discover")
    ignore = BootserverService(unknown_machines="ignore")
    lab_discover = make_lab([known, stranger], discover)
    lab_ignore = make_lab([stranger], ignore)
    seen = lab_discover.power_on(stranger.name)
    ignored = lab_ignore.power_on(stranger.name)
    for machine in (seen, ignored):
        machine.wait_for(NO_BOOT_RE, BOOT_TIMEOUT)
        assert "TESTOS" not in machine.serial_text()
    record = wait_until(lambda: discover.machine(stranger.mac), 30, "the discovered record")
    assert record["state"] == "discovered"
    assert record["profile"] in (None, "")
    timeline = discover.timeline(stranger.mac)
    assert not [e for e in timeline if e["kind"] in ("http.kernel", "http.ipxe", "tftp.transfer")]
    # with `ignore` the unknown MAC gets no answer and leaves no record
    assert ignore.machine(stranger.mac) is None


def test_broken_catalog_edit_does_not_stop_a_booting_machine(make_lab):
    spec = MachineSpec.make(1, "bios")
    server = BootserverService()
    lab = make_lab([spec], server)
    log = lab.workdir / "bootserver.log"
    machine = lab.power_on(spec.name)
    # while the machine's firmware runs, break the catalog: a YAML syntax error and a bad reference
    (server.catalog_dir / "lab.yaml").write_text((server.catalog_dir / "lab.yaml").read_text()
                                                 .replace("profile: lab-install", "profile: [unclosed"))
    (server.catalog_dir / "zz-broken.yaml").write_text("kind: Machine\nspec: {mac: nonsense}\n")
    wait_until(lambda: "catalog reload" in log.read_text() and "failed" in log.read_text(), 30,
               "bootserver to reject the broken catalog")
    assert "TESTOS-INSTALLED" not in machine.serial_text(), "the machine finished before the edit took effect"
    _, seconds = machine.wait_for(INSTALLED_RE, BOOT_TIMEOUT)
    machine.wait_for(POSTED_RE, 60)
    server.check_running()
    assert server.machine(spec.mac)["state"] == "installed"
    assert "still serving generation" in log.read_text()
