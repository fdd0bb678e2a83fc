"""Phase-1 stand-in boot service: dnsmasq in proxy mode with its TFTP, plus standin_http.py.

Used by the e2e tests only until bootserver itself serves the lab."""

import json
import os
import sys
from pathlib import Path

from bootserver.lab.services import Service, wait_for_port


class StandinServer:
    def __init__(self):
        self.services = []
        self.events = None

    def start(self, lab):
        ns, ip, work = lab.topology.server, lab.server_ip, lab.workdir
        self.events = work / "standin-events.jsonl"
        proxy = Service("dnsmasq proxy", ns, [
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--user=root", "--pid-file=", "--port=0",
            "--interface=eth0", "--bind-interfaces", "--dhcp-range=10.77.0.0,proxy,255.255.255.0", "--log-dhcp",
            f"--log-facility={work / 'dnsmasq-proxy.log'}", "--enable-tftp", "--tftp-root=/usr/lib/ipxe",
            "--dhcp-userclass=set:ipxe,iPXE", f"--dhcp-boot=tag:ipxe,{lab.base_url}/boot.ipxe,,{ip}",
            "--pxe-service=tag:!ipxe,x86PC,lab,undionly.kpxe", "--pxe-service=tag:!ipxe,X86-64_EFI,lab," + os.environ.get("STANDIN_EFI", "ipxe.efi"),
            "--pxe-service=tag:!ipxe,BC_EFI,lab,ipxe.efi"]
            + [f"--dhcp-host={m},ignore" for m in os.environ.get("STANDIN_IGNORE", "").split()], work / "dnsmasq-proxy.stderr.log")
        hosts = [f"--host={s.mac}={s.hostname}" for s in lab.specs.values()]
        web = Service("stand-in http", ns, [
            sys.executable, str(Path(__file__).with_name("standin_http.py")), "--bind", ip,
            "--assets", str(lab.assets), "--kernel", lab.kernel_asset, "--initrd", lab.initrd_asset,
            "--events", str(self.events), *hosts], work / "standin-http.log")
        for s in (proxy, web):
            s.start()
            self.services.append(s)
        wait_for_port(ns, 67, "udp", service=proxy)
        wait_for_port(ns, 8080, "tcp", service=web)

    def stop(self):
        for s in self.services:
            s.stop()
        self.services.clear()

    def timeline(self, mac):
        if not self.events or not self.events.exists():
            return []
        rows = [json.loads(line) for line in self.events.read_text().splitlines()]
        return [r for r in rows if r.get("mac") in (mac, None)]
