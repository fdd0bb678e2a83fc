"""Lab boot benchmark: power-on to the test OS's installed marker, booting through bootserver
versus through dnsmasq (proxyDHCP + its TFTP) and Python's http.server with a static script.

Same lab, same firmware, same test OS, same ordinary DHCP (dnsmasq with IPv6 RAs), alternately
(A B A B), a fresh lab per boot so both start from a machine that was never installed. The peer
is the shape of shared/lab-reference: what bootserver replaces. Measured under TCG, so the
firmware and the kernel dominate; the ratio shows whether bootserver adds anything to a boot.

    python -m bench.scenarios.lab_boot [--reps 3] [--firmware bios|uefi]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bootserver.lab import catalog as lab_catalog
from bootserver.lab.lab import INSTALLED_RE, Lab, MachineSpec
from bootserver.lab.server import BootserverService
from bootserver.lab.services import Service, wait_for_port
from bootserver.render.butane_template import render_ignition

BOOT_TIMEOUT = 240


def static_lab_config(spec: MachineSpec, assets: Path, base: str) -> dict:
    """The lab's Ignition config for `spec`, rendered once into a static file (real Ignition in the
    test OS applies it, so the peer must serve what bootserver serves), and the files it names."""
    metadata = {**lab_catalog.write_ignition_assets(assets), "hostname": spec.hostname,
                "ssh_authorized_keys": [lab_catalog.lab_ssh_key(spec.name)]}
    template = Path(tempfile.mkdtemp(prefix="bsbench-bu-")) / "lab.bu"
    template.write_text(lab_catalog.BUTANE_TEMPLATE)
    context = {"machine": {"name": spec.name, "mac": spec.mac}, "metadata": metadata,
               "urls": {"assets": f"{base}/assets"}}
    try:
        config, _ = render_ignition(template, context, files_dir=template.parent)
    finally:
        shutil.rmtree(template.parent, ignore_errors=True)
    return config


class DnsmasqPeer:
    """dnsmasq proxyDHCP + TFTP, and http.server serving a static boot script, assets and Ignition."""

    def __init__(self) -> None:
        self.services: list[Service] = []

    def start(self, lab: Lab) -> None:
        ns, base, work = lab.topology.server, lab.base_url, lab.workdir
        root = work / "peer-http"
        (root / "assets").mkdir(parents=True, exist_ok=True)
        for rel in (lab.kernel_asset, lab.initrd_asset):
            (root / "assets" / Path(rel).parent).mkdir(parents=True, exist_ok=True)
            os.link(lab.assets / rel, root / "assets" / rel)
        (spec,) = lab.specs.values()
        (root / "ignition.json").write_text(json.dumps(static_lab_config(spec, root / "assets", base)))
        initrd_name = Path(lab.initrd_asset).name
        (root / "boot.ipxe").write_text(
            f"#!ipxe\nkernel {base}/assets/{lab.kernel_asset} initrd={initrd_name} console=ttyS0 loglevel=4 "
            f"panic=-1 ignition.config.url={base}/ignition.json testos.hostname={spec.hostname} "
            f"testos.events={base}/events\ninitrd {base}/assets/{lab.initrd_asset}\nboot\n")
        proxy = Service("dnsmasq proxy", ns, [
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--user=root", "--pid-file=", "--port=0",
            "--interface=eth0", "--bind-interfaces", "--dhcp-range=10.77.0.0,proxy,255.255.255.0",
            "--enable-tftp", "--tftp-root=/usr/lib/ipxe", "--dhcp-userclass=set:ipxe,iPXE",
            f"--dhcp-boot=tag:ipxe,{base}/boot.ipxe,,{lab.server_ip}",
            "--pxe-service=tag:!ipxe,x86PC,peer,undionly.kpxe", "--pxe-service=tag:!ipxe,X86-64_EFI,peer,ipxe.efi",
            "--pxe-service=tag:!ipxe,BC_EFI,peer,ipxe.efi"], work / "peer-dnsmasq.log")
        web = Service("http.server", ns, [sys.executable, "-m", "http.server", "--bind", lab.server_ip,
                                          "--directory", str(root), "8080"], work / "peer-http.log")
        for service in (proxy, web):
            service.start()
            self.services.append(service)
        wait_for_port(ns, 67, "udp", service=proxy)
        wait_for_port(ns, 8080, "tcp", service=web)

    def stop(self) -> None:
        for service in self.services:
            service.stop()
        self.services.clear()

    def timeline(self, mac: str) -> list[dict]:
        return []


def boot_once(server, firmware: str, workdir: Path) -> float:
    spec = MachineSpec.make(1, firmware)
    lab = Lab(f"bsbench-{secrets.token_hex(3)}", workdir, [spec], server, log=lambda _: None)
    lab.up()
    try:
        _, seconds = lab.power_on(spec.name).wait_for(INSTALLED_RE, BOOT_TIMEOUT)
        return seconds
    finally:
        lab.down()


def run(reps: int = 3, firmware: str = "bios") -> list[dict]:
    ours, peer = [], []
    with tempfile.TemporaryDirectory(prefix="bsbench-lab-") as tmp:
        for rep in range(reps):
            ours.append(boot_once(BootserverService(), firmware, Path(tmp) / f"ours{rep}"))
            peer.append(boot_once(DnsmasqPeer(), firmware, Path(tmp) / f"peer{rep}"))
    return [{"scenario": f"lab-boot-{firmware}", "metric": "power-on to installed marker", "unit": "s",
             "ours": ours, "peer_name": "dnsmasq proxy+tftp, http.server", "peer": peer,
             "higher_is_better": False}]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--firmware", choices=("bios", "uefi"), default="bios")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    for r in run(args.reps, args.firmware):
        ratios = [p / o for o, p in zip(r["ours"], r["peer"])]
        print(f"{r['scenario']}: {r['metric']} ({r['unit']}, lower is better)")
        print(f"  bootserver  {' '.join(f'{v:6.1f}' for v in r['ours'])}   median {statistics.median(r['ours']):.1f}")
        print(f"  {r['peer_name']}  {' '.join(f'{v:6.1f}' for v in r['peer'])}   "
              f"median {statistics.median(r['peer']):.1f}")
        print(f"  ratio (peer/ours, per rep, > 1 means bootserver is faster): "
              f"median {statistics.median(ratios):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
