"""One lab: namespaces + ordinary DHCP + a boot server + QEMU machines, all under one name prefix.

    lab = Lab("bslab", Path("/var/tmp/bootserver-lab/bslab"), [MachineSpec.make(1, "bios")])
    lab.up()                      # removes leftovers of an aborted run of the same name first
    machine = lab.power_on("bios-1")
    machine.wait_for(DISK_BOOT_RE, timeout=240)
    lab.down()                    # everything it made, by name
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from bootserver.config import ARM64_ROOT, Settings
from bootserver.lab import testos
from bootserver.lab.disk import DISK_MB, create_disk
from bootserver.lab.netns import SERVER_IP, Topology
from bootserver.lab.qemu import FIRMWARES, Machine, QemuError, lab_mac
from bootserver.lab.services import Service, ordinary_dhcp, wait_for_port

#: Serial-console lines that mark the steps of the install story. A captured field must be followed
#: by the whitespace that ends it: the console log is read while QEMU is still writing it, so a
#: poll can see half a line ("host=lab-uefi-se").
INSTALLED_RE = r"TESTOS-INSTALLED host=(?P<host>\S+)(?=\s)"
POSTED_RE = r"TESTOS-POSTED installed"
FAILED_RE = r"TESTOS-FAILED reason=(?P<reason>\S+)(?=\s)"
DISK_BOOT_RE = r"BOOTSERVER-LAB-DISK-BOOT firmware=(?P<firmware>\w+)(?=\s)"
HTTP_PORT = 8080


@dataclass(frozen=True)
class MachineSpec:
    name: str
    firmware: str
    mac: str
    hostname: str
    in_catalog: bool = True  # False: an unknown MAC, for discovery
    metadata: dict = field(default_factory=dict, compare=False)  # catalog metadata over the profile's
    loader: str | None = None  # the catalog's Machine `loader` (uefi-secureboot machines get grub by profile)

    @classmethod
    def make(cls, index: int, firmware: str, in_catalog: bool = True, metadata: dict | None = None,
             loader: str | None = None) -> "MachineSpec":
        if firmware not in FIRMWARES:
            raise QemuError(f"unknown firmware {firmware!r}: use one of {', '.join(FIRMWARES)}")
        name = f"{firmware}-{index}"
        return cls(name=name, firmware=firmware, mac=lab_mac(index, firmware), hostname=f"lab-{name}",
                   in_catalog=in_catalog, metadata=dict(metadata or {}), loader=loader)


class BootService(Protocol):
    """What answers the machines' boot requests from the server namespace (bootserver itself)."""

    def start(self, lab: "Lab") -> None: ...

    def stop(self) -> None: ...

    def timeline(self, mac: str) -> list[dict]: ...


class Lab:
    def __init__(self, prefix: str, workdir: Path, machines: list[MachineSpec], server: BootService,
                 ipv6_ra: bool = True, log: Callable[[str], None] = print, memory_mb: int = 512,
                 disk_mb: int = DISK_MB, assets: Path | None = None, keep_state: bool = False):
        self.topology = Topology(prefix)
        self.workdir = workdir
        self.specs = {spec.name: spec for spec in machines}
        if len(self.specs) != len(machines):
            raise ValueError("machine names must be unique")
        self.server = server
        self.ipv6_ra = ipv6_ra
        self.memory_mb, self.disk_mb = memory_mb, disk_mb
        self.log = log
        self.services: list[Service] = []
        self.machines: dict[str, Machine] = {}
        self.assets = assets or workdir / "assets"  # the test OS is put here too (under testos/)
        self.kernel_asset = self.initrd_asset = ""
        self.arm64_kernel_asset = self.arm64_initrd_asset = ""  # set when the lab has arm64 machines
        self.keep_state = keep_state  # True: reuse the earlier run's state store AND its disks

    @property
    def server_ip(self) -> str:
        return SERVER_IP

    @property
    def base_url(self) -> str:
        return f"http://{SERVER_IP}:{HTTP_PORT}"

    def up(self) -> None:
        """Build everything; on any failure, remove what was made and re-raise."""
        removed = self.topology.destroy(log=self.log)
        if removed:
            self.log(f"lab: removed leftovers of an earlier run: {', '.join(removed)}")
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._start_consistent()
            self.kernel_asset, self.initrd_asset = testos.install_into(self.assets)
            if self.has_arm64:
                self.arm64_kernel_asset, self.arm64_initrd_asset = testos.install_into(self.assets, testos.ARM64)
            self.topology.create(ipv6_ra=self.ipv6_ra)
            # firmware-loaded GRUB (shim on x86 Secure Boot, arm64) finds its TFTP server by next-server
            grub_over_pxe = self.has_arm64 or any(spec.firmware == "uefi-secureboot" for spec in self.specs.values())
            dhcp = ordinary_dhcp(self.topology.dhcp, self.workdir, ipv6_ra=self.ipv6_ra,
                                 next_server=SERVER_IP if grub_over_pxe else None)
            dhcp.start()
            self.services.append(dhcp)
            wait_for_port(self.topology.dhcp, 67, "udp", service=dhcp)
            self.server.start(self)
            for index, spec in enumerate(self.specs.values()):
                tap = self.topology.add_tap(f"tap{index}")
                disk = self.workdir / f"{spec.name}.disk.img"
                if not (self.keep_state and disk.exists()):
                    create_disk(disk, self.disk_mb)
                for old in (f"{spec.name}.vars.fd", f"{spec.name}.serial.log"):
                    (self.workdir / old).unlink(missing_ok=True)  # a fresh console (and boot variables)
                self.machines[spec.name] = Machine(name=spec.name, mac=spec.mac, firmware=spec.firmware,
                                                   disk=disk, workdir=self.workdir, tap=tap,
                                                   memory_mb=self.memory_mb)
            self._write_state()
        except BaseException:
            self.down()
            raise

    @property
    def has_arm64(self) -> bool:
        return any(spec.firmware.startswith("arm64") for spec in self.specs.values())

    def _start_consistent(self) -> None:
        """A run starts from one consistent state: the earlier run's store with its disks, or both
        fresh. (A kept store with fresh disks sends "installed" machines to empty disks.)"""
        state = self.workdir / "state"
        if self.keep_state:
            self.log(f"lab: keeping the earlier run's state ({state}) and disks")
            return
        if state.exists() or any(self.workdir.glob("*.disk.img")):
            self.log("lab: fresh state and fresh disks (the earlier run's are removed; --keep-state keeps both)")
        shutil.rmtree(state, ignore_errors=True)
        for disk in self.workdir.glob("*.disk.img"):
            disk.unlink()

    def power_on(self, name: str) -> Machine:
        machine = self.machines[name]
        machine.start(self.topology.switch)
        self.log(f"lab: powered on {name} ({machine.firmware}, {machine.mac})")
        return machine

    def power_off(self, name: str) -> None:
        self.machines[name].stop()

    def down(self) -> None:
        for machine in self.machines.values():
            machine.stop()
        self.server.stop()
        for service in reversed(self.services):
            service.stop()
        self.services.clear()
        self.topology.destroy(log=self.log)

    def _write_state(self) -> None:
        """What `bootserver lab status` shows when the lab was started by another process."""
        state = {"prefix": self.topology.prefix, "server": self.base_url,
                 "machines": [{"name": m.name, "mac": m.mac, "firmware": m.firmware, "serial": str(m.serial_log),
                               "disk": str(m.disk)} for m in self.machines.values()]}
        (self.workdir / "lab.json").write_text(json.dumps(state, indent=2) + "\n")


def check_host() -> list[str]:
    """What is missing on this host to run the lab (empty when ready)."""
    problems = []
    for tool, package in (("qemu-system-x86_64", "qemu-system-x86"), ("qemu-system-aarch64", "qemu-system-arm"),
                          ("dnsmasq", "dnsmasq-base"),
                          ("ip", "iproute2"), ("modinfo", "kmod"), ("ss", "iproute2"),
                          ("sgdisk", "gdisk"), ("debugfs", "e2fsprogs"), ("setfiles", "policycoreutils")):
        if shutil.which(tool) is None:
            problems.append(f"{tool} not found (install {package})")
    for path, package in ((Path("/usr/share/OVMF/OVMF_CODE_4M.fd"), "ovmf"), (Path("/bin/busybox"), "busybox-static"),
                          (Path("/usr/lib/ipxe/ipxe.efi"), "ipxe"), (Path("/dev/net/tun"), "(the tun device)"),
                          (Path("/usr/lib/dracut/modules.d/30ignition/ignition"), "ignition"),
                          (Path("/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"), "grub-efi-amd64-signed"),
                          (Path("/usr/lib/shim/shimx64.efi.signed"), "shim-signed"),
                          (Path("/usr/share/AAVMF/AAVMF_CODE.fd"), "qemu-efi-aarch64"),
                          (Settings().grub_arm64_efi, "grub-efi-arm64-signed:arm64, unpacked by scripts/bootstrap.sh"),
                          (Settings().grub_arm64_modules / "http.mod",
                           "grub-efi-arm64-bin:arm64, unpacked by scripts/bootstrap.sh"),
                          (ARM64_ROOT / "bin/busybox", "busybox-static:arm64, unpacked by scripts/bootstrap.sh"),
                          (ARM64_ROOT / "usr/lib/dracut/modules.d/30ignition/ignition",
                           "ignition:arm64 and the rest of scripts/arm64-packages.txt, unpacked by scripts/bootstrap.sh")):
        if not path.exists():
            problems.append(f"{path} not found ({package})")
    return problems
