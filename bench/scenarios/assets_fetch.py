"""Fetch-and-verify throughput: `bootserver assets fetch URL --sha256` against curl + sha256sum.

A 64 MiB file is served from 127.0.0.1 by Python's http.server in a child process. Ours downloads
it, checks its SHA-256 and places it (bootserver.assets.generic.fetch_file); the peer is what an
operator would script by hand: `curl -o FILE URL && sha256sum FILE`. Runs alternate A B A B.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import print_rows, stop
from bootserver.assets.generic import fetch_file
from bootserver.assets.progress import Progress

SIZE = 64 << 20


def _serve(folder: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                             "--directory", str(folder)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    line = proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N (...)"
    port = re.search(r"port (\d+)", line).group(1)
    return proc, f"http://127.0.0.1:{port}"


def _ours(url: str, sha256: str, assets: Path, rep: int) -> float:
    started = time.perf_counter()
    fetch_file(assets, url, sha256, f"bench/{rep}.img", Progress(io.StringIO(), tty=False))
    return SIZE / (time.perf_counter() - started) / (1 << 20)


def _peer(url: str, sha256: str, folder: Path, rep: int) -> float:
    dest = folder / f"curl-{rep}.img"
    started = time.perf_counter()
    subprocess.run(["curl", "--noproxy", "*", "-sf", "-o", str(dest), url], check=True)
    out = subprocess.run(["sha256sum", str(dest)], check=True, capture_output=True, text=True).stdout
    elapsed = time.perf_counter() - started
    assert out.split()[0] == sha256
    dest.unlink()
    return SIZE / elapsed / (1 << 20)


def run(reps: int = 3) -> list[dict]:
    ours: list[float] = []
    peer: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bsas-bench-") as tmp:
        served, work = Path(tmp) / "served", Path(tmp) / "work"
        served.mkdir()
        work.mkdir()
        data = os.urandom(SIZE)
        (served / "image.img").write_bytes(data)
        sha256 = hashlib.sha256(data).hexdigest()
        del data
        proc, base = _serve(served)
        try:
            for rep in range(reps):
                ours.append(_ours(f"{base}/image.img", sha256, work / "assets", rep))
                (work / "assets" / "bench" / f"{rep}.img").unlink()
                peer.append(_peer(f"{base}/image.img", sha256, work, rep))
        finally:
            stop(proc)
    return [{"scenario": "assets_fetch", "metric": "fetch + SHA-256 verify of 64 MiB over loopback",
             "unit": "MiB/s", "ours": ours, "peer_name": "curl + sha256sum", "peer": peer,
             "higher_is_better": True}]


def main() -> None:
    print_rows(run())


if __name__ == "__main__":
    main()
