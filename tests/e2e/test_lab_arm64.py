"""End to end on arm64: AAVMF (QEMU `virt`, TCG, Cortex-A57) PXE-boots (arch 11) through bootserver
with Debian's arm64 netboot GRUB into the arm64 test OS (Debian's arm64 kernel, systemd and real
Ignition), which applies the machine's config to its disk and reports; on the next power-on GRUB's
local-disk config starts the disk's \\EFI\\BOOT\\BOOTAA64.EFI. A second machine's config Ignition
must refuse ends `failed` with Ignition's reason. Another test HTTP-Boots (arch 19) bootserver's own
arm64 GRUB the same way. Times are printed (run with -s).
"""

import re

from bootserver.lab import catalog as lab_catalog
from bootserver.lab.disk import read_install_marker
from bootserver.lab.lab import MachineSpec
from bootserver.lab.server import BootserverService

from ignition_checks import BAD_CONFIG, check_installed_disk
from test_lab import check_rejected_by_ignition, in_parallel, install_story, kinds, rejected_story, report


def installed_arm64(lab, server, spec):
    """The checks every installed arm64 machine passes; its timeline split at the install report."""
    machine = lab.machines[spec.name]
    assert read_install_marker(machine.disk) == f"BOOTSERVER-LAB-INSTALLED host={spec.hostname} mac={spec.mac}"
    record = server.machine(spec.mac)
    assert record["state"] == "installed" and record["arch"] == "arm64-efi"
    timeline = server.timeline(spec.mac)
    installed_at = kinds(timeline).index("installer.installed")
    return machine, timeline, timeline[:installed_at], timeline[installed_at + 1:]


def test_arm64_ignition_install_then_boot_from_disk(make_lab):
    spec = MachineSpec.make(1, "arm64-uefi")
    bad = MachineSpec.make(2, "arm64-uefi", metadata=BAD_CONFIG)
    server = BootserverService()
    lab = make_lab([spec, bad], server)
    results = {}
    in_parallel([spec, bad], lambda s: rejected_story(lab, s, results) if s is bad
                else install_story(lab, server, s, results))
    report(spec, results[spec.name])
    print(f"arm64 bad config: power-on to failed {results[bad.name]:.1f} s")
    machine, timeline, first_boot, second_boot = installed_arm64(lab, server, spec)
    k = kinds(timeline)
    offers = [e["detail"] for e in timeline if e["kind"] == "dhcp.offer"]
    assert {(o["method"], o["file"]) for o in offers} == {("pxe-uefi-arm64", "grubaa64.efi")}
    # GRUB rendered the boot config, then the local-disk one; nothing went through iPXE
    assert [e["detail"]["action"] for e in timeline if e["kind"] == "grub.config"] == ["boot", "local-disk"]
    assert "http.ipxe" not in k
    fetched = [e["detail"]["file"] for e in first_boot
               if e["kind"] == "tftp.transfer" and e["detail"]["outcome"] == "complete"]
    assert fetched[:2] == ["grubaa64.efi", "/grub/grub.cfg"]
    assert f"/assets/{lab.arm64_kernel_asset}" in fetched and f"/assets/{lab.arm64_initrd_asset}" in fetched
    # what Ignition fetched over HTTP: its config, the merged fragment (fetch), the payload (files)
    assert "http.ignition" in kinds(first_boot)
    served = [e["detail"]["file"] for e in first_boot if e["kind"] == "http.asset"]
    assert served == [lab_catalog.FRAGMENT_ASSET, lab_catalog.PAYLOAD_ASSET]
    assert not [e for e in second_boot if e["kind"] == "tftp.transfer" and "/assets/" in e["detail"]["file"]]
    console = machine.serial_text()
    first, second = console[:console.index("TESTOS-POSTED")], console[console.index("TESTOS-POSTED"):]
    assert "TESTOS: init started arch=aarch64" in first
    assert "TESTOS: ignition applied" in first
    assert console.count("TESTOS-INSTALLED") == 1, "the machine installed twice"
    assert re.search(r"bootserver: starting \(hd0,(gpt|msdos)1\)/EFI/BOOT/BOOTAA64.EFI", second)
    check_installed_disk(machine.disk, spec, [bad])
    check_rejected_by_ignition(server, lab, bad)
    assert "TESTOS: init started arch=aarch64" in lab.machines[bad.name].serial_text()


def test_arm64_http_boot_install_then_boot_from_disk(make_lab):
    """AAVMF without its PXE entry (fw_cfg IPv4PXESupport=no) takes UEFI HTTP Boot; the proxy's
    answer is an HTTPClient offer whose file is the URL of grubhttpaa64.efi (UEFI spec 24.7); that
    GRUB brings its network up, and everything after comes over HTTP: no TFTP at all."""
    spec = MachineSpec.make(1, "arm64-uefi-http")
    server = BootserverService()
    lab = make_lab([spec], server)
    results = {}
    install_story(lab, server, spec, results)
    report(spec, results[spec.name])
    machine, timeline, first_boot, second_boot = installed_arm64(lab, server, spec)
    k = kinds(timeline)
    url = f"{lab.base_url}/loaders/grubhttpaa64.efi"
    offers = [e["detail"] for e in timeline if e["kind"] == "dhcp.offer"]
    assert len(offers) == 2 and all((o["method"], o["stage"], o["file"]) == ("http-uefi-arm64", "httpboot", url)
                                    for o in offers)
    assert [e["detail"]["action"] for e in timeline if e["kind"] == "grub.config"] == ["boot", "local-disk"]
    assert "tftp.transfer" not in k and "http.ipxe" not in k
    fetched = {e["detail"]["path"] for e in first_boot if e["kind"] in ("http.kernel", "http.asset")}
    assert {lab.arm64_kernel_asset, lab.arm64_initrd_asset} <= fetched
    assert "http.ignition" in kinds(first_boot)
    assert not [e for e in second_boot if e["kind"] in ("http.kernel", "http.asset")]
    console = machine.serial_text()
    assert "Start HTTP Boot over IPv4" in console and "Start PXE over IPv4" not in console
    assert console.count(f"URI: {url}") == 2
    assert re.search(r'BdsDxe: starting Boot\d+ "UEFI HTTPv4', console)
    first, second = console[:console.index("TESTOS-POSTED")], console[console.index("TESTOS-POSTED"):]
    assert "TESTOS: init started arch=aarch64" in first and "TESTOS: ignition applied" in first
    assert console.count("TESTOS-INSTALLED") == 1, "the machine installed twice"
    assert re.search(r"bootserver: starting \(hd0,(gpt|msdos)1\)/EFI/BOOT/BOOTAA64.EFI", second)
    check_installed_disk(machine.disk, spec, [])
