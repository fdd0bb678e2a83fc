"""Issue 19 item 2: a hostile or broken catalog file is refused with file:line, in bounded time and
memory, and a running server keeps serving the last good catalog (and says so in /healthz)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

LAUGHS = textwrap.dedent("""\
    apiVersion: bootserver/v1
    kind: Machine
    metadata: {name: lol}
    spec:
      mac: "52:54:00:00:00:99"
      profile: live
      metadata:
        a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
        b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
        c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
        d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
        e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
        f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
        g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
        h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
        i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    """)
DEEP = "apiVersion: bootserver/v1\nkind: Machine\nmetadata: {name: deep}\nspec:\n  x: " + "[" * 5000 + "]" * 5000 + "\n"
BIG = "# padding\n" * 120_000 + "apiVersion: bootserver/v1\n"  # 1.2 MB

LOAD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from bootserver.catalog.loader import CatalogError, load_catalog
try:
    load_catalog(sys.argv[1])
except CatalogError as exc:
    print("\\n".join(str(p) for p in exc.problems))
    sys.exit(3)
"""


def load_bounded(root: Path) -> tuple[int, str, float]:
    """Load the catalog in a child limited to 1 GB and 60 s, so a bomb cannot take the test run down."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", LOAD, str(root)], capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


@pytest.mark.parametrize("name,text,words", [("laughs.yaml", LAUGHS, "alias"), ("deep.yaml", DEEP, "deep"),
                                             ("big.yaml", BIG, "larger than")], ids=["aliases", "depth", "size"])
def test_catalog_bombs_are_refused_with_file_and_line(catalog_dir, name, text, words):
    (catalog_dir / name).write_text(text)
    code, out, took = load_bounded(catalog_dir)
    assert code == 3, out[-2000:]
    assert f"{name}:" in out and words in out, out[-2000:]
    assert took < 20


def _healthz(server) -> dict:
    with urllib.request.urlopen(server.url + "/healthz", timeout=10) as r:
        return json.load(r)


def _wait(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("name,text", [("laughs.yaml", LAUGHS), ("deep.yaml", DEEP), ("big.yaml", BIG)],
                         ids=["aliases", "depth", "size"])
def test_a_bomb_in_a_running_catalog_keeps_the_last_good_one_and_shows_in_healthz(serve, catalog_dir, name, text):
    server = serve("--catalog", str(catalog_dir), "--state", "memory://")
    pid = server.proc.pid
    (catalog_dir / name).write_text(text)
    assert _wait(lambda: (_healthz(server)["last_reload_error"] or "").find(name) >= 0), server.log()[-3000:]
    with urllib.request.urlopen(server.url + "/ipxe?mac=52:54:00:00:00:01", timeout=10) as r:
        assert r.status == 200 and b"kernel" in r.read()
    rss_kb = int(next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")).split()[1])
    assert rss_kb < 400_000
    (catalog_dir / name).unlink()  # the watcher is still alive: fixing the catalog is noticed
    assert _wait(lambda: _healthz(server)["last_reload_error"] is None), server.log()[-3000:]
    assert _healthz(server)["catalog"]["generation"] >= 2
