"""A private libvirt for the Vagrant lab: libvirtd and virtlogd inside a network namespace of their own.

Hosts without systemd (CI, containers) have no libvirtd running, and a system libvirtd would put its
bridges, dnsmasq and firewall rules into the host's network. Here both daemons run in a namespace
made for this lab (random name) and in a private mount namespace where /etc/libvirt, /var/lib/libvirt,
/run/libvirt, /var/log/libvirt and /var/cache/libvirt are folders of the lab's work folder. So the
host's network, firewall and libvirt configuration stay untouched; clients (virsh, vagrant) reach the
daemon through its socket, WORKDIR/libvirt/run/libvirt-sock.

Without libvirt-daemon-system there is no `libvirt-qemu` user, and libvirtd's QEMU driver refuses to
start; the private mount namespace also gets copies of /etc/passwd and /etc/group naming it (as root,
which qemu.conf runs QEMU as anyway).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from bootserver.lab.netns import in_netns, ip, netns_pids

#: Private folder (under WORKDIR/libvirt) -> where libvirtd expects it.
LIBVIRT_DIRS = {"etc": "/etc/libvirt", "lib": "/var/lib/libvirt", "run": "/run/libvirt",
                "log": "/var/log/libvirt", "cache": "/var/cache/libvirt"}
QEMU_CONF = """\
# The Vagrant lab's private libvirtd (bootserver lab vagrant): QEMU runs as root, no confinement,
# no cgroups (no systemd here), no changes of file ownership on the host.
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
cgroup_controllers = [ ]
"""
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])  # libvirtd, virtlogd, iptables
POOL = "default"  # the name vagrant-libvirt uses; it only creates it itself for machines with a box


class LibvirtError(RuntimeError):
    pass


def check_tools() -> list[str]:
    """What is missing on this host to run the private libvirt (empty when ready)."""
    problems = []
    for tool, package in (("libvirtd", "libvirt-daemon (with libvirt-daemon-driver-qemu)"),
                          ("virtlogd", "libvirt-daemon"), ("virsh", "libvirt-clients"),
                          ("iptables", "iptables (libvirt's isolated networks add rules, in the namespace)"),
                          ("dnsmasq", "dnsmasq-base"), ("unshare", "util-linux"), ("vagrant", "vagrant"),
                          ("qemu-system-x86_64", "qemu-system-x86")):
        if shutil.which(tool, path=SBIN_PATH) is None:
            problems.append(f"{tool} not found (install {package})")
    return problems


class LibvirtHost:
    def __init__(self, netns: str, workdir: Path, log=print):
        self.netns = netns
        self.root = workdir / "libvirt"
        self.pool_dir = workdir / "pool"
        self.log = log

    @property
    def socket(self) -> Path:
        return self.root / "run" / "libvirt-sock"

    @property
    def uri(self) -> str:
        return f"qemu:///system?socket={self.socket}"

    def pid_file(self, daemon: str) -> Path:
        return self.root / "run" / f"{daemon}.pid"

    def start(self, timeout: float = 30) -> None:
        """Namespace, daemons, and the `default` storage pool."""
        for sub in LIBVIRT_DIRS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "etc" / "qemu.conf").write_text(QEMU_CONF)
        self._write_accounts()
        ip("netns", "add", self.netns)
        ip("link", "set", "lo", "up", netns=self.netns)
        mounts = [f"mount --bind {shlex.quote(str(self.root / name))} {shlex.quote(name_file)}"
                  for name, name_file in (("passwd", "/etc/passwd"), ("group", "/etc/group"))]
        for sub, target in LIBVIRT_DIRS.items():
            Path(target).mkdir(parents=True, exist_ok=True)  # the mount point (empty on a host without libvirt)
            mounts.append(f"mount --bind {shlex.quote(str(self.root / sub))} {target}")
        logs = self.root / "log"
        script = (" && ".join(mounts) + " && { virtlogd --pid-file=/run/libvirt/virtlogd.pid "
                  f">>{shlex.quote(str(logs / 'virtlogd.out'))} 2>&1 & "
                  f"exec libvirtd --pid-file=/run/libvirt/libvirtd.pid >>{shlex.quote(str(logs / 'libvirtd.out'))} 2>&1; }}")
        # ip netns exec, unshare and sh all exec: the process started here *is* libvirtd.
        subprocess.Popen(in_netns(self.netns, ["unshare", "--mount", "--propagation", "private", "--",
                                               "sh", "-c", script]),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env={**os.environ, "PATH": SBIN_PATH}, start_new_session=True)
        deadline = time.monotonic() + timeout
        while self.virsh("version", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise LibvirtError(f"libvirtd did not answer on {self.socket} within {timeout:.0f} s; "
                                   f"see {logs / 'libvirtd.out'}")
            time.sleep(0.3)
        self.pool_dir.mkdir(parents=True, exist_ok=True)
        self.virsh("pool-define-as", POOL, "dir", "--target", str(self.pool_dir))
        self.virsh("pool-start", POOL)

    def _write_accounts(self) -> None:
        passwd, group = Path("/etc/passwd").read_text(), Path("/etc/group").read_text()
        if not any(line.startswith("libvirt-qemu:") for line in passwd.splitlines()):
            passwd += "libvirt-qemu:x:0:0:libvirt QEMU (bootserver lab):/var/lib/libvirt:/usr/sbin/nologin\n"
        if not any(line.startswith("libvirt-qemu:") for line in group.splitlines()):
            group += "libvirt-qemu:x:0:\n"
        (self.root / "passwd").write_text(passwd)
        (self.root / "group").write_text(group)

    def virsh(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(["virsh", "-q", "-c", self.uri, *args], capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise LibvirtError(f"virsh {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def define_network(self, xml: str) -> str:
        """Define and start a network from its XML; returns its name."""
        path = self.root / "network.xml"
        path.write_text(xml)
        match = re.search(r"<name>([^<]+)</name>", xml)
        if not match:
            raise LibvirtError("the network XML has no <name>")
        self.virsh("net-define", str(path))
        self.virsh("net-start", match[1])
        return match[1]

    def domains(self) -> list[str]:
        return self.virsh("list", "--all", "--name", check=False).stdout.split()

    def stop(self) -> list[str]:
        """Remove domains, networks, the pool, then end the daemons (by PID) and every process left
        in the namespace, and delete it. Safe to call on a half-built or already removed host."""
        done = []
        if self.socket.exists() and self.virsh("version", check=False, timeout=10).returncode == 0:
            for domain in self.domains():
                self.virsh("destroy", domain, check=False)
                self.virsh("undefine", domain, "--nvram", "--remove-all-storage", check=False)
                done.append(f"domain {domain}")
            for network in self.virsh("net-list", "--all", "--name", check=False).stdout.split():
                self.virsh("net-destroy", network, check=False)
                self.virsh("net-undefine", network, check=False)
                done.append(f"network {network}")
            if self.virsh("pool-info", POOL, check=False).returncode == 0:
                self.virsh("pool-destroy", POOL, check=False)
                self.virsh("pool-undefine", POOL, check=False)
                done.append(f"pool {POOL}")
        for daemon in ("libvirtd", "virtlogd"):
            pid = _read_pid(self.pid_file(daemon))
            if pid and self._in_netns(pid) and _end(pid):
                done.append(f"{daemon} (pid {pid})")
        for pid in netns_pids(self.netns) if self._netns_exists() else []:
            if _end(pid):  # QEMU or dnsmasq that libvirtd left behind
                done.append(f"process {pid}")
        if self._netns_exists():
            ip("netns", "del", self.netns, check=False)
            done.append(f"namespace {self.netns}")
        shutil.rmtree(self.pool_dir, ignore_errors=True)
        for sub in ("etc", "lib", "run", "cache"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
        return done

    def _netns_exists(self) -> bool:
        return Path("/run/netns", self.netns).exists()

    def _in_netns(self, pid: int) -> bool:
        return self._netns_exists() and pid in netns_pids(self.netns)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _end(pid: int, timeout: float = 10) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; True when the process was there."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child (libvirtd started by this process)
                return True
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True
