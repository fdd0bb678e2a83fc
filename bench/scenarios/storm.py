"""The boot storm: 1,000 simulated machines, at most 200 at once, each doing what real firmware
does (bench/storm_client.py: DHCP 67 + 4011, TFTP ipxe.efi, DHCP as iPXE, /boot.ipxe, /ipxe, an
8 MB kernel and a 64 MB initramfs, /ignition, the installed event), against bootserver with its
defaults (SQLite store, access log on) and against the static equivalent: dnsmasq (proxyDHCP +
TFTP) with nginx serving the same files and pre-written scripts.

Two namespaces joined by a veth pair: the server side (bootserver, or dnsmasq + nginx) and the
machines (one address each). One storm per server and repetition (at most three repetitions: a
storm moves 72 GB).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import statistics
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.catalog import READY_IGNITION, write_catalog
from bench.common import (REPO, Bootserver, Netns, Nginx, percentile, result, scenario_main, sh,
                          stop, tree_cpu_seconds, tree_peak_rss_mb, veth, wait_for, workdir)

SERVER, FIRST_CLIENT = "10.66.0.1", "10.66.1.1"
LOADER = Path("/usr/lib/ipxe/ipxe.efi")
KERNEL_PATH = "flatcar/current/flatcar_production_pxe.vmlinuz"
INITRD_PATH = "flatcar/current/flatcar_production_pxe_image.cpio.gz"


@dataclass(frozen=True)
class Shape:
    """How big a storm is: machines, how many boot at once, the kernel and initramfs sizes, the
    deadline (seconds per storm: what is not done by then counts as errors), storms per server, and
    how many load-client processes share the machines (one Python process cannot drive 10,000)."""
    name: str
    machines: int
    concurrency: int
    kernel: int
    initrd: int
    deadline: float
    max_reps: int
    clients: int = 1


RACK = Shape("boot storm", 1000, 200, 8 << 20, 64 << 20, 150, 3)


def assets(root: Path, shape: Shape) -> None:
    version = root / "flatcar" / "4081.2.0"
    version.mkdir(parents=True)
    for name, size in (("flatcar_production_pxe.vmlinuz", shape.kernel),
                       ("flatcar_production_pxe_image.cpio.gz", shape.initrd)):
        with open(version / name, "wb") as out:
            out.write(os.urandom(size))
    (root / "flatcar" / "current").symlink_to("4081.2.0")


def static_site(root: Path) -> None:
    """What dnsmasq + nginx serve: the same chain and the same kind of script, written once."""
    base = f"http://{SERVER}:8081"
    root.mkdir()
    (root / "boot.ipxe").write_text(f"#!ipxe\nchain --autofree {base}/ipxe?mac=${{net0/mac}}&arch=${{buildarch}}\n")
    (root / "ipxe").write_text(
        f"#!ipxe\nkernel {base}/assets/{KERNEL_PATH} initrd=flatcar_production_pxe_image.cpio.gz "
        f"flatcar.first_boot=yes ignition.config.url={base}/ignition "
        f"bootserver.events={base}/api/v1/events console=ttyS0,115200n8\n"
        f"initrd {base}/assets/{INITRD_PATH}\nboot\n")
    (root / "ignition").write_text(json.dumps(READY_IGNITION))


def storm(client: Netns, iface: str, shape: Shape) -> dict:
    """Run the load: `shape.clients` processes, each a slice of the machines (own addresses and MACs)
    and of the concurrency, all on port 68 (DHCP replies are broadcast: each takes its own by xid)."""
    share, procs = -(-shape.machines // shape.clients), []
    for k in range(shape.clients):
        first, machines = k * share, min(share, shape.machines - k * share)
        procs.append(subprocess.Popen(client.cmd([
            sys.executable, "-m", "bench.storm_client", "--interface", iface,
            "--first-ip", str(ipaddress.IPv4Address(FIRST_CLIENT) + first), "--first-mac", str(first),
            "--machines", str(machines), "--concurrency", str(max(1, shape.concurrency // shape.clients)),
            "--loader-sha256", hashlib.sha256(LOADER.read_bytes()).hexdigest(),
            "--kernel-size", str(shape.kernel), "--initrd-size", str(shape.initrd),
            "--deadline", str(shape.deadline)]), stdout=subprocess.PIPE, cwd=REPO))
    try:
        outs = [p.communicate(timeout=shape.deadline + 60)[0] for p in procs]
    finally:
        for p in procs:
            stop(p)
    return merge([json.loads(out.decode().strip().splitlines()[-1]) for out in outs])


def merge(parts: list[dict]) -> dict:
    """One storm's figures from its client processes' (they start together: the wall time is the longest)."""
    if len(parts) == 1:
        return parts[0]
    errors, retries, port68, steps = Counter(), Counter(), Counter(), {}
    for part in parts:
        errors.update(part["errors"])
        retries.update(part.get("retries", {}))
        port68.update(part.get("port68", {}))
        for name, values in part["steps"].items():
            steps.setdefault(name, []).extend(values)
    return {"wall": max(p["wall"] for p in parts), "done": sum(p["done"] for p in parts), "errors": dict(errors),
            "acked": [a for p in parts for a in p["acked"]], "client_cpu": sum(p["client_cpu"] for p in parts),
            "retries": dict(retries), "port68": dict(port68), "durations": [d for p in parts for d in p["durations"]],
            "steps": {k: sorted(v) for k, v in steps.items()}, "clients": len(parts)}


def measure(pids: callable, client: Netns, iface: str, shape: Shape) -> dict:
    cpu0, fulls0, backlog0 = sum(tree_cpu_seconds(pid) for pid in pids()), arp_table_fulls(), backlog_drops()
    figures = storm(client, iface, shape)
    figures["arp_table_fulls"] = arp_table_fulls() - fulls0
    figures["backlog_drops"] = backlog_drops() - backlog0
    figures["cpu"] = sum(tree_cpu_seconds(pid) for pid in pids()) - cpu0
    figures["rss"] = sum(tree_peak_rss_mb(pid) for pid in pids())
    return figures


def run_bootserver(wd: Path, server: Netns, client: Netns, iface_s: str, iface_c: str, rep: int,
                   shape: Shape) -> dict:
    """One storm against bootserver, with /healthz polled throughout and the loop-lag probe's worst
    block read from /metrics afterwards (the no-stall figures)."""
    state = wd / f"state-{rep}"
    state.mkdir()
    ours = Bootserver(server, wd, "--dhcp", iface_s, "--http", f"{SERVER}:8080", "--catalog", str(wd / "catalog"),
                      "--assets", str(wd / "assets"), "--state", f"sqlite:///{state}/bootserver.db")
    probe = subprocess.Popen(client.cmd([sys.executable, "-m", "bench.healthz_probe", f"http://{SERVER}:8080/healthz",
                                         "--seconds", str(shape.deadline + 30)]), stdout=subprocess.PIPE, cwd=REPO)
    try:
        figures = measure(lambda: [ours.pid], client, iface_c, shape)
        probe.send_signal(signal.SIGTERM)
        out, _ = probe.communicate(timeout=10)
        figures["healthz"] = json.loads(out.decode().strip().splitlines()[-1])
        metrics = client.run(["curl", "-sS", "-m", "5", f"http://{SERVER}:8080/metrics"]).stdout
        for key, gauge in (("loop_block_ms", "bootserver_loop_block_max_seconds"),
                           ("loop_busy_ms", "bootserver_loop_block_busy_max_seconds")):
            found = re.search(rf"^{gauge} (\S+)$", metrics, re.M)
            figures[key] = float(found.group(1)) * 1000 if found else float("nan")
        figures["tftp_outcomes"] = {m.group(1): int(float(m.group(2))) for m in re.finditer(
            r'^bootserver_tftp_transfers_total\{outcome="([^"]+)"\} (\S+)$', metrics, re.M)}
        found = re.search(r"^bootserver_tftp_retransmits_total (\S+)$", metrics, re.M)
        figures["tftp_outcomes"]["server retransmits"] = int(float(found.group(1))) if found else -1
        return figures
    finally:
        stop(probe)
        ours.stop()


def run_static(wd: Path, server: Netns, client: Netns, iface_s: str, iface_c: str, shape: Shape) -> dict:
    nginx = Nginx(server, wd, f"{SERVER}:8081", wd / "assets", root=wd / "static",
                  extra="location /api/ { return 204; }")
    dnsmasq = server.popen([
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--user=root", "--pid-file=", "--port=0",
        f"--interface={iface_s}", "--bind-interfaces", f"--log-facility={wd}/dnsmasq.log",
        "--dhcp-range=10.66.0.0,proxy,255.255.0.0", "--dhcp-userclass=set:ipxe,iPXE",
        f"--dhcp-boot=tag:ipxe,http://{SERVER}:8081/boot.ipxe,,{SERVER}",
        "--pxe-service=tag:!ipxe,X86-64_EFI,ipxe,ipxe.efi", "--pxe-service=tag:!ipxe,BC_EFI,ipxe,ipxe.efi",
        "--enable-tftp", f"--tftp-root={LOADER.parent}", f"--tftp-max={shape.concurrency + 50}"], log=wd / "dnsmasq.out")
    try:
        wait_for(lambda: "started" in (wd / "dnsmasq.log").read_text(errors="replace")
                 if (wd / "dnsmasq.log").exists() else dnsmasq.poll() is not None, 10, "dnsmasq")
        return measure(lambda: [dnsmasq.pid, nginx.pid], client, iface_c, shape)
    finally:
        stop(dnsmasq)
        nginx.stop()


def static_neighbours(wd: Path, server: Netns, iface_s: str, client: Netns, iface_c: str, machines: int) -> None:
    """Permanent ARP entries for every simulated machine on the server side (and the server on the
    machines' side). The kernel's ARP table is shared by all namespaces and holds 1,024 learned
    entries (net.ipv4.neigh.default.gc_thresh3); past that it drops packets, even broadcast DHCP offers
    ("neighbor table overflow!"): 10,000 machines on one veth lost ~8,000 boots to it on both servers.
    Permanent entries do not count against that limit, and a real rack's server would have its
    gc_thresh raised; both servers get the same table."""
    def mac(ns: Netns, dev: str) -> str:
        return json.loads(sh("ip", "-n", ns.name, "-j", "link", "show", dev).stdout)[0]["address"]

    client_mac, server_mac = mac(client, iface_c), mac(server, iface_s)
    batch = wd / "neighbours"
    batch.write_text("".join(f"neigh replace {ip} lladdr {client_mac} dev {iface_s} nud permanent\n" for ip in
                             ["10.66.0.2"] + [str(ipaddress.IPv4Address(FIRST_CLIENT) + i) for i in range(machines)]))
    sh("ip", "-n", server.name, "-batch", str(batch))
    sh("ip", "-n", client.name, "neigh", "replace", SERVER, "lladdr", server_mac, "dev", iface_c, "nud", "permanent")


def arp_table_fulls() -> int:
    """How often the kernel's ARP table was full (all CPUs, all namespaces): should not move in a storm."""
    lines = Path("/proc/net/stat/arp_cache").read_text().split("\n")
    column = lines[0].split().index("table_fulls")
    return sum(int(line.split()[column], 16) for line in lines[1:] if line.strip())


def backlog_drops() -> int:
    """Packets the kernel dropped because a CPU's input backlog (net.core.netdev_max_backlog) was
    full, all CPUs (a veth hands every packet to it): /proc/net/softnet_stat's second column."""
    return sum(int(line.split()[1], 16) for line in Path("/proc/net/softnet_stat").read_text().splitlines())


def run(reps: int = 3, shape: Shape = RACK) -> list[dict]:
    reps = min(reps, shape.max_reps)  # a storm moves up to 72 GB in 30-60 s per server: keep the suite short
    with workdir("storm") as wd, Netns("storm-s") as server, Netns("storm-c") as client:
        iface_s, iface_c = veth(server, f"{SERVER}/16", client, "10.66.0.2/16", "st")
        batch = wd / "addresses"
        batch.write_text("".join(f"addr add {ipaddress.IPv4Address(FIRST_CLIENT) + i}/16 dev {iface_c}\n"
                                 for i in range(shape.machines)))
        sh("ip", "-n", client.name, "-batch", str(batch))
        static_neighbours(wd, server, iface_s, client, iface_c, shape.machines)
        how = write_catalog(wd / "catalog", shape.machines)
        assets(wd / "assets", shape)
        static_site(wd / "static")
        ours, peer = [], []
        for rep in range(reps):
            ours.append(run_bootserver(wd, server, client, iface_s, iface_c, rep, shape))
            peer.append(run_static(wd, server, client, iface_s, iface_c, shape))
    return rows(shape, reps, how, ours, peer)


def rows(shape: Shape, reps: int, how: str, ours: list[dict], peer: list[dict]) -> list[dict]:
    name, peer_name = shape.name, "dnsmasq + nginx"

    def per(figures: list[dict], key) -> list[float]:
        return [key(f) for f in figures]

    def pct(p):
        return lambda f: percentile(f["durations"], p) if f["durations"] else float("nan")

    errors = [f"{k} ×{v}" for f in ours + peer for k, v in f["errors"].items()]
    def breakdown(figures: dict) -> str:
        return ", ".join(f"{k} {statistics.median(v) * 1000:.0f} ms" for k, v in figures["steps"].items() if v)
    client_cpu = ", ".join(f"{f['client_cpu']:.0f} s" for f in ours + peer)
    retries = ", ".join(json.dumps(f.get("retries", {})) for f in ours + peer)
    port68 = ", ".join(json.dumps(f.get("port68", {})) for f in ours + peer)
    fulls = ", ".join(f"{f.get('arp_table_fulls', '?')} / {f.get('backlog_drops', '?')}" for f in ours + peer)
    healthz = [f["healthz"] for f in ours]
    return [
        result(name, "time to last machine done", "s", per(ours, lambda f: f["wall"]), peer_name,
               per(peer, lambda f: f["wall"]), False, {"ratio": 0.9} if shape is RACK else None,
               note=(f"{shape.machines} machines, {shape.concurrency} at once, kernel + initrd "
                     f"{(shape.kernel + shape.initrd) / 2**20:.1f} MiB, {reps} storm(s) per server; /ignition from a "
                     f"{how}; per-machine median by step, last storm: bootserver: {breakdown(ours[-1])}; {peer_name}: "
                     f"{breakdown(peer[-1]) if peer else '-'}; load client CPU per storm "
                     f"(ours, peer): {client_cpu}; retransmissions by the machines (ours, peer): {retries}; port-68 replies received / matched / "
                     f"dropped by the kernel, summed over the load processes (ours, peer): {port68}; ARP table "
                     f"full events / input backlog drops during the storm, machine-wide (ours, peer): {fulls}; bootserver's TFTP transfers by "
                     f"outcome: {', '.join(json.dumps(f.get('tftp_outcomes', {})) for f in ours)}")),
        result(name, "per-machine p50", "s", per(ours, pct(50)), peer_name, per(peer, pct(50)), False),
        result(name, "per-machine p99", "s", per(ours, pct(99)), peer_name, per(peer, pct(99)), False),
        result(name, "errors", "machines", per(ours, lambda f: sum(f["errors"].values())), peer_name,
               per(peer, lambda f: sum(f["errors"].values())), False, {"exactly": 0},
               note="; ".join(errors) if errors else None),
        result(name, "server peak RSS", "MB", per(ours, lambda f: f["rss"]), peer_name, per(peer, lambda f: f["rss"]),
               False, {"max": 300}),
        result(name, "server CPU", "s", per(ours, lambda f: f["cpu"]), peer_name, per(peer, lambda f: f["cpu"]), False),
        result(name, "longest event-loop block during the storm", "ms", per(ours, lambda f: f["loop_block_ms"]), "",
               [], False, {"max": 20}, note="bootserver's loop-lag probe (a 10 ms timer; worst lateness, "
                                             "bootserver_loop_block_max_seconds): includes time the kernel ran "
                                             "other processes (the load client shares the 2 cores)"),
        result(name, "longest event-loop block on the CPU during the storm", "ms",
               per(ours, lambda f: f["loop_busy_ms"]), "", [], False, None,
               note="the same probe, counting only the CPU time of the loop's thread within the late interval "
                    "(bootserver_loop_block_busy_max_seconds): the part of a block that is bootserver's own work"),
        result(name, "slowest /healthz during the storm", "ms", [h["max_ms"] for h in healthz], "", [], False,
               {"max": 50}, note=f"polled every 20 ms from the machines' side; polls (failed) per storm: "
                                 + ", ".join(f"{h['count']} ({h['failures']})" for h in healthz)),
    ]


if __name__ == "__main__":
    scenario_main(run)
