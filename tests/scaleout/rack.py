"""A rack in network namespaces, every daemon real and started here (CI has no systemd):

    c1 (10.81.0.0/16) ──┐                         ┌── r1 10.77.0.11  bootserver + keepalived
                        rtr: isc-dhcp-relay ─ br0 ├── r2 10.77.0.12  bootserver + keepalived
    c2 (10.82.0.0/16) ──┘   (10.77.0.1)           ├── r3 10.77.0.13  bootserver + keepalived
                                                  └── db 10.77.0.5   PostgreSQL (its own cluster)
    floating address 10.77.0.10 (keepalived VRRP, health check: deploy/keepalived/check-bootserver-healthz)

The relay forwards the machines' DHCP to every replica (they answer alike, naming the floating
address); TFTP, HTTP and the PXE 4011 exchange go to the floating address. PostgreSQL is a cluster of
its own in the `db` namespace (the suite's shared PostgreSQL cannot be stopped for a fault test).
Every name is random; leaving the `with` block kills what runs in the namespaces and deletes them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
CHECK = REPO / "deploy" / "keepalived" / "check-bootserver-healthz"
SERVER_NET, FLOATING, ROUTER, DB = "10.77.0", "10.77.0.10", "10.77.0.1", "10.77.0.5"
SUBNETS = {"c1": "10.81", "c2": "10.82"}  # machine subnets (/16) behind the relay
ADMIN_TOKEN = "rack-admin-token"


def sh(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=timeout)


def pg_bin(name: str) -> str:
    versions = sorted(os.listdir("/usr/lib/postgresql"), key=lambda v: [int(p) for p in v.split(".")])
    return f"/usr/lib/postgresql/{versions[-1]}/bin/{name}"


class Rack:
    def __init__(self, workdir: Path) -> None:
        self.prefix = "rk" + secrets.token_hex(3)
        self.workdir = workdir
        self.ns = {name: f"{self.prefix}-{name}" for name in ("rtr", "db", "r1", "r2", "r3", "c1", "c2")}
        self.replicas = ["r1", "r2", "r3"]
        self.procs: dict[str, subprocess.Popen] = {}
        self.pgdata = Path(tempfile.mkdtemp(prefix="bs-rack-pg-"))  # postgres must reach it: not under pytest's 0700
        self.pg_url = f"postgresql://bootserver@{DB}:5432/postgres"
        self.iface: dict[str, str] = {}  # namespace -> its interface on its subnet

    # -- topology --------------------------------------------------------------------------

    def __enter__(self) -> "Rack":
        try:
            for name in self.ns.values():
                sh("ip", "netns", "add", name)
                sh("ip", "-n", name, "link", "set", "lo", "up")
            rtr = self.ns["rtr"]
            sh("ip", "-n", rtr, "link", "add", "br0", "type", "bridge")
            sh("ip", "-n", rtr, "addr", "add", f"{ROUTER}/24", "dev", "br0")
            sh("ip", "-n", rtr, "link", "set", "br0", "up")
            sh("ip", "netns", "exec", rtr, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            hosts = {"db": DB, "r1": f"{SERVER_NET}.11", "r2": f"{SERVER_NET}.12", "r3": f"{SERVER_NET}.13"}
            for name, address in hosts.items():
                inside, outside = self._veth(name, "rtr")
                sh("ip", "-n", rtr, "link", "set", outside, "master", "br0")
                sh("ip", "-n", self.ns[name], "addr", "add", f"{address}/24", "dev", inside)
                sh("ip", "-n", self.ns[name], "route", "add", "default", "via", ROUTER)
            for name, net in SUBNETS.items():
                inside, outside = self._veth(name, "rtr")
                sh("ip", "-n", rtr, "addr", "add", f"{net}.0.1/16", "dev", outside)
                sh("ip", "-n", self.ns[name], "addr", "add", f"{net}.0.2/16", "dev", inside)
                sh("ip", "-n", self.ns[name], "route", "add", "default", "via", f"{net}.0.1")
                self.iface[f"rtr-{name}"] = outside
        except BaseException:
            self.__exit__()
            raise
        return self

    def _veth(self, name: str, peer: str) -> tuple[str, str]:
        inside, outside = f"{self.prefix}{name}i", f"{self.prefix}{name}o"
        sh("ip", "link", "add", inside, "netns", self.ns[name], "type", "veth", "peer", "name", outside,
           "netns", self.ns[peer])
        sh("ip", "-n", self.ns[name], "link", "set", inside, "up")
        sh("ip", "-n", self.ns[peer], "link", "set", outside, "up")
        self.iface[name] = inside
        return inside, outside

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
        for name in self.ns.values():
            for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)  # only ours can be in a namespace we made
            sh("ip", "netns", "del", name, check=False)
        shutil.rmtree(self.pgdata, ignore_errors=True)

    # -- processes -------------------------------------------------------------------------

    def exec(self, ns: str, args: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns[ns], *args]

    def start(self, key: str, ns: str, args: list[str], **kw) -> subprocess.Popen:
        """Start a daemon in a namespace (`ip netns exec` execs it: the PID is the daemon's), log to a file."""
        log = open(self.workdir / f"{key}.log", "ab")
        self.procs[key] = subprocess.Popen(self.exec(ns, args), stdout=log, stderr=subprocess.STDOUT, **kw)
        log.close()
        return self.procs[key]

    def log(self, key: str) -> str:
        path = self.workdir / f"{key}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- PostgreSQL ------------------------------------------------------------------------

    def init_postgres(self) -> None:
        shutil.chown(self.pgdata, "postgres", "postgres")
        as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
        sh(*as_postgres, pg_bin("initdb"), "-D", str(self.pgdata / "data"), "-U", "bootserver", "-A", "trust",
           "--no-sync", timeout=120)
        with open(self.pgdata / "data" / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {SERVER_NET}.0/24 trust\n")

    def start_postgres(self) -> None:
        self.start("postgres", "db", ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
                                      pg_bin("postgres"), "-D", str(self.pgdata / "data"),
                                      "-c", f"listen_addresses={DB}",
                                      "-c", "port=5432", "-c", f"unix_socket_directories={self.pgdata}",
                                      "-c", "fsync=off", "-c", "max_connections=100", "-c", "shared_buffers=32MB"])
        wait_for(lambda: sh(*self.exec("db", [pg_bin("pg_isready"), "-h", DB, "-p", "5432"]), check=False)
                 .returncode == 0, 60, "PostgreSQL to accept connections")

    def stop_postgres(self) -> None:
        """A fast shutdown (SIGINT to the postmaster, by PID): clients are cut off, nothing is lost."""
        proc = self.procs["postgres"]
        proc.send_signal(signal.SIGINT)
        proc.wait(30)

    # -- bootserver, keepalived, relay -----------------------------------------------------

    def start_replica(self, name: str, catalog: Path, assets: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "BOOTSERVER_STATE": self.pg_url,
               "BOOTSERVER_CATALOG": str(catalog), "BOOTSERVER_ASSETS": str(assets),
               "BOOTSERVER_DHCP": self.iface[name], "BOOTSERVER_HTTP": "0.0.0.0:8080",
               "BOOTSERVER_FLOATING_ADDRESS": FLOATING, "BOOTSERVER_ADMIN_TOKEN": ADMIN_TOKEN,
               "BOOTSERVER_ACCESS_LOG": "false"}
        self.start(name, name, [sys.executable, "-m", "bootserver", "serve"], env=env, cwd=self.workdir)

    def wait_replicas_ready(self, timeout: float = 90) -> None:
        for name in self.replicas:
            wait_for(lambda: "bootserver ready" in self.log(name) or self.procs[name].poll() is not None, timeout,
                     f"replica {name} to start")
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"replica {name} exited:\n{self.log(name)[-3000:]}")

    def start_keepalived(self, name: str) -> None:
        index = self.replicas.index(name)
        own = f"{SERVER_NET}.{11 + index}"
        peers = "\n".join(f"        {SERVER_NET}.{11 + i}" for i in range(3) if i != index)
        conf = self.workdir / f"keepalived-{name}.conf"
        conf.write_text(f"""global_defs {{
    router_id bootserver-{name}
    script_user root
}}
vrrp_script bootserver_healthz {{
    script "{CHECK} http://127.0.0.1:8080/healthz"
    interval 1
    timeout 2
    fall 2
    rise 2
}}
vrrp_instance bootserver {{
    state BACKUP
    nopreempt
    interface {self.iface[name]}
    virtual_router_id 67
    priority {100 - index}
    advert_int 1
    unicast_src_ip {own}
    unicast_peer {{
{peers}
    }}
    virtual_ipaddress {{
        {FLOATING}/24 dev {self.iface[name]}
    }}
    track_script {{
        bootserver_healthz
    }}
}}
""")
        run = self.workdir / f"keepalived-{name}"
        run.mkdir(exist_ok=True)
        self.start(f"keepalived-{name}", name, ["keepalived", "--dont-fork", "--log-console", "--vrrp",
                                                "--use-file", str(conf), "--pid", str(run / "k.pid"),
                                                "--vrrp_pid", str(run / "v.pid"), "--checkers_pid", str(run / "c.pid")])

    def holder(self) -> str | None:
        """The replica holding the floating address now, if any."""
        for name in self.replicas:
            if self.procs.get(f"keepalived-{name}") is None:
                continue
            shown = sh("ip", "-n", self.ns[name], "-4", "addr", "show", "dev", self.iface[name], check=False).stdout
            if f"inet {FLOATING}/" in shown:
                return name
        return None

    def floating_answers(self) -> bool:
        """GET /healthz through the floating address, from the router (where the machines' traffic passes)."""
        done = sh(*self.exec("rtr", ["curl", "--silent", "--fail", "--max-time", "1", "-o", "/dev/null",
                                     f"http://{FLOATING}:8080/healthz"]), check=False, timeout=10)
        return done.returncode == 0

    def start_relay(self, *also: str) -> None:
        """isc-dhcp-relay on the router: machine subnets downstream, every replica (and `also`) upstream."""
        self.start("dhcrelay", "rtr", ["dhcrelay", "-4", "-d", "-pf", str(self.workdir / "dhcrelay.pid"),
                                       "-iu", "br0", "-id", self.iface["rtr-c1"], "-id", self.iface["rtr-c2"],
                                       *(f"{SERVER_NET}.{11 + i}" for i in range(3)), *also])
        wait_for(lambda: "Sending on" in self.log("dhcrelay") or self.procs["dhcrelay"].poll() is not None, 20,
                 "dhcrelay to start")
        if self.procs["dhcrelay"].poll() is not None:
            raise RuntimeError(f"dhcrelay exited:\n{self.log('dhcrelay')}")

    def add_machine_addresses(self, name: str, first: int, count: int) -> str:
        """`count` addresses on the client namespace's interface, one per simulated machine (the storm
        client gives machine i the address first + i); returns the first."""
        start = ipaddress.IPv4Address(f"{SUBNETS[name]}.1.1") + first
        batch = self.workdir / f"addresses-{name}-{first}"
        batch.write_text("".join(f"addr add {start + i}/16 dev {self.iface[name]}\n" for i in range(count)))
        sh("ip", "-n", self.ns[name], "-batch", str(batch))
        return str(start)

    # -- real machines (QEMU) --------------------------------------------------------------

    def start_address_dhcp(self) -> str:
        """dnsmasq on the server subnet as the site's address DHCP server, for both machine subnets
        (reached through the relay); returns its address, for the relay's list."""
        args = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--user=root", "--pid-file=",
                "--port=0", f"--interface={self.iface['db']}", "--bind-interfaces", "--dhcp-authoritative",
                "--no-ping", f"--dhcp-leasefile={self.workdir / 'dhcp.leases'}", "--log-dhcp",
                f"--log-facility={self.workdir / 'dnsmasq.log'}"]
        for tag, net in (("a", SUBNETS["c1"]), ("b", SUBNETS["c2"])):
            args += [f"--dhcp-range=set:{tag},{net}.0.100,{net}.0.200,255.255.0.0,10m",
                     f"--dhcp-option=tag:{tag},3,{net}.0.1"]
        self.start("dnsmasq", "db", args)
        wait_for(lambda: (self.workdir / "dnsmasq.log").exists() and "started" in
                 (self.workdir / "dnsmasq.log").read_text(errors="replace"), 20, "dnsmasq to start")
        return DB

    def tap(self, name: str, tap: str) -> str:
        """A tap for a QEMU machine on a client subnet: the subnet's link becomes a bridge port."""
        ns = self.ns[name]
        if "br0" not in sh("ip", "-n", ns, "-o", "link", "show").stdout:
            link = self.iface[name]
            sh("ip", "-n", ns, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
            sh("ip", "-n", ns, "addr", "flush", "dev", link)
            sh("ip", "-n", ns, "link", "set", link, "master", "br0")
            sh("ip", "-n", ns, "link", "set", "br0", "up")
        sh("ip", "-n", ns, "tuntap", "add", "dev", tap, "mode", "tap")
        sh("ip", "-n", ns, "link", "set", tap, "master", "br0", "up")
        return tap
