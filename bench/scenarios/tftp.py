"""TFTP: bootserver vs tftpd-hpa and dnsmasq, same files, same client, alternating A B C per rep.

All three servers run inside one network namespace (dnsmasq's TFTP port is always 69); the load
client is bench/tftp_client.py (one process, selectors, sha256-checked, windowsize-capable), run
in the namespace too. Measured per server and scenario:
- 100 concurrent clients x 1 MB at blksize 1468: wall time, failures, server CPU per MB;
- one 64 MB stream at blksize 1468 with windowsize 1 and 16: MB/s and server CPU per MB
  (tftpd-hpa and dnsmasq do not implement windowsize: they answer such requests at windowsize 1);
- one 4 MB stream with 1 ms added round-trip time, windowsize 1 and 16. This kernel has no netem
  (CONFIG_NET_SCH_NETEM unset), so the client holds every ACK for 1 ms: for TFTP's lock-step
  windows that is the same added round trip. 4 MB (not 64) keeps windowsize 1 at ~5 s per run.
Server CPU comes from a cpuacct cgroup per server (it counts tftpd-hpa's per-transfer children).

    python -m bench.scenarios.tftp [reps]
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

MB = 1 << 20
TICK = os.sysconf("SC_CLK_TCK")
PORTS = {"bootserver": 6969, "tftpd-hpa": 6970, "dnsmasq": 69}
PEERS = ("tftpd-hpa", "dnsmasq")


def _make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(size // MB):
            chunk = os.urandom(MB)
            digest.update(chunk)
            f.write(chunk)
    os.chmod(path, 0o644)
    return digest.hexdigest()


CPUACCT = Path("/sys/fs/cgroup/cpuacct")


class CpuMeter:
    """CPU seconds used by a server and all its children.

    tftpd-hpa forks a child per transfer and lets the kernel reap it (SIGCHLD ignored), so its
    children never show in /proc/<pid>/stat's cutime; a cpuacct cgroup per server counts them.
    Without cgroups, falls back to /proc/<pid>/stat (utime+stime+cutime+cstime).
    """

    def __init__(self, name: str, pid: int) -> None:
        self.pid = pid
        self.group: Path | None = CPUACCT / name
        try:
            self.group.mkdir()
            (self.group / "cgroup.procs").write_text(str(pid))
        except OSError:
            self.close()
            self.group = None

    def seconds(self) -> float:
        if self.group is not None:
            return int((self.group / "cpuacct.usage").read_text()) / 1e9
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(v) for v in fields[11:15]) / TICK

    def close(self) -> None:
        """After the server exited: remove the (then empty) cgroup."""
        if self.group is not None:
            try:
                self.group.rmdir()
            except OSError:
                pass


@contextmanager
def servers(root: Path):
    """The three servers in one fresh namespace; yields (netns, {name: CpuMeter})."""
    netns = f"bstf-bench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    procs: dict[str, subprocess.Popen] = {}
    meters: dict[str, CpuMeter] = {}
    logs = tempfile.TemporaryFile()
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        # tftpd-hpa resolves -a with AI_ADDRCONFIG, which fails when only loopback addresses exist.
        subprocess.run(["ip", "-n", netns, "addr", "add", "10.233.0.1/32", "dev", "lo"], check=True)
        ns = ["ip", "netns", "exec", netns]
        procs["bootserver"] = subprocess.Popen(
            [*ns, sys.executable, "-m", "bootserver.tftp", "--listen", f"127.0.0.1:{PORTS['bootserver']}",
             "--root", str(root), "--sessions-per-client", "1000"],  # every client is 127.0.0.1 here
            stdout=subprocess.PIPE, stderr=logs)
        procs["bootserver"].stdout.readline()
        procs["tftpd-hpa"] = subprocess.Popen(
            [*ns, "in.tftpd", "-L", "-s", str(root), "-a", f"127.0.0.1:{PORTS['tftpd-hpa']}"], stderr=logs)
        procs["dnsmasq"] = subprocess.Popen(
            [*ns, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--enable-tftp",
             f"--tftp-root={root}", "--tftp-max=500", "--listen-address=127.0.0.1", "--bind-interfaces",
             "--pid-file=", "--log-facility=-"], stderr=logs)
        for name, proc in procs.items():
            meters[name] = CpuMeter(f"{netns}-{name}", proc.pid)
        time.sleep(0.5)
        for name, proc in procs.items():
            if proc.poll() is not None:
                logs.seek(0)
                raise RuntimeError(f"{name} did not start: {logs.read().decode(errors='replace')[-2000:]}")
        yield netns, meters
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for meter in meters.values():
            meter.close()
        subprocess.run(["ip", "netns", "del", netns], check=False)
        logs.close()


def fetch(netns: str, server: str, meter: CpuMeter, name: str, digest: str, count: int = 1, windowsize: int = 1,
          ack_delay: float = 0.0) -> dict:
    """Run the load client once; returns its result plus the server's CPU seconds for the run."""
    before = meter.seconds()
    out = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-m", "bench.tftp_client", "--server",
         f"127.0.0.1:{PORTS[server]}", "--file", name, "--count", str(count), "--blksize", "1468",
         "--windowsize", str(windowsize), "--ack-delay", str(ack_delay), "--sha256", digest, "--limit", "90"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    if out.returncode != 0:
        raise RuntimeError(f"client failed against {server}: {out.stderr[-2000:]}")
    result = json.loads(out.stdout)
    time.sleep(0.1)  # let tftpd-hpa's per-transfer children exit
    result["cpu"] = meter.seconds() - before
    return result


def run(reps: int = 3) -> list[dict]:
    root = Path(tempfile.mkdtemp(prefix="bstf-bench-"))
    os.chmod(root, 0o755)  # dnsmasq serves as user nobody
    try:
        digests = {"f1m": _make_file(root / "f1m", MB), "f64m": _make_file(root / "f64m", 64 * MB),
                   "f4m": _make_file(root / "f4m", 4 * MB)}
        cases = [  # (scenario, file, count, windowsize, ack_delay)
            ("100 clients x 1 MB, blksize 1468", "f1m", 100, 1, 0.0),
            ("64 MB, blksize 1468, windowsize 1", "f64m", 1, 1, 0.0),
            ("64 MB, blksize 1468, windowsize 16", "f64m", 1, 16, 0.0),
            ("4 MB, blksize 1468, windowsize 1, +1 ms RTT", "f4m", 1, 1, 0.001),
            ("4 MB, blksize 1468, windowsize 16, +1 ms RTT", "f4m", 1, 16, 0.001),
        ]
        samples: dict[tuple[str, str], list[dict]] = {}
        with servers(root) as (netns, meters):
            for _ in range(reps):
                for scenario, name, count, ws, delay in cases:
                    for server in ("bootserver", *PEERS):
                        samples.setdefault((scenario, server), []).append(
                            fetch(netns, server, meters[server], name, digests[name], count, ws, delay))
        return _results(cases, samples)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _results(cases, samples) -> list[dict]:
    rows = []
    for scenario, *_ in cases:
        ours = samples[(scenario, "bootserver")]
        for peer_name in PEERS:
            peer = samples[(scenario, peer_name)]
            if scenario.startswith("100"):
                metrics = [("wall time", "s", False, lambda r: r["wall"]),
                           ("failures", "transfers", False, lambda r: float(r["failed"]))]
            else:
                metrics = [("throughput", "MB/s", True, lambda r: r["bytes"] / MB / r["wall"])]
            if "RTT" not in scenario:
                metrics.append(("server CPU per MB", "ms/MB", False, lambda r: 1000 * r["cpu"] / (r["bytes"] / MB)))
            for metric, unit, higher, value in metrics:
                rows.append({"scenario": f"tftp: {scenario}", "metric": metric, "unit": unit,
                             "ours": [value(r) for r in ours], "peer_name": peer_name,
                             "peer": [value(r) for r in peer], "higher_is_better": higher})
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'scenario':<50} {'metric':<18} {'peer':<10} {'ours':>10} {'peer':>10} {'ours/peer':>9}")
    for r in rows:
        ours, peer = statistics.median(r["ours"]), statistics.median(r["peer"])
        ratio = f"{ours / peer:.2f}x" if peer else "-"
        print(f"{r['scenario'][6:]:<50} {r['metric']:<18} {r['peer_name']:<10} {ours:>10.2f} {peer:>10.2f} "
              f"{ratio:>9}  ({r['unit']}, {'higher' if r['higher_is_better'] else 'lower'} is better)")


if __name__ == "__main__":
    print_table(run(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
