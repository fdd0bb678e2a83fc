"""bootserver itself as the lab's boot service: `python -m bootserver serve` in the server namespace.

It serves proxyDHCP and TFTP on the lab link (eth0) and HTTP on :8080, with the lab's own
catalog, settings and SQLite state under the lab's work folder. The timeline is read back with
`bootserver machines timeline --json`, from the same state file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bootserver.boot.loaders import GRUB_ARM64
from bootserver.lab import catalog as lab_catalog
from bootserver.lab import secureboot
from bootserver.lab.services import Service, ServiceError, wait_for_port

if TYPE_CHECKING:
    from bootserver.lab.lab import Lab


def _profile_for(firmware: str) -> str:
    if firmware == "uefi-secureboot":  # installs the signed shim + GRUB disk
        return lab_catalog.SECURE_BOOT_PROFILE
    if firmware.startswith("arm64"):
        return lab_catalog.ARM64_PROFILE
    return lab_catalog.PROFILE


class BootserverService:
    def __init__(self, unknown_machines: str = "ignore", uefi_loader: str = "ipxe.efi", os_name: str = "testos",
                 installed_dhcp: str = "auto"):
        self.unknown_machines = unknown_machines
        self.installed_dhcp = installed_dhcp
        self.uefi_loader = uefi_loader
        self.os_name = os_name
        self.service: Service | None = None
        self.settings_file: Path | None = None
        self.catalog_dir: Path | None = None

    def start(self, lab: "Lab") -> None:
        work = lab.workdir
        self.catalog_dir = work / "catalog"
        known = [(s.name, s.mac, s.hostname, s.metadata) for s in lab.specs.values() if s.in_catalog]
        if self.os_name != "flatcar":  # uefi-secureboot machines install the signed shim + GRUB disk
            known = [(s.name, s.mac, s.hostname, s.metadata, _profile_for(s.firmware), s.loader)
                     for s in lab.specs.values() if s.in_catalog]
        if self.os_name == "flatcar":
            template = Path(__file__).resolve().parents[2] / "profiles" / "templates" / "flatcar-install.bu"
            if not template.exists():
                raise ServiceError(f"--os flatcar needs {template} (run from a source checkout)")
            kernel = lab.assets / "flatcar/amd64/current/flatcar_production_pxe.vmlinuz"
            if not kernel.exists():
                raise ServiceError(f"--os flatcar needs Flatcar in {lab.assets}: bootserver assets fetch flatcar "
                                   f"--assets {lab.assets} (or copy a mirror there)")
            lab_catalog.write_catalog(self.catalog_dir, lab_catalog.flatcar_profile(template, lab.base_url), known,
                                      template.read_text(), template.name)
        else:
            defaults = lab_catalog.write_ignition_assets(lab.assets)
            profiles = [lab_catalog.test_os_profile(lab.kernel_asset, lab.initrd_asset, defaults)]
            if any(s.firmware == "uefi-secureboot" for s in lab.specs.values()):
                profiles.append(lab_catalog.test_os_profile(
                    lab.kernel_asset, lab.initrd_asset, defaults, lab_catalog.SECURE_BOOT_PROFILE,
                    secureboot.install_into(lab.assets), loader="grub"))
            if lab.has_arm64:
                profiles.append(lab_catalog.test_os_profile(
                    lab.arm64_kernel_asset, lab.arm64_initrd_asset, defaults, lab_catalog.ARM64_PROFILE,
                    console="ttyAMA0"))
            lab_catalog.write_catalog(self.catalog_dir, profiles, known)
        (work / "state").mkdir(exist_ok=True)
        self.settings_file = lab_catalog.write_settings(
            work / "bootserver.yaml", self.catalog_dir, lab.assets, work / "state" / "bootserver.db",
            lab.base_url, self.unknown_machines, self.uefi_loader, installed_dhcp=self.installed_dhcp,
            arm64_loader=GRUB_ARM64 if lab.has_arm64 else None)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("BOOTSERVER_CONFIG", None)
        self.service = Service("bootserver", lab.topology.server,
                               [sys.executable, "-m", "bootserver", "serve", "--config", str(self.settings_file),
                                "--dhcp", "eth0", "--advertise-url", lab.base_url],
                               work / "bootserver.log", env=env, cwd=work)
        self.service.start()
        for port, proto in ((8080, "tcp"), (67, "udp"), (69, "udp")):
            wait_for_port(lab.topology.server, port, proto, timeout=30, service=self.service)

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None

    def check_running(self) -> None:
        if self.service is not None:
            self.service.check_running()

    def _machines_cli(self, *args: str) -> dict | None:
        if self.settings_file is None:
            return None
        proc = subprocess.run([sys.executable, "-m", "bootserver", "machines", *args, "--json",
                               "--config", str(self.settings_file)], capture_output=True, text=True)
        if proc.returncode != 0:
            return None
        return json.loads(proc.stdout)

    def timeline(self, mac: str) -> list[dict]:
        """The machine's events, oldest first (empty when the server has not seen it)."""
        page = self._machines_cli("timeline", mac, "--limit", "1000")
        return sorted(page["events"], key=lambda e: e["seq"]) if page else []

    def machine(self, mac: str) -> dict | None:
        """The machine's record (state, name, ...), or None when the server has not seen it."""
        return self._machines_cli("show", mac)
