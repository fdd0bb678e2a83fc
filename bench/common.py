"""What every benchmark scenario shares: network namespaces, servers started inside them, process
CPU and memory from /proc, A/B alternation, percentiles, and the results table.

A scenario module `bench/scenarios/<name>.py` exposes `run(reps=3) -> list[dict]`, one dict per
metric:

    {"scenario": str, "metric": str, "unit": str, "ours": [per rep], "peer_name": str,
     "peer": [per rep], "higher_is_better": bool,
     "target": {"ratio": 0.6} | {"min": 2000} | {"max": 20} | {"exactly": 0},   # optional
     "note": str}                                              # optional

`target` reads: ratio = median(ours) / median(peer) must be >= (higher is better) or <= (lower is
better) the figure; min/max/exactly bound median(ours) itself. A metric without a peer has `peer: []`.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

PREFIX = "bsbe"  # every namespace, veth and bridge this suite creates starts with it
REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- namespaces ------------------------------------------------------------------------------

def sh(*args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=capture, text=True)


class Netns:
    """A network namespace `bsbe-<name>` with loopback up. Leaving the block kills what runs in it
    (only our own processes can be there) and deletes it, also after a failure."""

    def __init__(self, name: str) -> None:
        self.name = f"{PREFIX}-{name}"

    def __enter__(self) -> "Netns":
        if os.path.exists(f"/run/netns/{self.name}"):  # left over by a killed earlier run of ours
            self.delete()
        sh("ip", "netns", "add", self.name)
        sh("ip", "-n", self.name, "link", "set", "lo", "up")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.delete()

    def delete(self) -> None:
        pids = sh("ip", "netns", "pids", self.name, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        sh("ip", "netns", "del", self.name, check=False)

    def cmd(self, args: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, args: Sequence[str], timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(self.cmd(args), capture_output=True, text=True, timeout=timeout, check=check)

    def popen(self, args: Sequence[str], log: Path | None = None, **kw: Any) -> subprocess.Popen:
        """Start a process in the namespace; `ip netns exec` execs it, so the PID is the process's."""
        out = open(log, "wb") if log else subprocess.DEVNULL
        return subprocess.Popen(self.cmd(args), stdout=out, stderr=subprocess.STDOUT, **kw)


def veth(ns_a: Netns, addr_a: str, ns_b: Netns, addr_b: str, name: str) -> tuple[str, str]:
    """Join two namespaces with a veth pair (`bsbe<name>a` in ns_a, `bsbe<name>b` in ns_b)."""
    a, b = f"{PREFIX}{name}a", f"{PREFIX}{name}b"
    sh("ip", "link", "add", a, "netns", ns_a.name, "type", "veth", "peer", "name", b, "netns", ns_b.name)
    for ns, dev, addr in ((ns_a, a, addr_a), (ns_b, b, addr_b)):
        sh("ip", "-n", ns.name, "addr", "add", addr, "dev", dev)
        sh("ip", "-n", ns.name, "link", "set", dev, "up")
    return a, b


# --- processes -------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) of a process.

    /proc/<pid>/stat counts in clock ticks (10 ms); the per-thread schedstat run time is the same
    figure in nanoseconds, so it is used when the kernel has it: a 256 MB transfer costs only a few
    ticks.
    """
    total_ns, seen = 0, False
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total_ns += int(Path(path).read_text().split()[0])
            seen = True
    if seen:
        return total_ns / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def children(pid: int) -> list[int]:
    kids: list[int] = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        with contextlib.suppress(OSError):
            kids += [int(p) for p in Path(path).read_text().split()]
    return kids


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (nginx: master + workers)."""
    return cpu_seconds(pid) + sum(tree_cpu_seconds(kid) for kid in children(pid))


def pin(pid: int, cpus: set[int] | None) -> None:
    """Set the CPU affinity of every thread of a process and of its children (None: all CPUs)."""
    cpus = cpus if cpus is not None else set(range(os.cpu_count() or 1))
    for kid in [pid] + children(pid):
        for task in glob.glob(f"/proc/{kid}/task/*"):
            with contextlib.suppress(OSError, ValueError):
                os.sched_setaffinity(int(os.path.basename(task)), cpus)


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    """The high-water mark of the resident set (VmHWM) since the process started."""
    return _status_kb(pid, "VmHWM") / 1024


def tree_peak_rss_mb(pid: int) -> float:
    """Peak resident set of a process plus its children's (nginx: master + workers)."""
    return peak_rss_mb(pid) + sum(tree_peak_rss_mb(kid) for kid in children(pid))


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM our own process, SIGKILL if it does not go."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")


def ensure_tools(tools: dict[str, str]) -> None:
    """Install the Debian packages of missing tools ({command: package})."""
    missing = sorted({pkg for cmd, pkg in tools.items() if not shutil.which(cmd) and not os.path.exists(cmd)})
    if missing:
        print(f"installing {' '.join(missing)} from Debian", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


# --- the servers under test ------------------------------------------------------------------

class Bootserver:
    """`bootserver serve` in a namespace, logging to a file, ready when it says so."""

    def __init__(self, ns: Netns, workdir: Path, *args: str, timeout: float = 30) -> None:
        self.log_path = workdir / "bootserver.log"
        self.proc = ns.popen([sys.executable, "-m", "bootserver", "serve", *args], log=self.log_path,
                             cwd=workdir, env={"BOOTSERVER_HTTP_REQUESTS_PER_CLIENT": "0",  # one client, many machines
                                               **os.environ, "PYTHONPATH": str(REPO)})
        wait_for(lambda: "bootserver ready" in self.log() or self.proc.poll() is not None, timeout,
                 "bootserver to start")
        if self.proc.poll() is not None:
            raise RuntimeError(f"bootserver exited:\n{self.log()[-3000:]}")
        self.pid = self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop(self.proc)


NGINX_CONF = """\
# Debian's defaults (worker_processes auto, sendfile, tcp_nopush, access log on), one server.
worker_processes auto;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {dir}/nginx-access.log;
    client_body_temp_path {dir}/tmp-body;
    proxy_temp_path {dir}/tmp-proxy;
    fastcgi_temp_path {dir}/tmp-fastcgi;
    uwsgi_temp_path {dir}/tmp-uwsgi;
    scgi_temp_path {dir}/tmp-scgi;
    server {{
        listen {listen};
        location /assets/ {{ alias {assets}/; }}
        location / {{ root {root}; }}
        {extra}
    }}
}}
"""


class Nginx:
    """nginx (Debian's nginx-light) in a namespace, serving `assets` under /assets/ and `root` at /."""

    def __init__(self, ns: Netns, workdir: Path, listen: str, assets: Path, root: Path | None = None,
                 extra: str = "") -> None:
        conf = workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=workdir, listen=listen, assets=assets, root=root or assets,
                                          extra=extra))
        self.proc = ns.popen(["nginx", "-c", str(conf)], log=workdir / "nginx.out")
        wait_for(lambda: len(children(self.proc.pid)) >= 1 or self.proc.poll() is not None, 15, "nginx workers")
        if self.proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {(workdir / 'nginx.out').read_text()}")
        self.pid = self.proc.pid

    def stop(self) -> None:
        stop(self.proc)


def wait_http(ns: Netns, url: str, timeout: float = 15) -> None:
    wait_for(lambda: ns.run(["curl", "-s", "-o", "/dev/null", "-m", "2", url], check=False).returncode == 0,
             timeout, url)


@contextlib.contextmanager
def workdir(name: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-{name}-"))
    path.chmod(0o755)  # nginx workers run as nobody
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def random_file(path: Path, size: int) -> Path:
    """`size` bytes that do not compress (so no layer can cheat), written in 4 MB pieces."""
    with open(path, "wb") as out:
        left = size
        while left:
            piece = min(left, 4 << 20)
            out.write(os.urandom(piece))
            left -= piece
    return path


# --- measuring -------------------------------------------------------------------------------

def alternate(reps: int, *measures: Callable[[], Any]) -> list[list[Any]]:
    """Run the measures in turn, A B A B …, `reps` times, so machine drift hits all alike."""
    results: list[list[Any]] = [[] for _ in measures]
    for _ in range(reps):
        for i, measure in enumerate(measures):
            results[i].append(measure())
    return results


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def result(scenario: str, metric: str, unit: str, ours: list[float], peer_name: str, peer: list[float],
           higher_is_better: bool, target: dict | None = None, note: str | None = None) -> dict:
    row = {"scenario": scenario, "metric": metric, "unit": unit, "ours": ours, "peer_name": peer_name,
           "peer": peer, "higher_is_better": higher_is_better}
    if target:
        row["target"] = target
    if note:
        row["note"] = note
    return row


# --- the table -------------------------------------------------------------------------------

def _fmt(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _spread(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{_fmt(min(values))} / {_fmt(statistics.median(values))} / {_fmt(max(values))}"


def evaluate(row: dict) -> tuple[float | None, str, str]:
    """(ratio, target text, met: yes/no/-) for one result row."""
    ours = statistics.median(row["ours"]) if row["ours"] else None
    peer = statistics.median(row["peer"]) if row.get("peer") else None
    ratio = ours / peer if ours is not None and peer else None
    target = row.get("target") or {}
    better = row.get("higher_is_better", True)
    if "ratio" in target:
        text = f"{'≥' if better else '≤'} {target['ratio']}× {row['peer_name']}"
        met = None if ratio is None else (ratio >= target["ratio"] if better else ratio <= target["ratio"])
    elif "exactly" in target:
        text, met = f"= {_fmt(target['exactly'])} {row['unit']}", None if ours is None else ours == target["exactly"]
    elif "min" in target:
        text, met = f"≥ {_fmt(target['min'])} {row['unit']}", None if ours is None else ours >= target["min"]
    elif "max" in target:
        text, met = f"< {_fmt(target['max'])} {row['unit']}", None if ours is None else ours < target["max"]
    else:
        text, met = "-", None
    return ratio, text, "-" if met is None else ("yes" if met else "**no**")


def print_rows(rows: list[dict], decimals: int = 1, ours_name: str = "ours") -> None:
    """A scenario's rows for its own `python -m bench.scenarios.X`: means, every rep, the ratio."""
    for row in rows:
        ours, peer = statistics.mean(row["ours"]), statistics.mean(row["peer"])
        reps = {side: ", ".join(f"{v:.{decimals}f}" for v in row[side]) for side in ("ours", "peer")}
        print(f"{row['scenario']}: {row['metric']}")
        print(f"  {ours_name}: {ours:10.{decimals}f} {row['unit']}   reps: {reps['ours']}")
        print(f"  peer ({row['peer_name']}): {peer:10.{decimals}f} {row['unit']}   reps: {reps['peer']}")
        print(f"  ratio ours/peer: {ours / peer:.2f}")


def table(rows: list[dict]) -> str:
    """One markdown table: readable in a terminal and in docs/performance.md alike."""
    head = ["scenario", "metric", "bootserver", "peer", "ratio", "bootserver min / median / max",
            "peer min / median / max", "target", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in rows:
        if row.get("error"):
            lines.append(f"| {row['scenario']} | (failed) | {row['error']} | | | | | | **no** |")
            continue
        ratio, target, met = evaluate(row)
        ours = statistics.median(row["ours"]) if row["ours"] else None
        peer = statistics.median(row["peer"]) if row.get("peer") else None
        unit = row["unit"]
        lines.append("| " + " | ".join([
            row["scenario"], row["metric"],
            f"{_fmt(ours)} {unit}", f"{_fmt(peer)} {unit} ({row['peer_name']})" if peer is not None else "-",
            f"{ratio:.2f}×" if ratio is not None else "-",
            _spread(row["ours"]), _spread(row.get("peer") or []), target, met]) + " |")
    notes = [f"- {row['scenario']} / {row['metric']}: {row['note']}" for row in rows if row.get("note")]
    return "\n".join(lines + ([""] + notes if notes else []))


def machine_description(python: str | None = None) -> str:
    """Cores, CPU model, memory, kernel, and the Python that runs bootserver."""
    model, mem = "unknown CPU", 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        model = found.group(1) if found else model
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    return (f"{os.cpu_count()} cores, {model}, {mem:.0f} GB RAM; Linux {platform.release()}; "
            f"Python {python or platform.python_version()}")


def scenario_main(run: Callable[..., list[dict]]) -> None:
    """`python -m bench.scenarios.<name> [--reps N]`: run one scenario, print its table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))  # unwind: servers and namespaces go too
    print(table(run(reps=args.reps)))
