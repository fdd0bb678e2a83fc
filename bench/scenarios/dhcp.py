"""ProxyDHCP benchmark: bootserver's proxy against dnsmasq in proxy mode, in network namespaces.

Both servers get the same load, one after the other (A B A B): edk2's captured PXE DISCOVER with a
distinct MAC and xid per request, sent from a client namespace over a veth pair.

- throughput: a closed loop with WINDOW requests outstanding; answered replies/s, p50/p99 latency
- fixed rate: RATE requests/s for RATE_SECONDS; p50/p99 latency
- memory: RSS of each server after 300,000 distinct MACs

    python -m bench.scenarios.dhcp [--reps 3]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import secrets
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVER_IP, CLIENT_IP = "10.77.0.3", "10.77.0.146"
THROUGHPUT_REQUESTS = 20_000
WINDOW = 16
RATE, RATE_SECONDS = 1_000, 3
MEMORY_MACS = 300_000
TIME_LIMIT = 40.0  # seconds, per load run


# -- namespaces ----------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


@contextmanager
def inside(ns: str):
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(target, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        yield
    finally:
        _libc.setns(own, 0x40000000)
        os.close(own)
        os.close(target)


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@contextmanager
def topology():
    tag = secrets.token_hex(3)
    srv, cli, sif, cif = f"bsdh-b{tag}-srv", f"bsdh-b{tag}-cli", f"bsdhb{tag}s", f"bsdhb{tag}c"
    try:
        sh("ip", "netns", "add", srv)
        sh("ip", "netns", "add", cli)
        sh("ip", "-n", srv, "link", "add", sif, "type", "veth", "peer", "name", cif, "netns", cli)
        sh("ip", "-n", srv, "addr", "add", f"{SERVER_IP}/24", "dev", sif)
        sh("ip", "-n", cli, "addr", "add", f"{CLIENT_IP}/24", "dev", cif)
        for ns, dev in ((srv, sif), (cli, cif)):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        yield srv, cli, sif, cif
    finally:
        for ns in (srv, cli):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


# -- the servers ---------------------------------------------------------------------------------

class Server:
    """A server process in the server namespace, stopped by its PID."""

    def __init__(self, name: str, argv: list[str], ns: str, ready: str | None) -> None:
        self.name = name
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        if ready:
            line = self.proc.stdout.readline()
            if ready not in line:
                raise RuntimeError(f"{name} did not start: {line}{self.proc.stderr.read()}")
        else:
            time.sleep(0.5)
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {self.proc.stderr.read()}")

    def rss_mb(self) -> float:
        pid = self.proc.pid
        # `ip netns exec` execs the server, so the PID is the server's own
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stats(self) -> dict:
        """bootserver only: its RSS and counters, printed on SIGUSR1."""
        self.proc.send_signal(signal.SIGUSR1)
        return json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def bootserver(ns: str, iface: str, answer: bool = True) -> Server:
    return Server("bootserver", [sys.executable, "-m", "bench.scenarios.dhcp_server", iface]
                  + ([] if answer else ["--ignore-unknown"]), ns, "ready")


def dnsmasq(ns: str, iface: str) -> Server:
    return Server("dnsmasq", [
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--user=root", "--pid-file=",
        "--port=0", f"--interface={iface}", "--bind-interfaces", "--log-facility=/dev/null",
        "--dhcp-range=10.77.0.0,proxy,255.255.255.0", "--dhcp-userclass=set:ipxe,iPXE",
        f"--dhcp-boot=tag:ipxe,http://{SERVER_IP}:8080/boot.ipxe,,{SERVER_IP}",
        "--pxe-service=tag:!ipxe,x86PC,undionly,undionly.kpxe",
        "--pxe-service=tag:!ipxe,X86-64_EFI,ipxe,ipxe.efi", "--pxe-service=tag:!ipxe,BC_EFI,ipxe,ipxe.efi"],
        ns, None)


# -- the load ------------------------------------------------------------------------------------

def template() -> bytes:
    sys.path.insert(0, str(REPO))
    from bootserver.dhcp import packet as P
    from bootserver.dhcp.pcap import read_udp

    shared = REPO.parent / "shared"
    shared = shared if (shared / "fixtures").is_dir() else Path("/work/shared")
    for d in read_udp(shared / "fixtures" / "dhcp" / "uefi-virtio.dhcp.pcap"):
        p = P.decode(d.payload)
        if p.message_type == P.DISCOVER and P.OPT_IPXE not in p.options:
            return d.payload
    raise RuntimeError("no edk2 DISCOVER in the capture")


class Load:
    """Requests with distinct MACs (02:00:<32-bit index>) and xid = index."""

    def __init__(self, ns: str, iface: str, first_index: int = 0) -> None:
        self.base = bytearray(template())
        self.next = first_index
        with inside(ns):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.sock.setsockopt(socket.SOL_SOCKET, 25, iface.encode())
            self.sock.bind(("0.0.0.0", 68))
        self.sock.setblocking(False)
        self.sent: dict[int, float] = {}

    def send(self) -> None:
        i = self.next & 0xFFFFFFFF
        self.next += 1
        data = self.base
        data[4:8] = i.to_bytes(4, "big")
        data[28:34] = b"\x02\x00" + i.to_bytes(4, "big")
        self.sent[i] = time.perf_counter()
        self.sock.sendto(data, ("255.255.255.255", 67))

    def receive(self, timeout: float, latencies: list[float]) -> int:
        """Read every reply that is there (waiting up to `timeout` for the first); returns how many."""
        got = 0
        if not select.select([self.sock], [], [], max(timeout, 0))[0]:
            return 0
        while True:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                return got
            if len(data) < 8 or data[0] != 2:
                continue
            started = self.sent.pop(int.from_bytes(data[4:8], "big"), None)
            if started is not None:
                latencies.append(time.perf_counter() - started)
                got += 1

    def close(self) -> None:
        self.sock.close()


def closed_loop(load: Load, count: int, window: int = WINDOW, limit: float = TIME_LIMIT,
                ) -> tuple[float, list[float], int]:
    """(answered/s, latencies, lost) with `window` requests outstanding; lost requests are replaced."""
    latencies: list[float] = []
    for _ in range(window):
        load.send()
    answered, lost, start = 0, 0, time.perf_counter()
    while answered + lost < count and time.perf_counter() - start < limit:
        got = load.receive(0.05, latencies)
        answered += got
        now = time.perf_counter()
        stale = [x for x, t in load.sent.items() if now - t > 0.2] if not got else []
        for x in stale:
            del load.sent[x]
        lost += len(stale)
        for _ in range(min(got + len(stale), count - answered - lost - len(load.sent))):
            load.send()
    elapsed = time.perf_counter() - start
    load.receive(0.1, latencies)
    load.sent.clear()
    return answered / elapsed, latencies, lost


def fixed_rate(load: Load, rate: int, seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    total = int(rate * seconds)
    start = time.perf_counter()
    for n in range(total):
        due = start + n / rate
        while (wait := due - time.perf_counter()) > 0:
            load.receive(wait, latencies)
        load.send()
        load.receive(0, latencies)
    deadline = time.perf_counter() + 0.5
    while load.sent and time.perf_counter() < deadline:
        load.receive(0.05, latencies)
    lost = len(load.sent)
    load.sent.clear()
    return latencies, lost


def paced(load: Load, count: int, rate: int) -> None:
    """Send `count` requests at `rate`/s without waiting for answers (bounded: count / rate seconds)."""
    start = time.perf_counter()
    for n in range(count):
        if n % 100 == 0:
            wait = start + n / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        load.send()
    load.sent.clear()


def memory_ours(srv: str, cli: str, sif: str, cif: str) -> float:
    """bootserver with default settings (unknown MACs stay unanswered) after MEMORY_MACS distinct MACs."""
    server = bootserver(srv, sif, answer=False)
    load = Load(cli, cif, 1 << 24)
    try:
        before = server.stats()
        paced(load, MEMORY_MACS // 2, 10_000)
        half = server.stats()
        paced(load, MEMORY_MACS - MEMORY_MACS // 2, 10_000)
        after = server.stats()
        while after["handled"] - before["handled"] < MEMORY_MACS:  # until it has read all the kernel kept
            time.sleep(0.5)
            previous, after = after, server.stats()
            if after["handled"] == previous["handled"]:
                break
    finally:
        load.close()
        server.stop()
    print(f"memory bootserver RSS {before['rss_mb']:.1f} MB at start, {half['rss_mb']:.1f} MB half way, "
          f"{after['rss_mb']:.1f} MB after "
          f"{after['handled'] - before['handled']:.0f} DISCOVERs from distinct MACs "
          f"({after['tracked_macs']} MACs tracked by the rate limiter)", file=sys.stderr, flush=True)
    return after["rss_mb"]


def memory_dnsmasq(srv: str, cli: str, sif: str, cif: str) -> float:
    server = dnsmasq(srv, sif)
    load = Load(cli, cif, 1 << 24)
    try:
        start_rss = server.rss_mb()
        _rps, _lat, lost = closed_loop(load, MEMORY_MACS, window=64, limit=90)
        rss = server.rss_mb()
    finally:
        load.close()
        server.stop()
    print(f"memory dnsmasq    RSS {start_rss:.1f} MB at start, {rss:.1f} MB after {MEMORY_MACS - lost} answered "
          f"DISCOVERs from distinct MACs", file=sys.stderr, flush=True)
    return rss


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


# -- the scenario --------------------------------------------------------------------------------

def run(reps: int = 3) -> list[dict]:
    rows = {k: {"ours": [], "peer": []} for k in
            ("throughput", "p50", "p99", "rate_p50", "rate_p99", "rss")}
    with topology() as (srv, cli, sif, cif):
        first = 0
        for rep in range(reps):
            for who, start in (("ours", bootserver), ("peer", dnsmasq)):
                server = start(srv, sif)
                load = Load(cli, cif, first)
                try:
                    closed_loop(load, 500)  # warm-up
                    rps, lat, lost = closed_loop(load, THROUGHPUT_REQUESTS)
                    rlat, rlost = fixed_rate(load, RATE, RATE_SECONDS)
                finally:
                    load.close()
                    server.stop()
                first = load.next
                rows["throughput"][who].append(rps)
                rows["p50"][who].append(pct(lat, 50) * 1e3)
                rows["p99"][who].append(pct(lat, 99) * 1e3)
                rows["rate_p50"][who].append(pct(rlat, 50) * 1e3)
                rows["rate_p99"][who].append(pct(rlat, 99) * 1e3)
                print(f"rep {rep + 1} {server.name:10s} {rps:8.0f} replies/s (lost {lost}), "
                      f"p50 {pct(lat, 50) * 1e3:.3f} ms, p99 {pct(lat, 99) * 1e3:.3f} ms; at {RATE}/s: "
                      f"p50 {pct(rlat, 50) * 1e3:.3f} ms, p99 {pct(rlat, 99) * 1e3:.3f} ms (lost {rlost})",
                      file=sys.stderr, flush=True)
        rows["rss"]["ours"].append(memory_ours(srv, cli, sif, cif))
        rows["rss"]["peer"].append(memory_dnsmasq(srv, cli, sif, cif))
    meta = {"throughput": ("answered DISCOVERs/s, 16 outstanding", "replies/s", True),
            "p50": ("latency p50, 16 outstanding", "ms", False),
            "p99": ("latency p99, 16 outstanding", "ms", False),
            "rate_p50": (f"latency p50 at {RATE}/s", "ms", False),
            "rate_p99": (f"latency p99 at {RATE}/s", "ms", False),
            "rss": (f"RSS after {MEMORY_MACS} distinct MACs", "MB", False)}  # ours: unknown, unanswered
    return [{"scenario": "dhcp", "metric": meta[k][0], "unit": meta[k][1], "ours": v["ours"],
             "peer_name": "dnsmasq proxy", "peer": v["peer"], "higher_is_better": meta[k][2]}
            for k, v in rows.items()]


def table(results: list[dict]) -> str:
    """Medians, and the median of per-rep ratios: each rep runs A then B back to back, so pairing them
    cancels most of the drift of a shared machine's load."""
    lines = [f"{'metric':42s} {'bootserver':>12s} {'dnsmasq':>12s} {'ratio':>7s}"]
    for r in results:
        pairs = list(zip(r["ours"], r["peer"]))
        ratios = [o / p if r["higher_is_better"] else p / o for o, p in pairs if o and p]
        ratio = statistics.median(ratios) if ratios else float("nan")
        lines.append(f"{r['metric']:42s} {statistics.median(r['ours']):12.3f} {statistics.median(r['peer']):12.3f} "
                     f"{ratio:6.2f}x  ({r['unit']})")
    lines.append("values: medians over reps; ratio: median of per-rep ratios, > 1 means bootserver is better")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()
    results = run(args.reps)
    print(table(results))
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
