"""The Vagrant lab in host mode: box-less Vagrant/libvirt machines install through bootserver on the host.

    lab = VagrantLab(Path("/var/tmp/bootserver-lab/bsvagrant"), ["bios", "bios", "uefi"], driver="qemu")
    lab.up()            # private libvirt + boot network + bootserver on its bridge + `vagrant up`
    lab.wait()          # until every machine installed and booted from its disk
    lab.down()          # vagrant destroy, then domains, network, pool, daemons, namespace, NVRAM

Nothing needs a box or the internet: vagrant/Vagrantfile (BOOTSERVER_SERVER=host) defines only the
PXE machines, and vagrant/boot-network.xml the boot network. bootserver runs beside libvirtd in the
lab's network namespace, on the network's bridge (proxyDHCP shares port 67 with libvirt's dnsmasq,
which hands out addresses only). What was started is written to WORKDIR/vagrant-lab.json, so `down`
from another process (or after a crash) finds it again.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bootserver.lab import catalog as lab_catalog
from bootserver.lab import testos
from bootserver.lab.lab import DISK_BOOT_RE, FAILED_RE, INSTALLED_RE, POSTED_RE
from bootserver.lab.libvirt_host import LibvirtHost
from bootserver.lab.server import BootserverService
from bootserver.lab.services import Service, log_tail, wait_for_port

VAGRANT_DIR = Path(__file__).resolve().parents[2] / "vagrant"
BRIDGE = "bsboot0"  # <bridge name=...> in boot-network.xml
HTTP_PORT = 8080
FIRMWARES = ("bios", "uefi")
DRIVERS = ("kvm", "qemu")
STATE_FILE = "vagrant-lab.json"
NETNS_RE = re.compile(r"^bsvg-[0-9a-f]{6}$")
NET_RE = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")


class VagrantLabError(RuntimeError):
    pass


@dataclass(frozen=True)
class VagrantMachine:
    name: str
    firmware: str
    mac: str
    console: Path

    def console_text(self) -> str:
        try:
            return self.console.read_bytes().decode("latin-1")
        except FileNotFoundError:
            return ""


class VagrantLab:
    def __init__(self, workdir: Path, firmwares: list[str], driver: str = "kvm", net: str = "10.88.0",
                 log=print, netns: str | None = None):
        if not 1 <= len(firmwares) <= 9 or any(f not in FIRMWARES for f in firmwares):
            raise VagrantLabError(f"1 to 9 machines, each bios or uefi (got {','.join(firmwares) or 'none'})")
        if driver not in DRIVERS:
            raise VagrantLabError(f"driver must be kvm or qemu, not {driver!r}")
        if not (m := NET_RE.match(net)) or any(int(o) > 255 for o in m.groups()):
            raise VagrantLabError(f"boot network must be three octets like 10.88.0, not {net!r}")
        self.workdir = workdir.resolve()
        self.firmwares, self.driver, self.net, self.log = list(firmwares), driver, net, log
        self.netns = netns or f"bsvg-{secrets.token_hex(3)}"
        if not NETNS_RE.match(self.netns):  # `down` ends every process in it: only ever one of ours
            raise VagrantLabError(f"not a Vagrant lab namespace name: {self.netns!r}")
        self.host = LibvirtHost(self.netns, self.workdir, log=log)
        self.machines = {f"pxe{i}": VagrantMachine(f"pxe{i}", fw, f"52:54:00:88:00:{i:02x}",
                                                   self.workdir / "consoles" / f"bootserver-pxe{i}.serial.log")
                         for i, fw in enumerate(self.firmwares, start=1)}
        self.server = BootserverService()
        self.server.settings_file = self.workdir / "bootserver.yaml"
        self.bootserver: Service | None = None
        self.recorded_pid: int | None = None  # bootserver started by another process (from the state file)
        self.up_started = self.up_done = 0.0

    @property
    def base_url(self) -> str:
        return f"http://{self.net}.1:{HTTP_PORT}"

    @classmethod
    def load(cls, workdir: Path, log=print) -> "VagrantLab | None":
        """The lab recorded in `workdir` by an earlier `up` (None when there is none)."""
        try:
            state = json.loads((workdir / STATE_FILE).read_text())
            lab = cls(workdir, state["firmwares"], state["driver"], state["net"], log=log, netns=state["netns"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise VagrantLabError(f"{workdir / STATE_FILE} is not a Vagrant lab's record ({exc})") from None
        lab.recorded_pid = state.get("bootserver_pid")
        return lab

    def up(self, timeout: float = 600) -> None:
        """Build everything and `vagrant up` the machines; on any failure remove what was made and re-raise."""
        old = VagrantLab.load(self.workdir, log=self.log)
        if old is not None:
            self.log(f"vagrant lab: removing the leftovers of an earlier run ({old.netns})")
            old.down()
        try:
            for sub in ("consoles", "nvram"):
                (self.workdir / sub).mkdir(parents=True, exist_ok=True)
            for machine in self.machines.values():
                machine.console.unlink(missing_ok=True)
            self._save()  # first, so that `down` finds a half-built lab
            self.host.start()
            xml = (VAGRANT_DIR / "boot-network.xml").read_text().replace("@NET@", self.net)
            self.host.define_network(xml)
            self._start_bootserver()
            self._save()
            self.up_started = time.monotonic()
            self.vagrant("up", timeout=timeout)
            self.up_done = time.monotonic()
        except BaseException:
            self.down()
            raise

    def _start_bootserver(self) -> None:
        kernel, initrd = testos.install_into(self.workdir / "assets")
        defaults = lab_catalog.write_ignition_assets(self.workdir / "assets")  # files the lab's Ignition fetches
        catalog = lab_catalog.write_catalog(self.workdir / "catalog",
                                            lab_catalog.test_os_profile(kernel, initrd, defaults),
                                            [(m.name, m.mac, m.name) for m in self.machines.values()])
        shutil.rmtree(self.workdir / "state", ignore_errors=True)  # fresh machines: no record of an earlier run
        (self.workdir / "state").mkdir()
        lab_catalog.write_settings(self.server.settings_file, catalog, self.workdir / "assets",
                                   self.workdir / "state" / "bootserver.db", self.base_url, interface=BRIDGE)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("BOOTSERVER_CONFIG", None)
        self.bootserver = Service("bootserver", self.netns, [sys.executable, "-m", "bootserver", "serve", "--config",
                                                            str(self.server.settings_file)],
                                  self.workdir / "bootserver.log", env=env, cwd=self.workdir)
        self.bootserver.start()
        for port, proto in ((HTTP_PORT, "tcp"), (67, "udp"), (69, "udp")):
            wait_for_port(self.netns, port, proto, timeout=30, service=self.bootserver)

    def vagrant_env(self) -> dict[str, str]:
        """The settings vagrant/Vagrantfile reads, pointing at this lab's libvirt and folders."""
        return {**os.environ, "VAGRANT_CWD": str(VAGRANT_DIR), "VAGRANT_DOTFILE_PATH": str(self.workdir / ".vagrant"),
                "VAGRANT_HOME": str(self.workdir / "vagrant.d"), "VAGRANT_DEFAULT_PROVIDER": "libvirt",
                "VAGRANT_CHECKPOINT_DISABLE": "1", "VAGRANT_NO_COLOR": "1",
                "BOOTSERVER_SERVER": "host", "BOOTSERVER_FIRMWARE": ",".join(self.firmwares),
                "BOOTSERVER_MACHINES": str(len(self.firmwares)), "BOOTSERVER_DRIVER": self.driver,
                "BOOTSERVER_BOOT_NET": self.net, "BOOTSERVER_LIBVIRT_SOCKET": str(self.host.socket),
                "BOOTSERVER_CONSOLE_DIR": str(self.workdir / "consoles"),
                "BOOTSERVER_NVRAM_DIR": str(self.workdir / "nvram"), "BOOTSERVER_PREFIX": "bootserver-"}

    def vagrant(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        self.log(f"vagrant lab: vagrant {' '.join(args)}")
        with open(self.workdir / "vagrant.log", "a") as out:
            proc = subprocess.run(["vagrant", *args], env=self.vagrant_env(), stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
        if check and proc.returncode != 0:
            lines = [line for line in log_tail(self.workdir / "vagrant.log", 200).splitlines()
                     if not line.startswith("\tfrom ")]  # Ruby's stack, not the reason
            raise VagrantLabError(f"vagrant {' '.join(args)} failed (exit {proc.returncode}); last lines of "
                                  f"{self.workdir / 'vagrant.log'}:\n" + "\n".join(lines[-12:]))
        return proc

    def check_running(self) -> None:
        if self.bootserver is not None:
            self.bootserver.check_running()

    def wait(self, timeout: float = 600, poll: float = 1.0) -> dict[str, dict]:
        """Wait until every machine installed and then booted from its disk. Returns, per machine, the
        seconds from the start of `vagrant up` to its install marker and to its disk boot."""
        results: dict[str, dict] = {name: {} for name in self.machines}
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            for name, machine in self.machines.items():
                self._progress(machine, results[name])
            if all("disk" in r for r in results.values()):
                return results
            if time.monotonic() > deadline:
                waiting = ", ".join(f"{n} (last console line: {_last_line(self.machines[n].console_text())!r})"
                                    for n, r in results.items() if "disk" not in r)
                raise TimeoutError(f"not booted from disk after {timeout:.0f} s: {waiting}")
            time.sleep(poll)

    def _progress(self, machine: VagrantMachine, result: dict) -> None:
        text = machine.console_text()
        elapsed = round(time.monotonic() - self.up_started, 1)
        if (failed := re.search(FAILED_RE, text)) is not None:
            raise VagrantLabError(f"{machine.name}: the test OS failed ({failed['reason']})")
        if "installed" not in result and (m := re.search(INSTALLED_RE, text)):
            result["installed"], result["host"] = elapsed, m["host"]
            self.log(f"vagrant lab: {machine.name} installed ({elapsed} s)")
        posted = re.search(POSTED_RE, text)
        if "installed" in result and "disk" not in result and posted:
            if (m := re.compile(DISK_BOOT_RE).search(text, posted.end())) is not None:
                result["disk"], result["disk_firmware"] = elapsed, m["firmware"]
                self.log(f"vagrant lab: {machine.name} booted from its disk ({elapsed} s)")

    def down(self) -> list[str]:
        """Remove everything `up` made, also after a failed or half-finished `up`."""
        removed = []
        if (self.workdir / ".vagrant").exists() and self.host.socket.exists():
            try:
                if self.vagrant("destroy", "-f", timeout=180, check=False).returncode == 0:
                    removed.append("vagrant machines")
            except subprocess.TimeoutExpired:
                self.log("vagrant lab: vagrant destroy timed out; removing the domains directly")
        if self.bootserver is not None:
            self.bootserver.stop()
            removed.append("bootserver")
        elif (pid := self.recorded_pid) and self._bootserver_alive(pid):
            os.killpg(pid, signal.SIGTERM)
            removed.append(f"bootserver (pid {pid})")
        removed += self.host.stop()
        for machine in self.machines.values():  # NVRAM files (vagrant-libvirt keeps them on destroy)
            nvram = self.workdir / "nvram" / f"bootserver-{machine.name}_VARS.fd"
            if nvram.exists():
                nvram.unlink()
                removed.append(f"NVRAM {nvram.name}")
        for sub in (".vagrant", "vagrant.d"):
            shutil.rmtree(self.workdir / sub, ignore_errors=True)
        (self.workdir / STATE_FILE).unlink(missing_ok=True)
        return removed

    def _bootserver_alive(self, pid: int) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"bootserver" in cmdline and str(self.server.settings_file).encode() in cmdline

    def _save(self) -> None:
        state = {"netns": self.netns, "firmwares": self.firmwares, "driver": self.driver, "net": self.net,
                 "bootserver_pid": self.bootserver.process.pid if self.bootserver and self.bootserver.process else None,
                 "base_url": self.base_url, "libvirt_uri": self.host.uri,
                 "machines": [{"name": m.name, "firmware": m.firmware, "mac": m.mac, "console": str(m.console)}
                              for m in self.machines.values()]}
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def _last_line(text: str) -> str:
    lines = [line for line in re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", text).replace("\r", "\n").splitlines()
             if line.strip()]
    return lines[-1][:120] if lines else ""

