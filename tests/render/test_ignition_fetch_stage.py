"""Real Ignition's fetch stage (Debian's binary, the one Flatcar-style initramfs run) fetches every
config the example catalog in profiles/ and the lab serve, from a running bootserver, and accepts it.

The fetch runs as on a machine: `--platform metal` reads `ignition.config.url=` from the kernel
command line, which is a file bind-mounted over /proc/cmdline in a private mount namespace (the
host's is untouched); its cache and state go to a temporary folder. What Ignition cached (the
config after merging what it references) is then checked: every remote file it will fetch in its
files stage resolves on bootserver and matches its verification hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from bootserver.lab import catalog as lab_catalog
from bootserver.lab.lab import MachineSpec
from tests.conftest import REPO

IGNITION = Path("/usr/lib/dracut/modules.d/30ignition/ignition")


def ignition_fetch(url: str, workdir: Path) -> tuple[subprocess.CompletedProcess, dict | None]:
    """Run the fetch stage for the config at `url`; returns the process and the cached config."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "cmdline").write_text(f"console=ttyS0 ignition.config.url={url}\n")
    cache = workdir / "ignition.json"
    script = ('mount --bind "$1/cmdline" /proc/cmdline && exec "$2" --platform=metal --stage=fetch '
              '--log-to-stdout --fetch-timeout=20s --root="$1/root" --config-cache="$1/ignition.json" '
              '--state-file="$1/state" --neednet="$1/neednet"')
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "fetch",
                           str(workdir), str(IGNITION)], capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ["PATH"], "no_proxy": "*"})
    return proc, (json.loads(cache.read_text()) if cache.exists() else None)


def remote_sources(config: dict) -> list[tuple[str, str | None]]:
    """(URL, verification hash) of every http(s) file Ignition's files stage would fetch."""
    found = []
    for entry in config.get("storage", {}).get("files", []):
        for contents in [entry.get("contents") or {}, *(entry.get("append") or [])]:
            source = contents.get("source") or ""
            if source.startswith(("http://", "https://")):
                found.append((source, (contents.get("verification") or {}).get("hash")))
    return found


def check_accepted(url: str, workdir: Path) -> dict:
    proc, cached = ignition_fetch(url, workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"GET {url}: attempt #1" in proc.stdout, proc.stdout  # from bootserver, over HTTP
    assert "fetch: fetch passed" in proc.stdout and "Ignition finished successfully" in proc.stdout, proc.stdout
    assert cached is not None, proc.stdout
    for source, expected in remote_sources(cached):
        with urllib.request.urlopen(source, timeout=20) as response:  # loopback: bootserver's /assets
            data = response.read()
        if expected:
            algorithm, digest = expected.split("-", 1)
            assert hashlib.new(algorithm, data).hexdigest() == digest, source
    return cached


@pytest.fixture(autouse=True)
def needs_root_and_ignition():
    if os.geteuid() != 0:
        pytest.skip("needs root (a private mount namespace to put a kernel command line in place)")
    assert IGNITION.exists(), "install the ignition package (Debian ships the binary in its dracut module)"


@pytest.mark.parametrize("mac, query", [("52:54:00:a1:9c:ae", ""),            # node1: flatcar-install
                                        ("52:54:00:a1:9c:ae", "&stage=final"),  # what node1 installs
                                        ("52:54:00:b2:7d:01", ""),            # node2: flatcar-live
                                        ("52:54:00:12:34:56", "")])           # group lab-defaults
def test_example_catalog_configs_pass_ignitions_fetch_stage(serve, tmp_path, mac, query):
    (tmp_path / "assets").mkdir()
    server = serve("--catalog", str(REPO / "profiles"), "--assets", str(tmp_path / "assets"), "--state", "memory://")
    cached = check_accepted(f"{server.url}/ignition?mac={mac}{query}", tmp_path / "fetch")
    assert cached["ignition"]["version"].startswith("3.")


def test_lab_configs_pass_ignitions_fetch_stage(serve, tmp_path):
    """The lab's config merges a fragment from /assets (fetched and hash-checked by the fetch stage)
    and names a payload on /assets with its hash; a machine with a bad fragment hash is refused."""
    good, bad = MachineSpec.make(1, "uefi"), MachineSpec.make(2, "bios", metadata={"fragment_sha512": "0" * 128})
    assets = tmp_path / "assets"
    (assets / "testos").mkdir(parents=True)
    for name in ("k", "i"):
        (assets / "testos" / name).write_bytes(b"x")
    defaults = lab_catalog.write_ignition_assets(assets)
    profile = lab_catalog.test_os_profile("testos/k", "testos/i", defaults)
    catalog = lab_catalog.write_catalog(tmp_path / "catalog", profile,
                                        [(s.name, s.mac, s.hostname, s.metadata) for s in (good, bad)])
    server = serve("--catalog", str(catalog), "--assets", str(assets), "--state", "memory://")
    cached = check_accepted(f"{server.url}/ignition?mac={good.mac}", tmp_path / "good")
    paths = {f["path"] for f in cached["storage"]["files"]}
    assert "/etc/lab/fragment.txt" in paths  # merged by Ignition from the fragment on /assets
    assert [url for url, _ in remote_sources(cached)] == [f"{server.url}/assets/{lab_catalog.PAYLOAD_ASSET}"]
    proc, cached = ignition_fetch(f"{server.url}/ignition?mac={bad.mac}", tmp_path / "bad")
    assert proc.returncode != 0 and cached is None
    assert "CRITICAL : Ignition failed: hash verification failed" in proc.stdout, proc.stdout
