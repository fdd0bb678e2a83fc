"""QEMU machines of the lab: firmware choice, the exact command line, the serial console.

Learned the hard way (see shared/lab-reference/NOTES.md):
- TCG only: this kind of host's KVM (PVM) kills firmware with "emulation failure";
- `-nodefaults`, so QEMU never adds a user-mode NIC of its own;
- BIOS: `graphics=off` turns on SeaBIOS's serial console, so the iPXE ROM's messages show up;
- UEFI: `romfile=` (empty) drops QEMU's iPXE option ROM, so OVMF's own edk2 PXE boots, fetches
  the iPXE loader over TFTP, and that iPXE then talks HTTP;
- UEFI: OVMF's IPv6 network stack is switched off (fw_cfg). The lab link carries IPv6 router
  advertisements (iPXE waits 15 s without them), and an installed machine, which bootserver
  does not answer, would otherwise sit through PXEv6 and HTTPv6 timeouts (about 60 s each)
  before OVMF reaches its disk entry.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bootserver.lab.netns import in_netns
from bootserver.lab.stall import StallWatch

FIRMWARES = ("bios", "uefi", "uefi-snponly", "uefi-ipxerom", "uefi-secureboot", "uefi-http",
             "arm64-uefi", "arm64-uefi-http")
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
#: Secure Boot enforcing: Microsoft's keys enrolled (so shim, signed by Microsoft's UEFI CA, runs)
OVMF_CODE_SB = Path("/usr/share/OVMF/OVMF_CODE_4M.ms.fd")
OVMF_VARS_SB = Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
QEMU = "qemu-system-x86_64"
#: arm64: QEMU's `virt` machine with AAVMF (qemu-efi-aarch64), TCG with a Cortex-A57 (cheaper to
#: emulate than `max`), virtio NIC and disk on PCI, console on the PL011 (ttyAMA0)
QEMU_ARM64 = "qemu-system-aarch64"
AAVMF_CODE = Path("/usr/share/AAVMF/AAVMF_CODE.fd")
AAVMF_VARS = Path("/usr/share/AAVMF/AAVMF_VARS.fd")
MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")


class QemuError(RuntimeError):
    pass


def lab_mac(index: int, firmware: str) -> str:
    """Stable MACs: 52:54:00:77:<firmware>:<index> (QEMU's locally administered OUI)."""
    code = {"bios": 0x01, "uefi": 0x02, "uefi-snponly": 0x03, "uefi-ipxerom": 0x04, "uefi-secureboot": 0x05,
            "uefi-http": 0x06, "arm64-uefi": 0x07, "arm64-uefi-http": 0x08}[firmware]
    return f"52:54:00:77:{code:02x}:{index:02x}"


@dataclass
class Machine:
    """One lab VM: a NIC on the lab bridge (first in the boot order) and a raw disk (second)."""

    name: str
    mac: str
    firmware: str
    disk: Path
    workdir: Path
    tap: str
    memory_mb: int = 512
    process: subprocess.Popen | None = field(default=None, repr=False)
    started_at: float | None = None
    serial_start: int = 0  # where this power-on's console output begins in the (appended) log

    def __post_init__(self) -> None:
        if self.firmware not in FIRMWARES:
            raise QemuError(f"unknown firmware {self.firmware!r}: use one of {', '.join(FIRMWARES)}")
        if not MAC_RE.match(self.mac):
            raise QemuError(f"bad MAC {self.mac!r}")

    @property
    def serial_log(self) -> Path:
        return self.workdir / f"{self.name}.serial.log"

    @property
    def uuid(self) -> str:
        """SMBIOS UUID (DHCP option 97) derived from the MAC, so a machine is recognisable by both."""
        return "00000000-0000-4000-8000-" + self.mac.replace(":", "")

    def command(self) -> list[str]:
        nic = f"virtio-net-pci,netdev=n0,mac={self.mac},bootindex=1"
        if self.firmware not in ("bios", "uefi-ipxerom"):  # uefi-ipxerom keeps QEMU's iPXE EFI ROM
            nic += ",romfile="
        arm64 = self.firmware.startswith("arm64")
        argv = [
            QEMU_ARM64 if arm64 else QEMU, "-name", self.name, "-nodefaults", "-no-user-config", "-accel", "tcg",
            "-uuid", self.uuid, "-m", str(self.memory_mb), "-smp", "1",
            "-display", "none", "-monitor", "none",
            "-chardev", f"file,id=serial0,path={self.serial_log},append=on", "-serial", "chardev:serial0",
            "-netdev", f"tap,id=n0,ifname={self.tap},script=no,downscript=no", "-device", nic,
            "-drive", f"if=none,id=d0,format=raw,file={self.disk}", "-device", "virtio-blk-pci,drive=d0,bootindex=2",
        ]
        if arm64:
            argv += ["-machine", "virt", "-cpu", "cortex-a57",
                     "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={AAVMF_CODE}",
                     "-drive", f"if=pflash,format=raw,unit=1,file={self.vars_file}",
                     "-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=no",
                     "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=no"]
            if self.firmware == "arm64-uefi-http":  # AAVMF honours it too: its only network entry is HTTPv4
                argv += ["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=no"]
        elif self.firmware == "bios":
            argv += ["-machine", "pc,graphics=off"]
        elif self.firmware == "uefi-secureboot":  # SMM keeps the variable store out of the OS's reach
            argv += ["-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on",
                     "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE_SB}",
                     "-drive", f"if=pflash,format=raw,unit=1,file={self.vars_file}",
                     "-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=no",
                     "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=no"]
        else:
            argv += ["-machine", "q35",
                     "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
                     "-drive", f"if=pflash,format=raw,unit=1,file={self.vars_file}",
                     "-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=no",
                     "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=no"]
            if self.firmware == "uefi-http":  # no PXE boot entry: OVMF's only network entry is HTTPv4
                argv += ["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=no"]
        return argv

    @property
    def vars_file(self) -> Path:
        return self.workdir / f"{self.name}.vars.fd"

    def start(self, netns: str) -> None:
        """Power on. The UEFI variable store persists across power cycles of the same machine."""
        arm64 = self.firmware.startswith("arm64")
        qemu, package = (QEMU_ARM64, "qemu-system-arm") if arm64 else (QEMU, "qemu-system-x86")
        if shutil.which(qemu) is None:
            raise QemuError(f"{qemu} not found: install {package}")
        if self.firmware != "bios":
            code, vars_ = ((AAVMF_CODE, AAVMF_VARS) if arm64 else
                           {"uefi-secureboot": (OVMF_CODE_SB, OVMF_VARS_SB)}.get(self.firmware, (OVMF_CODE, OVMF_VARS)))
            for f in (code, vars_):
                if not f.exists():
                    raise QemuError(f"{f} not found: install {'qemu-efi-aarch64' if code == AAVMF_CODE else 'ovmf'}")
            if not self.vars_file.exists():
                shutil.copyfile(vars_, self.vars_file)
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / f"{self.name}.cmdline.txt").write_text(" ".join(self.command()) + "\n")
        stderr = open(self.workdir / f"{self.name}.qemu.log", "ab")
        self.serial_start = self.serial_log.stat().st_size if self.serial_log.exists() else 0
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(in_netns(netns, self.command()), stdin=subprocess.DEVNULL,
                                        stdout=stderr, stderr=stderr, start_new_session=True)
        stderr.close()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.process = None

    def serial_text(self) -> str:
        """The whole console log (every power-on of this machine), decoded byte for character."""
        try:
            return self.serial_log.read_bytes().decode("latin-1")
        except FileNotFoundError:
            return ""

    def wait_for(self, pattern: str | re.Pattern, timeout: float, after: int | None = None) -> tuple[re.Match, float]:
        """Wait until `pattern` shows up on the serial console (searching from offset `after`,
        default: this power-on); returns the match and the seconds since power-on.
        Fails early if QEMU exits or the machine stops making progress (lab.stall)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        after = self.serial_start if after is None else after
        deadline = time.monotonic() + timeout
        watch = StallWatch()
        while True:
            text = self.serial_text()
            match = regex.search(text, after)
            if match:
                return match, time.monotonic() - (self.started_at or time.monotonic())
            stuck = watch.check(text[after:])
            if stuck:
                raise QemuError(f"{self.name}: stopped making progress before {regex.pattern!r} appeared: {stuck} "
                                f"(serial log {self.serial_log})\n{tail(text)}")
            if not self.running():
                raise QemuError(f"{self.name}: QEMU exited before {regex.pattern!r} appeared "
                                f"(serial log {self.serial_log})\n{tail(text)}")
            if time.monotonic() > deadline:
                raise QemuError(f"{self.name}: no {regex.pattern!r} within {timeout:.0f} s "
                                f"(serial log {self.serial_log})\n{tail(text)}")
            time.sleep(0.2)


def tail(text: str, lines: int = 25) -> str:
    clean = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1bc|\r", "", text)
    return "\n".join(clean.splitlines()[-lines:])
