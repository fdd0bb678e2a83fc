"""End to end: real firmware (SeaBIOS + iPXE ROM, OVMF with genuine edk2 PXE, OVMF with QEMU's
iPXE EFI ROM) boots and installs through bootserver, in network namespaces, under QEMU (TCG).

Times are printed (run with -s to see them): power-on -> installed marker, -> disk marker, and
the second boot alone (reboot -> disk marker). They are measurements, not assertions; the waits
are bounds that fail a machine which fell back to the firmware's slow paths.
"""

import re
import threading

from bootserver.lab import catalog as lab_catalog
from bootserver.lab.disk import read_install_marker
from bootserver.lab.lab import DISK_BOOT_RE, FAILED_RE, INSTALLED_RE, POSTED_RE, MachineSpec
from bootserver.lab.server import BootserverService
from tests.support.waiting import wait_for

from conftest import BOOT_TIMEOUT
from ignition_checks import BAD_CONFIG, check_installed_disk, check_untouched_disk

#: An installed UEFI machine gets iPXE -> GRUB, which starts the disk's EFI loader within seconds;
#: silence would leave OVMF in PXE and HTTP Boot timeouts for about two minutes.
DISK_BOOT_BOUND = 120


def kinds(timeline):
    return [e["kind"] for e in timeline]


def in_parallel(specs, story) -> None:
    """Run `story(spec)` for every machine at once (they share the lab's network and server);
    the first failure is raised here, in the test's thread."""
    errors = []

    def run(spec):
        try:
            story(spec)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(spec,)) for spec in specs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def install_story(lab, server, spec, results):
    """First boot installs and reports; the second boot of the same VM and disk comes from the disk."""
    machine = lab.power_on(spec.name)
    match, seconds = machine.wait_for(INSTALLED_RE, BOOT_TIMEOUT)
    assert match["host"] == spec.hostname
    results[spec.name] = {"installed": seconds}
    posted, rebooted = machine.wait_for(POSTED_RE, 60)
    match, results[spec.name]["disk"] = machine.wait_for(DISK_BOOT_RE, DISK_BOOT_BOUND, after=posted.end())
    results[spec.name]["second_boot"] = results[spec.name]["disk"] - rebooted
    # the MBR code on BIOS, the EFI application (or shim -> GRUB under Secure Boot) on UEFI
    assert match["firmware"] == ("bios" if spec.firmware == "bios" else "uefi")


def report(spec, result):
    print(f"{spec.firmware}: power-on -> installed {result['installed']:.1f} s, -> disk boot "
          f"{result['disk']:.1f} s (second boot alone: {result['second_boot']:.1f} s)")


def assert_disk_booted_through_grub(server, spec, second_console):
    """iPXE chained Debian's GRUB, GRUB read its local-disk config from bootserver's TFTP and started
    the disk's own EFI loader; the firmware never fell through to its disk entry."""
    timeline = server.timeline(spec.mac)
    second_boot = timeline[kinds(timeline).index("installer.installed") + 1:]
    assert [e["detail"]["action"] for e in second_boot if e["kind"] == "http.ipxe"] == ["local-disk"]
    assert [e["detail"]["action"] for e in second_boot if e["kind"] == "grub.config"] == ["local-disk"]
    assert any(e["detail"]["file"] == "/grub/grub.cfg" and e["detail"]["outcome"] == "complete"
               for e in second_boot if e["kind"] == "tftp.transfer")
    assert "http.kernel" not in kinds(second_boot)
    assert re.search(r"bootserver: starting \(hd0,(gpt|msdos)1\)/EFI/BOOT/BOOTX64.EFI", second_console)
    assert not re.search(r'BdsDxe: starting Boot\d+ "UEFI Misc Device"', second_console)


def rejected_story(lab, spec, results):
    """A config real Ignition refuses: the test OS reports Ignition's error and powers off."""
    machine = lab.power_on(spec.name)
    match, results[spec.name] = machine.wait_for(FAILED_RE, BOOT_TIMEOUT)
    assert match["reason"] == "ignition"
    wait_for(lambda: not machine.running(), 60, f"{spec.name} to power off")


def check_rejected_by_ignition(server, lab, bad):
    """The bad config: Ignition's fetch stage refused it, the timeline says why, the disk is untouched."""
    assert server.machine(bad.mac)["state"] == "failed"
    failed = [e for e in server.timeline(bad.mac) if e["kind"] == "installer.failed"]
    assert len(failed) == 1
    reason = failed[0]["detail"]["detail"]
    assert "ignition fetch stage failed" in reason, reason
    assert "CRITICAL : Ignition failed: hash verification failed" in reason, reason
    check_untouched_disk(lab.machines[bad.name].disk)


def test_bios_and_uefi_install_then_boot_from_disk(make_lab):
    """Real Ignition applies each machine's config to its disk (and refuses a bad one); the
    machines then boot from their disks."""
    bios, uefi = MachineSpec.make(1, "bios"), MachineSpec.make(1, "uefi")
    bad = MachineSpec.make(2, "bios", metadata=BAD_CONFIG)
    server = BootserverService()
    lab = make_lab([bios, uefi, bad], server)
    results = {}
    in_parallel([bios, uefi, bad], lambda spec: rejected_story(lab, spec, results) if spec is bad
                else install_story(lab, server, spec, results))
    for spec in (bios, uefi):
        report(spec, results[spec.name])
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
        if spec.firmware == "uefi":  # genuine edk2 PXE fetched iPXE over TFTP
            transfers = [e["detail"] for e in first_boot if e["kind"] == "tftp.transfer"]
            assert any(t["file"] == "ipxe.efi" and t["outcome"] == "complete" for t in transfers), transfers
        console = machine.serial_text()
        second_console = console[console.index("TESTOS-POSTED"):]
        assert [e["detail"]["action"] for e in second_boot if e["kind"] == "http.ipxe"] == ["local-disk"]
        assert "http.kernel" not in kinds(second_boot)
        if spec.firmware == "bios":
            # iPXE ran the served sanboot (the last characters can be lost when the MBR resets COM1)
            assert "Booting from SAN device 0x8" in second_console
        else:
            assert_disk_booted_through_grub(server, spec, second_console)
        assert console.count("TESTOS-INSTALLED") == 1, "the machine installed twice"
        check_installed_disk(machine.disk, spec, [s for s in (bios, uefi, bad) if s is not spec])
    print(f"bad config: power-on to failed {results[bad.name]:.1f} s")
    check_rejected_by_ignition(server, lab, bad)


def test_uefi_snponly_http_boot_and_ipxe_rom_install_then_boot_from_disk(make_lab):
    """snponly.efi over TFTP from edk2 PXE; UEFI HTTP Boot (OVMF without its PXE entry), whose
    proxy answer is HTTPClient with a full URL with the server's IP under /loaders/; and QEMU's
    iPXE EFI ROM. Each then boots its disk through iPXE -> GRUB."""
    snponly, http, rom = (MachineSpec.make(1, "uefi-snponly"), MachineSpec.make(1, "uefi-http"),
                          MachineSpec.make(1, "uefi-ipxerom"))
    server = BootserverService(uefi_loader="snponly.efi")
    lab = make_lab([snponly, http, rom], server)
    results = {}
    in_parallel([snponly, http, rom], lambda spec: install_story(lab, server, spec, results))
    for spec in (snponly, http, rom):
        report(spec, results[spec.name])
        assert server.machine(spec.mac)["state"] == "installed"
        console = lab.machines[spec.name].serial_text()
        assert console.count("TESTOS-INSTALLED") == 1, "the machine installed twice"
        assert_disk_booted_through_grub(server, spec, console[console.index("TESTOS-POSTED"):])
    transfers = [e["detail"] for e in server.timeline(snponly.mac) if e["kind"] == "tftp.transfer"]
    assert [t["file"] for t in transfers if t["outcome"] == "complete"][0] == "snponly.efi"
    timeline = server.timeline(http.mac)
    url = f"{lab.base_url}/loaders/snponly.efi"
    first_offer = next(e["detail"] for e in timeline if e["kind"] == "dhcp.offer")
    assert first_offer["stage"] == "httpboot" and first_offer["method"] == "http-uefi-x64"
    assert first_offer["file"] == url
    assert "snponly.efi" not in [t["detail"]["file"] for t in timeline if t["kind"] == "tftp.transfer"]
    console = lab.machines[http.name].serial_text()
    assert f"URI: {url}" in console and "Start PXE over IPv4" not in console
    assert re.search(r'BdsDxe: starting Boot\d+ "UEFI HTTPv4', console)


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
    record = wait_for(lambda: discover.machine(stranger.mac), 30, "the discovered record")
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
    wait_for(lambda: "catalog reload" in log.read_text() and "failed" in log.read_text(), 30,
               "bootserver to reject the broken catalog")
    assert "TESTOS-INSTALLED" not in machine.serial_text(), "the machine finished before the edit took effect"
    _, seconds = machine.wait_for(INSTALLED_RE, BOOT_TIMEOUT)
    machine.wait_for(POSTED_RE, 60)
    server.check_running()
    assert server.machine(spec.mac)["state"] == "installed"
    assert "still serving generation" in log.read_text()


#: what OVMF prints when Secure Boot refuses the image a boot entry loaded
REFUSED_RE = r'BdsDxe: failed to load Boot\d+ "UEFI PXEv4[^\r\n]*: (Access Denied|Security Violation)'


def test_secure_boot_install_and_disk_boot_through_shim_and_grub(make_lab):
    """OVMF enforcing Secure Boot (Microsoft's keys) installs through Debian's signed shim, GRUB and
    kernel, then boots its disk through the disk's own shim and GRUB; an unsigned loader (iPXE, by
    a Machine-level `loader: ipxe` over the profile's `grub`) is refused by the firmware."""
    signed = MachineSpec.make(1, "uefi-secureboot")
    unsigned = MachineSpec.make(2, "uefi-secureboot", loader="ipxe")
    server = BootserverService()
    lab = make_lab([signed, unsigned], server)
    refused = lab.power_on(unsigned.name)
    results = {}
    install_story(lab, server, signed, results)
    report(signed, results[signed.name])
    # the whole disk-boot line, written by the disk's GRUB (the console is read while QEMU writes it)
    lab.machines[signed.name].wait_for(r"BOOTSERVER-LAB-DISK-BOOT firmware=uefi via=shim-grub\s", 30)
    console = lab.machines[signed.name].serial_text()
    first, second = console[:console.index("TESTOS-POSTED")], console[console.index("TESTOS-POSTED"):]
    assert "TESTOS-SECUREBOOT state=on" in first and "EFI stub: UEFI Secure Boot is enabled." in first
    assert "Fetching Netboot Image grubx64.efi" in first  # shim fetched GRUB from beside itself
    timeline = server.timeline(signed.mac)
    files = [e["detail"]["file"] for e in timeline if e["kind"] == "tftp.transfer" and e["detail"]["outcome"] == "complete"]
    assert files[:3] == ["shimx64.efi", "grubx64.efi", "/grub/grub.cfg"]
    assert "ipxe.efi" not in files and "http.ipxe" not in kinds(timeline)
    assert [e["detail"]["action"] for e in timeline if e["kind"] == "grub.config"] == ["boot", "local-disk"]
    # the disk: GRUB refuses the unsigned \EFI\BOOT\BOOTX64.EFI, then starts the disk's shim
    assert "error: bad shim signature" in second
    assert re.search(r"bootserver: starting \(hd0,(gpt|msdos)1\)/EFI/debian/shimx64.efi", second)
    assert re.search(r"BOOTSERVER-LAB-DISK-BOOT firmware=uefi via=shim-grub", second)
    assert server.machine(signed.mac)["state"] == "installed"
    refused.wait_for(REFUSED_RE, BOOT_TIMEOUT)
    lab.power_off(unsigned.name)
    assert "TESTOS" not in refused.serial_text() and "iPXE" not in refused.serial_text()
    transfers = [e["detail"]["file"] for e in server.timeline(unsigned.mac) if e["kind"] == "tftp.transfer"]
    assert "ipxe.efi" in transfers and "http.ipxe" not in kinds(server.timeline(unsigned.mac))
