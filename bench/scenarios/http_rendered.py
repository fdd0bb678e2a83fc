"""Rendered /ipxe and /ignition with 1,000 machines in the catalog: requests/s and p50/p99 latency
at 50 concurrent clients, access log on, bootserver with 2 HTTP processes (`--http-workers 2`, the
two cores of the bench machine; a row for the one-process default too), with wrk (2 threads, 50 keep-alive connections, a Lua
script cycling through the 1,000 MACs). For scale, nginx serves the same bytes as a static file:
the ceiling a server can reach on this machine, not a rival that renders anything."""

from __future__ import annotations

import json

from bench.catalog import mac, write_catalog
from bench.common import (Bootserver, Netns, Nginx, alternate, result, scenario_main, wait_http,
                          workdir)

MACHINES, CONNECTIONS, SECONDS = 1000, 50, 4
WORKERS = 2  # HTTP processes (http_workers): one per core of this machine

LUA = """\
local n = %(n)d
local i = 0
local prefix = "%(prefix)s"
function mac(k)
  return string.format("52:54:01:%%02x:%%02x:%%02x", math.floor(k / 65536) %% 256, math.floor(k / 256) %% 256,
                       k %% 256)
end
request = function()
  i = i + 1
  local path = prefix
  if prefix:sub(-4) == "mac=" then path = prefix .. mac(i %% n) end
  return wrk.format("GET", path)
end
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %%d, "us": %%d, "p50": %%d, "p99": %%d, "status": %%d, "sockerr": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def load(ns: Netns, wd, url_base: str, path: str) -> dict:
    script = wd / f"load-{abs(hash((url_base, path)))}.lua"
    script.write_text(LUA % {"n": MACHINES, "prefix": path})
    out = ns.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--timeout", "2s", "-s", str(script),
                  url_base], timeout=SECONDS + 30)
    try:
        figures = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"wrk gave no figures:\n{out.stdout}\n{out.stderr}") from None
    if figures["status"] or figures["sockerr"]:
        raise RuntimeError(f"{url_base}{path}: {figures['status']} non-2xx answers, "
                           f"{figures['sockerr']} socket errors:\n{out.stdout}")
    return {"rps": figures["requests"] / (figures["us"] / 1e6), "p50": figures["p50"] / 1000,
            "p99": figures["p99"] / 1000}


def one_process(ns: Netns, wd, reps: int) -> list[dict]:
    """/ipxe from bootserver's default, one process, for comparison with the workers' figure."""
    single = Bootserver(ns, wd, "--http", "127.0.0.1:8082", "--assets", str(wd / "assets"), "--catalog",
                        str(wd / "catalog"), "--state", f"sqlite:///{wd}/single.db")
    try:
        wait_http(ns, "http://127.0.0.1:8082/boot.ipxe")
        load(ns, wd, "http://127.0.0.1:8082", "/ipxe?mac=")  # the answer cache filled, as for the others
        return [load(ns, wd, "http://127.0.0.1:8082", "/ipxe?mac=") for _ in range(reps)]
    finally:
        single.stop()


def run(reps: int = 3) -> list[dict]:
    with workdir("http-rendered") as wd, Netns("http-rendered") as ns:
        how = write_catalog(wd / "catalog", MACHINES)
        (wd / "assets").mkdir()
        single = one_process(ns, wd, reps)
        ours = Bootserver(ns, wd, "--http", "127.0.0.1:8080", "--assets", str(wd / "assets"), "--catalog",
                          str(wd / "catalog"), "--state", f"sqlite:///{wd}/state.db", "--http-workers", str(WORKERS))
        static = wd / "static"
        static.mkdir()
        try:
            wait_http(ns, "http://127.0.0.1:8080/boot.ipxe")
            for endpoint in ("ipxe", "ignition"):  # what nginx serves: the same bytes, as a file
                got = ns.run(["curl", "-sS", "-f", f"http://127.0.0.1:8080/{endpoint}?mac={mac(7)}"])
                (static / endpoint).write_text(got.stdout)
            nginx = Nginx(ns, wd, "127.0.0.1:8081", wd / "assets", root=static)
            try:
                wait_http(ns, "http://127.0.0.1:8081/ipxe")
                ipxe_ours, ipxe_nginx, ign_ours, ign_nginx = alternate(
                    reps,
                    lambda: load(ns, wd, "http://127.0.0.1:8080", "/ipxe?mac="),
                    lambda: load(ns, wd, "http://127.0.0.1:8081", "/ipxe"),
                    lambda: load(ns, wd, "http://127.0.0.1:8080", "/ignition?mac="),
                    lambda: load(ns, wd, "http://127.0.0.1:8081", "/ignition"))
            finally:
                nginx.stop()
        finally:
            ours.stop()
    rows = []
    peer = "nginx static"
    rows += [result("http rendered", "/ipxe requests/s, one process (http_workers 1)", "req/s",
                    [r["rps"] for r in single], "", [], True),
             result("http rendered", "/ipxe p99 latency, one process (http_workers 1)", "ms",
                    [r["p99"] for r in single], "", [], False)]
    for endpoint, mine, theirs in (("/ipxe", ipxe_ours, ipxe_nginx), ("/ignition", ign_ours, ign_nginx)):
        name = "http rendered"
        rows += [
            result(name, f"{endpoint} requests/s", "req/s", [r["rps"] for r in mine], peer,
                   [r["rps"] for r in theirs], True, {"min": 10000},
                   note=(f"{MACHINES} machines, {CONNECTIONS} connections, wrk -t2 {SECONDS} s per rep, bootserver with "
                         f"--http-workers {WORKERS} (SQLite state), access log on, per-client limit off (wrk is one address for 1,000 machines: bench.common); /ignition from a {how}; nginx serves one pre-rendered answer as a static file"
                         if endpoint == "/ipxe" else None)),
            result(name, f"{endpoint} p50 latency", "ms", [r["p50"] for r in mine], peer,
                   [r["p50"] for r in theirs], False),
            result(name, f"{endpoint} p99 latency", "ms", [r["p99"] for r in mine], peer,
                   [r["p99"] for r in theirs], False, {"max": 10}),
        ]
    return rows


if __name__ == "__main__":
    scenario_main(run)
