"""The Omaha endpoint under a fleet's update checks: 1,000 Flatcar nodes (each from its own
address, tied to its machine by its PXE boot) asking 100 at a time for 5 s, a rollout limited to
50 updating at once, SQLite store, access log on. Checks/s and p50/p99 latency; offers never
exceed the limit. No peer: Nebraska (the alternative) needs PostgreSQL and is not in Debian."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys

from bench.common import Bootserver, Netns, percentile, result, scenario_main, wait_http, workdir

NODES, CONCURRENCY, SECONDS, LIMIT = 1000, 100, 5, 50

CATALOG = """\
apiVersion: bootserver/v1
kind: Profile
metadata: {name: flatcar}
spec:
  boot: {kernel: flatcar/amd64/current/flatcar_production_pxe.vmlinuz}
---
apiVersion: bootserver/v1
kind: Group
metadata: {name: fleet}
spec:
  selector: {mac_prefix: "52:54:01"}
  profile: flatcar
  updates: {channel: stable, max_updating: %d}
""" % LIMIT


def mirror(assets) -> None:
    """A mirrored release with its update payload, as `assets fetch flatcar --update-payload` leaves it."""
    release = assets / "flatcar" / "amd64" / "4116.0.0"
    release.mkdir(parents=True)
    data = os.urandom(1 << 20)
    (release / "flatcar_production_update.gz").write_bytes(data)
    (assets / "flatcar" / "amd64" / "stable").mkdir()
    (assets / "flatcar" / "amd64" / "stable" / "current").symlink_to("../4116.0.0")
    info = {"size": len(data), "sha1_b64": base64.b64encode(hashlib.sha1(data).digest()).decode(),
            "sha256_b64": base64.b64encode(hashlib.sha256(data).digest()).decode(),
            "sha256": hashlib.sha256(data).hexdigest(), "sha512": hashlib.sha512(data).hexdigest()}
    manifest = {"files": {}, "flatcar": {"amd64": {"releases": {"4116.0.0": {
        "files": {"flatcar_production_update.gz": info},
        "update": {"payload": "flatcar_production_update.gz", "extras": []}}}}}}
    (assets / ".manifest.json").write_text(json.dumps(manifest))


def run(reps: int = 3) -> list[dict]:
    rates, p50s, p99s, offers = [], [], [], []
    for rep in range(reps):
        with workdir("omaha") as wd, Netns("omaha") as ns:
            (wd / "catalog").mkdir()
            (wd / "catalog" / "fleet.yaml").write_text(CATALOG)
            mirror(wd / "assets")
            ours = Bootserver(ns, wd, "--http", "127.0.0.1:8080", "--assets", str(wd / "assets"), "--catalog",
                              str(wd / "catalog"), "--state", f"sqlite:///{wd}/state.db")
            try:
                wait_http(ns, "http://127.0.0.1:8080/boot.ipxe")
                out = ns.run([sys.executable, "-m", "bench.omaha_client", "http://127.0.0.1:8080", str(NODES),
                              str(CONCURRENCY), str(SECONDS)], timeout=SECONDS + 120)
            finally:
                ours.stop()
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        if figures["errors"]:
            raise RuntimeError(f"{figures['errors']} non-200 answers")
        rates.append(figures["checks"] / figures["seconds"])
        p50s.append(percentile(figures["latencies"], 50) * 1000)
        p99s.append(percentile(figures["latencies"], 99) * 1000)
        offers.append(figures["offered_nodes"])
    note = f"{NODES} nodes, {CONCURRENCY} at once, rollout limit {LIMIT}"
    return [result("omaha", "update checks/s", "req/s", rates, "", [], True, note=note),
            result("omaha", "check latency p50", "ms", p50s, "", [], False),
            result("omaha", "check latency p99", "ms", p99s, "", [], False),
            result("omaha", "nodes offered (limit %d)" % LIMIT, "nodes", offers, "", [], False,
                   target={"exactly": LIMIT}, note="every node asks again and again; the first 50 keep their slot")]


if __name__ == "__main__":
    scenario_main(run)
